"""fer-predict on images and videos, bad files among good ones, every output format."""

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fer_desktop.emotions import EMOTIONS
from fer_desktop.predict_cli import main
from fer_desktop.predict_sinks import CSV_HEADER


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from conftest import load_face_image, make_group_image

    folder = tmp_path_factory.mktemp("inputs")
    cv2.imwrite(str(folder / "face.jpg"), load_face_image())
    cv2.imwrite(str(folder / "group.png"), make_group_image())
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 160, 3), 128, np.uint8))
    (folder / "bad.jpg").write_text("not an image")
    (folder / "empty.mp4").write_bytes(b"")
    return folder


def _cli(*args, weights):
    return main([*map(str, args), "--model", "baseline_cnn", "--weights-dir", str(weights)])


def _one_line_each(err: str, count: int):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == count, err
    assert "Traceback" not in err
    return lines


def test_image_with_one_face_json(files, cnn_weights_dir, capsys):
    assert _cli(files / "face.jpg", "--json", weights=cnn_weights_dir) == 0
    out = capsys.readouterr()
    (record,) = json.loads(out.out)
    assert record["path"].endswith("face.jpg") and record["kind"] == "image" and record["whole_image"] is False
    (face,) = record["faces"]
    x, y, w, h = face["box"]
    assert 0 <= x and 0 <= y and x + w <= 320 and y + h <= 320 and face["score"] > 0.5
    assert list(face["probabilities"]) == list(EMOTIONS)
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)


def test_group_image_table_and_blank_image_without_a_face(files, cnn_weights_dir, capsys):
    assert _cli(files / "group.png", files / "blank.png", weights=cnn_weights_dir) == 0
    out = capsys.readouterr().out
    group, blank = out.split(str(files / "blank.png"))
    assert sum(line.strip().startswith("0 ") for line in group.splitlines()) == 8
    assert "no face found" in blank and "whole image" not in blank and "%" not in blank
    assert _cli(files / "blank.png", "--whole-image", weights=cnn_weights_dir) == 0  # asked for
    assert "whole image" in capsys.readouterr().out


def test_video_csv_one_row_per_frame_and_face(face_video, cnn_weights_dir, tmp_path):
    out = tmp_path / "rows.csv"
    assert _cli(face_video, "--tiled", "--csv", out, weights=cnn_weights_dir) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_HEADER
    assert [int(r["frame"]) for r in rows] == list(range(45))  # every frame, one face each
    assert all(r["path"] == str(face_video) and r["face"] == "0" and r["label"] in EMOTIONS for r in rows)
    for r in rows:
        assert 0 <= int(r["x"]) and int(r["x"]) + int(r["w"]) <= 640 and float(r["score"]) > 0.5
        assert abs(sum(float(r[e]) for e in EMOTIONS) - 1) < 1e-2
        assert float(r["confidence"]) == max(float(r[e]) for e in EMOTIONS)


def test_video_without_detected_faces_keeps_every_frame(group_video, cnn_weights_dir, tmp_path, capsys):
    # The test videos' faces are small (an eighth of the frame): whole-frame detection
    # misses them, and each frame still gets its row, with empty face fields.
    out = tmp_path / "rows.csv"
    assert _cli(group_video, "--csv", out, weights=cnn_weights_dir) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    frames = [int(r["frame"]) for r in rows]
    assert sorted(set(frames)) == list(range(45)) and frames == sorted(frames)
    for r in rows:
        assert r["face"] in ("", "0", "1")
        if r["face"] == "":
            assert r["label"] == "" and r["angry"] == ""
    assert capsys.readouterr().out == ""


def test_video_json(face_video, cnn_weights_dir, capsys):
    assert _cli(face_video, "--tiled", "--json", weights=cnn_weights_dir) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["kind"] == "video" and [f["frame"] for f in record["frames"]] == list(range(45))
    assert all(len(f["faces"]) == 1 for f in record["frames"])


def test_bad_files_among_good_ones(files, cnn_weights_dir, tmp_path, capsys):
    annotate = tmp_path / "annotated"
    status = _cli(files / "bad.jpg", files / "face.jpg", tmp_path / "missing.png", files / "empty.mp4",
                  files / "group.png", "--json", "--annotate", annotate, weights=cnn_weights_dir)
    assert status == 1
    out = capsys.readouterr()
    records = json.loads(out.out)
    assert [r["path"].rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1] for r in records] == ["face.jpg", "group.png"]
    assert len(records[1]["faces"]) == 8
    lines = _one_line_each(out.err, 3)
    # Missing and empty files are found before the model loads, hence first.
    assert "missing.png" in lines[0] and "empty.mp4" in lines[1] and "bad.jpg" in lines[2]
    assert sorted(p.name for p in annotate.iterdir()) == ["face.annotated.png", "group.annotated.png"]
    assert cv2.imread(str(annotate / "group.annotated.png")).shape == (640, 960, 3)


def test_missing_weights_exit_2(files, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FER_DESKTOP_WEIGHTS", raising=False)
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", tmp_path / "pkg" / "fer_desktop")
    assert main([str(files / "face.jpg"), "--model", "resnet50", "--weights-dir", str(tmp_path)]) == 2
    (line,) = _one_line_each(capsys.readouterr().err, 1)
    assert "python -m training.train --model resnet50 --recipe best" in line


def test_corrupt_weights_exit_2(files, cnn_weights_dir, tmp_path, capsys):
    import shutil

    shutil.copy(cnn_weights_dir / "baseline_cnn.json", tmp_path / "baseline_cnn.json")
    (tmp_path / "baseline_cnn.safetensors").write_bytes(b"broken")
    assert _cli(files / "face.jpg", weights=tmp_path) == 2
    (line,) = _one_line_each(capsys.readouterr().err, 1)
    assert "baseline_cnn.safetensors" in line


def test_subprocess_console_entry(files, face_video, cnn_weights_dir, tmp_path):
    out = tmp_path / "rows.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "fer_desktop.predict_cli", str(files / "face.jpg"), str(files / "bad.jpg"),
         str(face_video), "--model", "baseline_cnn", "--weights-dir", str(cnn_weights_dir), "--csv", str(out)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    assert proc.returncode == 1
    (line,) = _one_line_each(proc.stderr, 1)  # nothing from MediaPipe's or OpenCV's logs
    assert line.startswith("fer-predict: ") and "bad.jpg" in line
    assert proc.stdout == ""
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 + 45 and rows[0]["frame"] == "0" and rows[0]["face"] == "0"
    assert "PySide6" not in proc.stderr


def _no_shipped_weights(monkeypatch, tmp_path):
    """Hide the checkout's and the package's weights/ so that only what a test passes is found."""
    monkeypatch.delenv("FER_DESKTOP_WEIGHTS", raising=False)
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", tmp_path / "pkg" / "fer_desktop")


def test_no_default_model_exit_2(files, tmp_path, capsys, monkeypatch):
    _no_shipped_weights(monkeypatch, tmp_path)
    assert main([str(files / "face.jpg"), "--weights-dir", str(tmp_path)]) == 2
    (line,) = _one_line_each(capsys.readouterr().err, 1)
    assert "no trained weights found" in line and "--recipe best" in line


@pytest.mark.parametrize("argv", [["--no-such-option"], ["--model", "vgg16"], []])
def test_usage_errors_exit_3(files, argv, capsys):
    paths = [str(files / "face.jpg")] if argv else []
    with pytest.raises(SystemExit) as exit_info:
        main(paths + argv)
    assert exit_info.value.code == 3  # argparse's own 2 would read as a weights problem
    assert "Traceback" not in capsys.readouterr().err


def test_unwritable_outputs_and_bad_device_names_exit_3(files, cnn_weights_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert _cli(files / "face.jpg", "--csv", blocker / "rows.csv", weights=cnn_weights_dir) == 3
    assert "rows.csv" in _one_line_each(capsys.readouterr().err, 1)[0]
    assert _cli(files / "face.jpg", "--annotate", blocker / "out", weights=cnn_weights_dir) == 3
    assert "cannot create the folder" in _one_line_each(capsys.readouterr().err, 1)[0]
    assert _cli(files / "face.jpg", "--device", "gpu0", weights=cnn_weights_dir) == 3
    assert "--device gpu0" in _one_line_each(capsys.readouterr().err, 1)[0]


def test_cuda_asked_for_without_cuda_exit_2(files, cnn_weights_dir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert _cli(files / "face.jpg", "--device", "cuda", weights=cnn_weights_dir) == 2
    assert "CUDA" in _one_line_each(capsys.readouterr().err, 1)[0]


def test_unexpected_error_exit_4_with_the_traceback_behind_verbose(files, cnn_weights_dir, capsys, monkeypatch):
    from fer_desktop import predict_cli

    def bug(self, path, sink):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(predict_cli.Predictor, "image", bug)
    assert _cli(files / "face.jpg", weights=cnn_weights_dir) == 4
    (line,) = _one_line_each(capsys.readouterr().err, 1)
    assert "unexpected error: ZeroDivisionError: a bug" in line and "--verbose" in line
    assert _cli(files / "face.jpg", "--verbose", weights=cnn_weights_dir) == 4
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err


@pytest.mark.slow
def test_ctrl_c_exit_130(tmp_path, cnn_weights_dir):
    import signal
    import time

    from conftest import write_video

    long_video = write_video(tmp_path / "long.mp4", frames=900, fps=30)
    out = tmp_path / "rows.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fer_desktop.predict_cli", str(long_video), "--model", "baseline_cnn",
         "--weights-dir", str(cnn_weights_dir), "--csv", str(out)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.1)  # wait until it is busy writing rows
    assert proc.poll() is None, "the video ended before it could be interrupted: make it longer"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert _one_line_each(err, 1)[0] == "fer-predict: interrupted"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped Ctrl-C
def test_a_ctrl_c_that_python_drops_still_stops_with_130(tmp_path, cnn_weights_dir, monkeypatch, capsys):
    """Python only prints a KeyboardInterrupt raised inside a finaliser; fer-predict must still stop."""
    import signal

    from conftest import write_video

    from fer_desktop.detection import FaceDetector

    class PressesCtrlC:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)
            for _ in range(1000):  # the handler runs here, inside the finaliser, and its exception is dropped
                pass

    calls = {"n": 0}
    detect = FaceDetector.detect

    def detect_then_ctrl_c(self, frame, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            PressesCtrlC()  # made and finalised at once
        return detect(self, frame, **kwargs)

    monkeypatch.setattr(FaceDetector, "detect", detect_then_ctrl_c)
    video = write_video(tmp_path / "clip.mp4", frames=60, fps=30)
    assert main([str(video), "--model", "baseline_cnn", "--weights-dir", str(cnn_weights_dir),
                 "--csv", str(tmp_path / "rows.csv")]) == 130
    assert calls["n"] == 5  # it stopped at the next frame, not at the end of the video
    assert capsys.readouterr().err.splitlines()[-1] == "fer-predict: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back


def test_the_shipped_models_say_happy_for_a_smiling_face(files, capsys):
    """End to end with the real weights of weights/: the test photo's smile is 'happy'."""
    from fer_desktop.weights import find_weights, read_card

    shipped = [name for name in ("baseline_cnn", "attention_cnn", "resnet50", "resnet50_cbam")
               if find_weights(name) is not None and read_card(find_weights(name)).get("metrics")]
    if not shipped:
        pytest.skip("no trained weights in weights/")
    for name in shipped + (["ensemble"] if len(shipped) >= 2 else []):
        assert main([str(files / "face.jpg"), "--model", name, "--json"]) == 0
        (record,) = json.loads(capsys.readouterr().out)
        (face,) = record["faces"]
        assert face["label"] == "happy", (name, face["probabilities"])


def test_explain_blends_maps_into_the_annotated_copies(files, cnn_weights_dir, tmp_path, capsys):
    plain, explained = tmp_path / "plain", tmp_path / "explained"
    assert _cli(files / "face.jpg", "--annotate", plain, weights=cnn_weights_dir) == 0
    assert _cli(files / "face.jpg", "--annotate", explained, "--explain", weights=cnn_weights_dir) == 0
    a = cv2.imread(str(plain / "face.annotated.png")).astype(int)
    b = cv2.imread(str(explained / "face.annotated.png")).astype(int)
    changed = np.abs(a - b).max(axis=2) > 20
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 2000  # the map covers the face
    assert 40 < xs.mean() < 240 and 20 < ys.mean() < 200  # ... where the face is, not elsewhere
    capsys.readouterr()
    assert _cli(files / "face.jpg", "--explain", weights=cnn_weights_dir) == 3  # nothing to draw into
    assert "--annotate" in _one_line_each(capsys.readouterr().err, 1)[0]
    assert _cli(files / "face.jpg", "--annotate", explained, "--explain", "attention",
                weights=cnn_weights_dir) == 3  # baseline_cnn has no attention of its own
    assert "no spatial attention" in _one_line_each(capsys.readouterr().err, 1)[0]


# ---------------------------------------------------------------- large photos, no-face photos

def _landscape() -> np.ndarray:
    """900x600: a sky, snowy mountains, a meadow; no face anywhere."""
    image = np.zeros((600, 900, 3), np.uint8)
    image[:] = np.linspace(250, 170, 600)[:, None, None] * np.array([1.0, 0.85, 0.55])  # sky (BGR)
    peaks = [[0, 420], [180, 170], [330, 330], [520, 110], [700, 300], [900, 200], [900, 600], [0, 600]]
    cv2.fillPoly(image, [np.array(peaks)], (95, 100, 110))
    snow = [[[130, 230], [180, 170], [230, 230]], [[460, 190], [520, 110], [580, 190]]]
    cv2.fillPoly(image, [np.array(cap) for cap in snow], (245, 245, 245))
    image[470:] = (40, 140, 70)
    noise = np.random.default_rng(3).normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def test_a_photo_without_a_face_gets_no_face_found_in_every_format(tmp_path, cnn_weights_dir, capsys):
    photo = tmp_path / "mountains.jpg"
    cv2.imwrite(str(photo), _landscape())
    assert _cli(photo, weights=cnn_weights_dir) == 0
    table = capsys.readouterr().out
    assert "no face found" in table and "%" not in table and "whole" not in table
    assert _cli(photo, "--json", weights=cnn_weights_dir) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["faces"] == [] and record["whole_image"] is False and record["size"] == [900, 600]
    assert _cli(photo, "--csv", tmp_path / "rows.csv", weights=cnn_weights_dir) == 0
    with open(tmp_path / "rows.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["path"] == str(photo) and row["frame"] == "0"
    assert row["face"] == row["label"] == row["angry"] == ""  # one row, with empty face fields
    # Asked for, the whole photo is classified, and marked so.
    assert _cli(photo, "--whole-image", "--json", weights=cnn_weights_dir) == 0
    (record,) = json.loads(capsys.readouterr().out)
    (face,) = record["faces"]
    assert record["whole_image"] is True and face["box"] == [0, 0, 900, 600] and face["score"] is None


def test_a_small_square_image_is_taken_for_a_face_crop(tmp_path, cnn_weights_dir, capsys):
    from fer_desktop.pipeline import looks_like_face_crop

    # FER-2013's 48x48, RAF-DB's 100x100, AffectNet's 224x224 are crops; photos and banners are not.
    assert all(looks_like_face_crop(s, s) for s in (48, 100, 224, 256))
    assert looks_like_face_crop(200, 160) and not looks_like_face_crop(200, 150)
    assert not looks_like_face_crop(257, 257) and not looks_like_face_crop(160, 120)
    assert not looks_like_face_crop(0, 0)
    crop = tmp_path / "crop.png"  # too tight and too grey for the detector: only the rule classifies it
    cv2.imwrite(str(crop), np.full((48, 48), 128, np.uint8))
    assert _cli(crop, "--json", weights=cnn_weights_dir) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["whole_image"] is True and record["faces"][0]["box"] == [0, 0, 48, 48]


@pytest.mark.slow
def test_boxes_of_a_large_photo_are_in_its_own_pixels(tmp_path, cnn_weights_dir, capsys):
    from conftest import load_face_image

    # A 10000x8000 photo (read at 4096x3277) with the test face, 4x enlarged, at (6000, 5000).
    photo = np.full((8000, 10000, 3), 110, np.uint8)
    photo[5000:6280, 6000:7280] = cv2.resize(load_face_image(), (1280, 1280), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "IMG_big.jpg"
    cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, 85])
    del photo
    annotate = tmp_path / "out"
    assert _cli(path, "--json", "--annotate", annotate, weights=cnn_weights_dir) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["size"] == [10000, 8000]
    (face,) = record["faces"]
    x, y, w, h = face["box"]
    # The face's box in the 320-pixel photo is about (95, 62, 81, 81): here 4x that, plus the offset.
    assert abs(x - (6000 + 4 * 95)) < 50 and abs(y - (5000 + 4 * 62)) < 50, face["box"]
    assert abs(w - 4 * 81) < 50 and abs(h - 4 * 81) < 50, face["box"]
    # The annotated copy is drawn at the size the photo was read at, and says so.
    copy = record["annotated"]
    assert copy["size"] == [4096, 3277] and copy["shrunk_from"] == [10000, 8000]
    assert cv2.imread(copy["path"]).shape == (3277, 4096, 3)
    assert _cli(path, weights=cnn_weights_dir) == 0
    table = capsys.readouterr().out
    assert f"{x},{y},{w},{h}" in table and "(image, 10000x8000)" in table


# ---------------------------------------------------------------- videos that end early

def _faststart(mp4: bytes) -> bytes:
    """The MP4 with its index (moov) moved before the media data, as streamed and phone videos have
    it: cut, such a file still opens and plays up to the cut."""
    import struct

    boxes, i = [], 0
    while i < len(mp4):
        size, kind = struct.unpack(">I4s", mp4[i:i + 8])
        boxes.append((kind, mp4[i:i + size]))
        i += size
    moov = bytearray(dict(boxes)[b"moov"])

    def shift_chunk_offsets(start: int, end: int) -> None:  # the media data moves by len(moov)
        while start < end:
            size, kind = struct.unpack(">I4s", moov[start:start + 8])
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                shift_chunk_offsets(start + 8, start + size)
            elif kind == b"stco":
                (count,) = struct.unpack(">I", moov[start + 12:start + 16])
                for at in range(start + 16, start + 16 + 4 * count, 4):
                    moov[at:at + 4] = struct.pack(">I", struct.unpack(">I", moov[at:at + 4])[0] + len(moov))
            start += size

    shift_chunk_offsets(8, len(moov))
    return b"".join((bytes(moov) if kind == b"mdat" else b"") + box for kind, box in boxes if kind != b"moov")


@pytest.mark.slow
def test_a_truncated_video_says_how_many_frames_it_lacks(tmp_path, cnn_weights_dir, capsys):
    from conftest import write_video

    whole = _faststart(write_video(tmp_path / "source.mp4", frames=150, fps=30).read_bytes())
    complete, cut = tmp_path / "complete.mp4", tmp_path / "cut.mp4"
    complete.write_bytes(whole)
    cut.write_bytes(whole[:len(whole) // 3])
    assert _cli(complete, "--json", weights=cnn_weights_dir) == 0  # every declared frame is there
    (record,) = json.loads(capsys.readouterr().out)
    assert record["frames_read"] == record["frames_declared"] == 150 == len(record["frames"])
    assert _cli(cut, "--json", weights=cnn_weights_dir) == 1
    out = capsys.readouterr()
    (record,) = json.loads(out.out)
    read = record["frames_read"]
    assert 0 < read < 100 and record["frames_declared"] == 150 and len(record["frames"]) == read
    (line,) = _one_line_each(out.err, 1)
    assert "cut.mp4" in line and f"{read} of the 150 frames" in line and "ends early" in line
    assert _cli(cut, weights=cnn_weights_dir) == 1  # the table says it too
    assert f"-> {read} of 150 frame(s) read" in capsys.readouterr().out


def test_frame_count_tolerance():
    from fer_desktop.predict_inputs import FRAME_COUNT_TOLERANCE, ends_early

    assert FRAME_COUNT_TOLERANCE == 2
    assert not ends_early(148, 150) and ends_early(147, 150)  # a frame or two short: the container's error
    assert not ends_early(990, 1000) and ends_early(989, 1000)  # 1 % of long videos (estimated counts)
    assert not ends_early(500, 472) and not ends_early(24, None)  # more than declared; nothing declared


# ---------------------------------------------------------------- annotated copies, streamed JSON

def test_same_named_inputs_get_their_own_annotated_copies(files, cnn_weights_dir, tmp_path, capsys):
    from conftest import load_face_image

    out = tmp_path / "out"
    inputs = [tmp_path / "a" / "IMG_1.jpg", tmp_path / "b" / "IMG_1.jpg", tmp_path / "c" / "img_1.jpg",
              out / "face.annotated.png", tmp_path / "face.png"]
    for k, path in enumerate(inputs[:3]):  # differing only in case is the same name on some file systems
        path.parent.mkdir()
        cv2.imwrite(str(path), cv2.flip(load_face_image(), 1) if k == 1 else load_face_image())
    out.mkdir()
    (out / "IMG_1.annotated.png").write_bytes(b"from an earlier run")  # replaced
    cv2.imwrite(str(out / "face.annotated.png"), load_face_image())  # an input: never written over
    cv2.imwrite(str(tmp_path / "face.png"), load_face_image())
    before = (out / "face.annotated.png").read_bytes()
    assert _cli(*inputs, "--json", "--annotate", out, weights=cnn_weights_dir) == 0
    records = json.loads(capsys.readouterr().out)
    written = [r["annotated"]["path"] for r in records]
    assert [os.path.basename(p) for p in written] == [
        "IMG_1.annotated.png", "IMG_1-2.annotated.png", "img_1-3.annotated.png",
        "face.annotated.annotated.png", "face-2.annotated.png"]
    assert (out / "face.annotated.png").read_bytes() == before
    a, b = (cv2.imread(p) for p in written[:2])
    assert a.shape == b.shape == (320, 320, 3) and not np.array_equal(a, b)  # each its own input's copy


@pytest.mark.slow
def test_json_is_streamed_and_stays_valid_when_interrupted(tmp_path, cnn_weights_dir):
    import signal

    from conftest import write_video

    video = write_video(tmp_path / "long.mp4", frames=900, fps=30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fer_desktop.predict_cli", str(video), "--model", "baseline_cnn",
         "--weights-dir", str(cnn_weights_dir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    lines = [proc.stdout.readline() for _ in range(4)]  # "[", the record's start, frames 0 and 1
    assert proc.poll() is None, "the frames only came at the end: the JSON is not streamed"
    assert lines[0].strip() == "[" and '"frames_declared": 900' in lines[1] and '"frame": 1' in lines[3]
    proc.send_signal(signal.SIGINT)
    rest, err = proc.stdout.read(), proc.stderr.read()  # (communicate() would skip what readline() buffered)
    assert proc.wait(timeout=30) == 130 and _one_line_each(err, 1)[0] == "fer-predict: interrupted"
    (record,) = json.loads("".join(lines) + rest)
    assert 2 <= len(record["frames"]) < 900 and "stopped" in record["error"]


def test_annotated_video_that_cannot_be_written(face_video, cnn_weights_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "one_face.annotated.mp4").mkdir(parents=True)  # in the way of the copy
    assert _cli(face_video, "--csv", tmp_path / "rows.csv", "--annotate", out, weights=cnn_weights_dir) == 3
    (line,) = _one_line_each(capsys.readouterr().err, 1)
    assert "one_face.annotated.mp4" in line and "cannot write the annotated video" in line


@pytest.mark.skipif(sys.platform == "win32", reason="file size limits are POSIX")
def test_annotated_video_cut_short_by_a_full_disk_exits_3(face_video, cnn_weights_dir, tmp_path):
    import resource
    import signal

    def disk_full_at_100_kb():  # writes past 100 kB fail (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    proc = subprocess.run(
        [sys.executable, "-m", "fer_desktop.predict_cli", str(face_video), "--model", "baseline_cnn",
         "--weights-dir", str(cnn_weights_dir), "--annotate", str(tmp_path / "out"), "--csv", os.devnull],
        capture_output=True, text=True, timeout=120, preexec_fn=disk_full_at_100_kb,
        env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    assert proc.returncode == 3
    (line,) = _one_line_each(proc.stderr, 1)
    assert "one_face.annotated.mp4" in line and "could not be written" in line


# ---------------------------------------------------------------- stderr, and checking paths first

def test_a_missing_path_fails_at_once_without_loading_a_model(tmp_path):
    code = ("import sys\n"
            "from fer_desktop.predict_cli import main\n"
            "status = main(sys.argv[1:])\n"
            "print(sorted(m for m in ('cv2', 'mediapipe', 'onnxruntime', 'torch', 'fer_desktop.classifier',"
            " 'fer_desktop.weights') if m in sys.modules))\n"
            "sys.exit(status)\n")
    proc = subprocess.run([sys.executable, "-c", code, "missing.jpg"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    assert proc.returncode == 1
    assert proc.stderr == "fer-predict: missing.jpg: no such file\n"
    assert proc.stdout == "[]\n"  # nothing was loaded: no model, no detector, not even OpenCV


@pytest.mark.slow
def test_a_normal_run_prints_nothing_on_stderr(files, face_video, cnn_weights_dir):
    args = [sys.executable, "-m", "fer_desktop.predict_cli", str(files / "face.jpg"), str(face_video),
            "--model", "baseline_cnn", "--weights-dir", str(cnn_weights_dir), "--json"]
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    assert quiet.returncode == 0 and quiet.stderr == ""  # no MediaPipe/LiteRT INFO or W0000 lines
    assert len(json.loads(quiet.stdout)) == 2
    verbose = subprocess.run(args + ["--verbose"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    assert verbose.returncode == 0 and "INFO" in verbose.stderr  # asked for, the library logs are there


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX signal")
def test_a_native_crash_still_reaches_the_terminal(files, cnn_weights_dir):
    # A real segmentation fault while a file is processed: Python's fault handler writes its report to
    # fd 2, which must not lead to the null device.
    code = ("import ctypes, sys\n"
            "from fer_desktop import predict_cli\n"
            "predict_cli.Predictor.image = lambda self, path, sink: ctypes.string_at(0)\n"
            "sys.exit(predict_cli.main(sys.argv[1:]))\n")
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code, str(files / "face.jpg"), "--model", "baseline_cnn",
         "--weights-dir", str(cnn_weights_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    assert proc.returncode != 0
    assert "Segmentation fault" in proc.stderr


def test_after_ctrl_c_a_cut_short_objects_finaliser_adds_nothing_to_the_one_line(monkeypatch):
    """A KeyboardInterrupt inside a constructor (MediaPipe's ``Image``) leaves an object whose
    finaliser fails; after Ctrl-C its "Exception ignored" report must not follow our line."""
    from fer_desktop.predict_status import INTERRUPTED, ctrl_c_noted

    class HalfBuilt:
        def __del__(self):
            raise AttributeError("'HalfBuilt' object has no attribute '_image_ptr'")

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    try:
        with ctrl_c_noted():
            HalfBuilt()  # freed at once: its finaliser fails before any Ctrl-C
            assert len(reported) == 1
            INTERRUPTED.set()
            HalfBuilt()
        HalfBuilt()  # after the run, as at exit
        assert len(reported) == 1
    finally:
        INTERRUPTED.clear()
