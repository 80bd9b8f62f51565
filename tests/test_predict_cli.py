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
from fer_desktop.predict_cli import CSV_HEADER, main


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


def test_group_image_table_and_blank_image_fallback(files, cnn_weights_dir, capsys):
    assert _cli(files / "group.png", files / "blank.png", weights=cnn_weights_dir) == 0
    out = capsys.readouterr().out
    group, blank = out.split(str(files / "blank.png"))
    assert sum(line.strip().startswith("0 ") for line in group.splitlines()) == 8
    assert "whole image" in blank


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
    assert "bad.jpg" in lines[0] and "missing.png" in lines[1] and "empty.mp4" in lines[2]
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
