"""The window, offscreen, with real threads: video files, real mediapipe, tiny weights."""

import os
import re
import shutil
import subprocess
import sys
import time

import cv2
import pytest

from conftest import FaultyCapture
from fer_desktop.app.main import build_window, use_pyside_qt_plugins
from fer_desktop.models.registry import list_models
from fer_desktop.weights import find_weights, train_command

# Before any QApplication exists: no display needed, and PySide6's own plugins.
os.environ["QT_QPA_PLATFORM"] = "offscreen"
use_pyside_qt_plugins()

WAIT_MS = 60_000  # generous: the first model load imports torch


def model_ready(window) -> bool:
    # waitUntil treats a None return as success: always return a bool.
    worker = window.session.worker
    return worker is not None and worker.model_name is not None


@pytest.fixture
def make_window(qtbot):
    windows = []  # strong references: qtbot keeps only weak ones

    def make(*args):
        window = build_window(["--device", "cpu", *map(str, args)])
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        return window
    yield make
    for window in windows:
        window.close()
        assert window.shutdown(), "a thread did not stop within 2 s of closing"


def test_window_without_weights_shows_models_unavailable(make_window, qtbot, tmp_path, face_video,
                                                         no_shipped_weights):
    window = make_window("--source", face_video, "--weights-dir", tmp_path)
    combo = window.model_combo
    assert len(list_models()) == 4 and combo.count() == 4 + 2  # the models, a separator, the ensemble
    ensemble = combo.findData("ensemble")
    assert not combo.model().item(ensemble).isEnabled() and "two trained models" in combo.itemData(ensemble, 3)
    for i in range(4):
        name = combo.itemData(i)
        assert find_weights(name, tmp_path) is None and not combo.model().item(i).isEnabled()
        assert train_command(name) in combo.itemData(i, 3)  # Qt.ToolTipRole
        assert "not trained" in combo.itemText(i)
    assert not window.available_models
    assert window.banner.isVisible() and "train" in window.banner.text().lower()
    # The video plays anyway.
    qtbot.waitUntil(lambda: window.frames_shown >= 3, timeout=WAIT_MS)


def test_overlays_appear_and_status_bar_fills(make_window, qtbot, cnn_weights_dir, group_video):
    window = make_window("--source", group_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn")
    qtbot.waitUntil(lambda: window.results_shown >= 3 and len(window.view.faces()) == 2, timeout=WAIT_MS)
    assert window.bars.probs() is not None and window.table.rowCount() == 2
    assert window.model_combo.currentData() == "baseline_cnn"
    qtbot.waitUntil(lambda: "cpu" in window.device_label.text(), timeout=5000)
    qtbot.waitUntil(lambda: "fps" in window.inference_fps_label.text()
                    and "–" not in window.inference_fps_label.text(), timeout=5000)
    assert "Baseline CNN" in window.model_label.text()
    assert re.fullmatch(r"Latency: \d+ ms", window.latency_label.text())  # the initial "– ms" fails
    # Clicking the other face selects it.
    view = window.view
    other = [f for f in view.faces() if f.track_id != window._selected][0]
    target = view._mapper()(other.box).center().toPoint()
    from PySide6.QtCore import Qt

    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=target)
    assert window._selected == other.track_id


def test_switching_model_while_playing_keeps_frames_coming(make_window, qtbot, cnn_weights_dir, face_video):
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn")
    qtbot.waitUntil(lambda: window.results_shown >= 2, timeout=WAIT_MS)
    shown_at = []  # when the GUI thread displayed each frame
    window.session.frame_ready.connect(lambda frame: shown_at.append(time.monotonic()))
    frames_before = window.frames_shown
    t0 = time.monotonic()
    with qtbot.waitSignal(window.session.worker_event, timeout=WAIT_MS,
                          check_params_cb=lambda e: e.kind == "model" and e.model == "attention_cnn"):
        window.set_model("attention_cnn")
    assert window.frames_shown > frames_before
    qtbot.wait(300)
    times = [t0] + shown_at
    # A 15 fps video: frames every 67 ms. A GUI thread blocked by the load (seconds) leaves a gap.
    assert max(b - a for a, b in zip(times, times[1:])) < 1.0
    qtbot.waitUntil(lambda: window._last_result.model == "attention_cnn", timeout=WAIT_MS)
    assert window.model_combo.currentData() == "attention_cnn"
    assert not window.banner.isVisible()


def test_open_group_image_labels_every_face_then_back_to_live(make_window, qtbot, cnn_weights_dir, face_video,
                                                              group_image, tmp_path):
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), group_image)
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir)
    qtbot.waitUntil(lambda: model_ready(window), timeout=WAIT_MS)
    window.open_image(path)
    qtbot.waitUntil(lambda: window.last_image_result is not None, timeout=WAIT_MS)
    assert len(window.last_image_result.faces) == 8
    assert window.table.rowCount() == 8 and len(window.view.faces()) == 8
    assert window.live_action.isVisible() and window.session.source is None  # camera released
    frames = window.frames_shown
    window.back_to_live()
    qtbot.waitUntil(lambda: window.frames_shown > frames, timeout=WAIT_MS)


def test_image_without_face_is_classified_whole_and_says_so(make_window, qtbot, cnn_weights_dir, face_video,
                                                           tmp_path, face_image):
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), face_image[:40, :40])
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir)
    qtbot.waitUntil(lambda: model_ready(window), timeout=WAIT_MS)
    window.open_image(path)
    qtbot.waitUntil(lambda: window.last_image_result is not None, timeout=WAIT_MS)
    assert window.last_image_result.whole_image and len(window.view.faces()) == 1
    assert "whole image" in window.banner.text()


def test_bad_image_gives_a_message(make_window, qtbot, cnn_weights_dir, face_video, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir)
    qtbot.waitUntil(lambda: model_ready(window), timeout=WAIT_MS)
    window.open_image(bad)
    qtbot.waitUntil(lambda: window.banner.isVisible() and "holiday.jpg" in window.banner.text(),
                    timeout=WAIT_MS)
    assert "\n" not in window.banner.text() and "Traceback" not in window.banner.text()
    frames = window.frames_shown  # the live video goes on
    qtbot.waitUntil(lambda: window.frames_shown > frames, timeout=WAIT_MS)


def test_corrupt_weights_message_names_the_file(make_window, qtbot, cnn_weights_dir, face_video, tmp_path):
    for suffix in (".json", ".safetensors"):
        shutil.copy(cnn_weights_dir / f"baseline_cnn{suffix}", tmp_path / f"baseline_cnn{suffix}")
    (tmp_path / "baseline_cnn.safetensors").write_bytes(b"\x00" * 64)
    window = make_window("--source", face_video, "--weights-dir", tmp_path, "--model", "baseline_cnn")
    qtbot.waitUntil(lambda: "baseline_cnn.safetensors" in window.banner.text(), timeout=WAIT_MS)
    frames = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown > frames, timeout=WAIT_MS)


def test_missing_camera_is_reported_in_the_window(make_window, qtbot, tmp_path, no_shipped_weights):
    window = make_window("--source", "7", "--weights-dir", tmp_path)
    qtbot.waitUntil(lambda: "camera 7" in window.banner.text(), timeout=WAIT_MS)
    assert "not found" in window.banner.text()


def test_closing_stops_every_thread_and_releases_the_source(make_window, qtbot, cnn_weights_dir, face_video):
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir)
    qtbot.waitUntil(lambda: window.results_shown >= 1, timeout=WAIT_MS)
    source, worker = window.session.source, window.session.worker
    t0 = time.monotonic()
    window.close()
    elapsed = time.monotonic() - t0
    assert not source.running and not worker.running
    assert elapsed < 2.0  # the promise for closing


def test_command_line_help():
    out = subprocess.run([sys.executable, "-m", "fer_desktop", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    for option in ("--source", "--model", "--device", "--weights-dir"):
        assert option in out.stdout


def test_void_qt_calls_do_not_exhaust_none(make_window):
    """PySide6 6.12.0 on Python 3.11 drops a reference to None per void call (see app/qt_compat.py)."""
    window = build_window(["--source", "7"])  # not shown: no threads needed
    before = sys.getrefcount(None)
    for _ in range(300_000):  # more than None's reference count in a fresh interpreter
        window.view.update()
    assert sys.getrefcount(None) >= before - 1000  # a leak of one reference per call loses 300,000


def test_capture_failure_shows_a_banner_then_recovers(make_window, qtbot, tmp_path, face_video,
                                                      no_shipped_weights):
    opens = []

    def open_capture(source):
        opens.append(source)
        return FaultyCapture(source, good=5 if len(opens) == 1 else 10**9)

    window = make_window("--source", face_video, "--weights-dir", tmp_path)
    qtbot.waitUntil(lambda: window.frames_shown >= 1, timeout=WAIT_MS)  # started with the real capture
    window.session.open_capture = open_capture
    window.set_source(face_video)
    # Old code: the capture thread died, the video froze and nothing was said.
    qtbot.waitUntil(lambda: "capture failed (camera driver fault)" in window.banner.text(), timeout=WAIT_MS)
    assert window.banner.isVisible()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=WAIT_MS)  # cleared on recovery
    frames = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown > frames + 5, timeout=WAIT_MS)
    assert len(opens) >= 2


def test_switching_source_does_not_block_the_window(make_window, qtbot, tmp_path, face_video, group_video,
                                                    no_shipped_weights):
    window = make_window("--source", face_video, "--weights-dir", tmp_path)
    qtbot.waitUntil(lambda: window.frames_shown >= 1, timeout=WAIT_MS)
    window.session.open_capture = lambda source: FaultyCapture(source, release_delay=0.5)
    window.set_source(face_video)
    frames = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= frames + 3, timeout=WAIT_MS)
    t0 = time.monotonic()
    window.set_source(group_video)
    assert time.monotonic() - t0 < 0.3  # old code: 0.5 s and more on the GUI thread, waiting for the release
    frames = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown > frames + 3, timeout=WAIT_MS)


def test_a_damaged_card_is_listed_but_not_offered(make_window, tmp_path, cnn_weights_dir):
    shutil.copy(cnn_weights_dir / "baseline_cnn.safetensors", tmp_path / "baseline_cnn.safetensors")
    (tmp_path / "baseline_cnn.json").write_text("{ not json")
    for suffix in (".json", ".safetensors"):
        shutil.copy(cnn_weights_dir / f"attention_cnn{suffix}", tmp_path / f"attention_cnn{suffix}")
    window = build_window(["--source", "7", "--weights-dir", str(tmp_path)])  # not shown: no threads
    combo = window.model_combo
    index = combo.findData("baseline_cnn")
    # --weights-dir is searched first, so the damaged card is the one found, shipped weights or not.
    assert "damaged" in combo.itemText(index) and not combo.model().item(index).isEnabled()
    assert "baseline_cnn.json" in combo.itemData(index, 3)
    assert "baseline_cnn" not in window.available_models
    attention = combo.findData("attention_cnn")
    assert combo.model().item(attention).isEnabled() and "px input" in combo.itemData(attention, 3)


def test_open_image_through_the_action_and_its_file_dialog(make_window, qtbot, cnn_weights_dir, face_video,
                                                           face_image, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    path = tmp_path / "portrait.jpg"
    cv2.imwrite(str(path), face_image)
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (asked.append(a), (str(path), ""))[1]))
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir)
    qtbot.waitUntil(lambda: model_ready(window), timeout=WAIT_MS)
    window.open_action.trigger()
    qtbot.waitUntil(lambda: window.last_image_result is not None, timeout=WAIT_MS)
    assert asked and "Images (" in asked[0][3]  # the dialog offers image files
    assert window.last_image_result.path == str(path) and len(window.view.faces()) == 1


def test_video_file_entry_of_the_source_combo(make_window, qtbot, tmp_path, face_video, group_video, monkeypatch,
                                              no_shipped_weights):
    from PySide6.QtWidgets import QFileDialog

    from fer_desktop.app.main_window import VIDEO_FILE

    window = make_window("--source", face_video, "--weights-dir", tmp_path)
    qtbot.waitUntil(lambda: window.frames_shown >= 1, timeout=WAIT_MS)
    combo = window.source_combo
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: ("", "")))
    combo.activated.emit(combo.findData(VIDEO_FILE))  # the dialog is cancelled: nothing changes
    assert window.session.source_spec == face_video and combo.currentData() == str(face_video)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(group_video), "")))
    combo.activated.emit(combo.findData(VIDEO_FILE))
    assert str(window.session.source_spec) == str(group_video)
    assert combo.currentText() == group_video.name
    qtbot.waitUntil(lambda: window.frames_shown >= 3 and window.view.has_image(), timeout=WAIT_MS)


def test_cuda_asked_for_without_cuda_falls_back_to_the_cpu(make_window, qtbot, cnn_weights_dir, face_video):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    window = build_window(["--device", "cuda", "--source", str(face_video), "--weights-dir", str(cnn_weights_dir)])
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.results_shown >= 1, timeout=WAIT_MS)
        assert "using the CPU" in window.banner.text() and "cpu" in window.device_label.text().lower()
    finally:
        window.close()
        assert window.shutdown()


def test_an_error_on_every_frame_shows_once_with_a_count_and_clears(make_window, qtbot, cnn_weights_dir,
                                                                    face_video):
    from test_inference_worker import BrokenClassifier

    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn")
    qtbot.waitUntil(lambda: window.results_shown >= 1, timeout=WAIT_MS)
    errors = []
    window.session.worker_event.connect(lambda e: errors.append(e) if e.kind == "error" else None)
    worker = window.session.worker
    real = worker._classifier
    worker._classifier = BrokenClassifier(real)
    qtbot.waitUntil(lambda: "(x" in window.banner.text(), timeout=WAIT_MS)  # counted, not one per frame
    assert window.banner.isVisible() and "forward pass failed" in window.banner.text()
    assert len(errors) <= 3
    worker._classifier = real
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=WAIT_MS)  # cleared on recovery


def test_record_writes_a_row_per_frame_and_face_across_a_model_switch(make_window, qtbot, cnn_weights_dir,
                                                                      group_video, tmp_path):
    import csv

    from fer_desktop.recording import COLUMNS

    window = make_window("--source", group_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--record-dir", tmp_path / "rec")
    qtbot.waitUntil(lambda: window.results_shown >= 1, timeout=WAIT_MS)
    window.record_action.trigger()  # what the button and Ctrl+R do
    assert window.record_action.isChecked() and window.record_label.isVisible()
    qtbot.waitUntil(lambda: window._recorder.frames >= 5, timeout=WAIT_MS)
    window.set_model("attention_cnn")
    qtbot.waitUntil(lambda: window._last_result.model == "attention_cnn", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window._recorder.frames >= 12, timeout=WAIT_MS)
    frames = window._recorder.frames
    snapshot = window.save_snapshot()
    window.close()  # closing while recording: every row reaches the disk
    path = window.last_recording
    assert path.parent == tmp_path / "rec" and not window.record_label.isVisible()
    with open(path, newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == COLUMNS
        f.seek(0)
        rows = list(csv.DictReader(f))
    assert len({r["frame"] for r in rows}) == frames and len(rows) == 2 * frames  # two faces each frame
    assert {r["model"] for r in rows} == {"baseline_cnn", "attention_cnn"}
    assert all(r["label"] for r in rows) and {r["face"] for r in rows} <= {str(i) for i in range(1, 10)}
    image = cv2.imread(str(snapshot))
    assert snapshot.parent == tmp_path / "rec" and image is not None and image.shape[1] > 200


def test_record_into_an_unwritable_folder_says_so(make_window, qtbot, tmp_path, face_video,
                                                  no_shipped_weights):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    window = make_window("--source", face_video, "--weights-dir", tmp_path, "--record-dir", blocker / "rec")
    window.record_action.trigger()
    assert not window.record_action.isChecked() and "cannot record here" in window.banner.text()
    assert window.save_snapshot() is None and "cannot save the snapshot" in window.banner.text()


def test_explain_toggle_draws_maps_on_video_and_image(make_window, qtbot, cnn_weights_dir, group_video, tmp_path,
                                                      group_image):
    import numpy as np

    window = make_window("--source", group_video, "--weights-dir", cnn_weights_dir, "--model", "attention_cnn")
    qtbot.waitUntil(lambda: window.results_shown >= 2, timeout=WAIT_MS)
    assert not window._last_result.maps and not window.view.shows_maps()
    window.explain_check.click()  # what Ctrl+E does
    assert window.explain_method == "gradcam" and window.explain_combo.isEnabled()

    def maps_for_every_face():
        r = window._last_result
        return len(r.faces) == 2 and set(r.maps) == {f.track_id for f in r.faces}
    qtbot.waitUntil(maps_for_every_face, timeout=WAIT_MS)
    maps = window._last_result.maps
    assert all(m.shape == (48, 48) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
               for m in maps.values())
    assert window.view.shows_maps() and "explain" in window._last_result.timings_ms

    window.explain_combo.setCurrentIndex(window.explain_combo.findData("attention"))
    window.explain_combo.activated.emit(window.explain_combo.currentIndex())  # as a user's choice does
    assert window.session.worker.explain == "attention"
    qtbot.waitUntil(lambda: window._last_result.maps and window.results_shown > 5, timeout=WAIT_MS)

    # A still image is labelled with maps while the toggle is on, and without them once it is off.
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), group_image)
    window.open_image(path)
    qtbot.waitUntil(lambda: window.last_image_result is not None, timeout=WAIT_MS)
    result = window.last_image_result
    assert result.maps is not None and result.maps.shape == (len(result.faces), 48, 48)
    assert window.view.shows_maps()
    window.explain_check.click()
    qtbot.waitUntil(lambda: window.last_image_result is not result, timeout=WAIT_MS)
    assert window.last_image_result.maps is None and not window.view.shows_maps()


def test_timeline_follows_the_selected_face(make_window, qtbot, cnn_weights_dir, group_video):
    import numpy as np

    from fer_desktop.emotions import EMOTIONS

    window = make_window("--source", group_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--no-smoothing")
    qtbot.waitUntil(lambda: window.results_shown >= 2 and len(window.view.faces()) == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.timeline.points() >= 4, timeout=WAIT_MS)
    t, probs = window.timeline.series()
    assert probs.shape == (len(t), len(EMOTIONS)) and t[-1] == 0 and (np.diff(t) > 0).all()

    def drawn() -> bool:
        x, _ = window.timeline.curves["happy"].getData()
        return x is not None and len(x) >= 4
    qtbot.waitUntil(drawn, timeout=5000)  # the chart redraws at 10 Hz

    other = [f for f in window.view.faces() if f.track_id != window._selected][0]
    window.timeline.min_step = 0.0  # keep every point: the last one is then the last result's
    window.select_face(other.track_id)
    qtbot.waitUntil(lambda: window._timeline_key == other.track_id and window.timeline.points() >= 2,
                    timeout=WAIT_MS)
    last = window._last_result.faces
    selected = next(f for f in last if f.track_id == other.track_id)
    np.testing.assert_allclose(window.timeline.series()[1][-1], selected.probs)


def test_record_with_video_writes_the_annotated_mp4_beside_the_csv(make_window, qtbot, cnn_weights_dir,
                                                                   face_video, tmp_path):
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--record-dir", tmp_path)
    qtbot.waitUntil(lambda: window.results_shown >= 1, timeout=WAIT_MS)
    window.record_video_check.setChecked(True)
    window.record_action.trigger()
    assert not window.record_video_check.isEnabled()  # fixed while recording
    qtbot.waitUntil(lambda: window._recorder.frames >= 10, timeout=WAIT_MS)
    window.record_action.trigger()
    video = window.last_video
    assert video == window.last_recording.with_suffix(".mp4") and video.is_file()
    cap = cv2.VideoCapture(str(video))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (360, 640) and count >= 10
    assert window.record_video_check.isEnabled() and not window.banner.isVisible()


def test_the_ensemble_entry_serves_the_mean_of_the_trained_models(make_window, qtbot, cnn_weights_dir,
                                                                   face_video):
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "ensemble")
    combo = window.model_combo
    assert combo.model().item(combo.findData("ensemble")).isEnabled()
    assert "baseline_cnn, attention_cnn" in combo.itemData(combo.findData("ensemble"), 3)
    qtbot.waitUntil(lambda: window.results_shown >= 2 and window._last_result.model == "ensemble",
                    timeout=WAIT_MS)
    assert "ensemble" in window.model_label.text() and combo.currentData() == "ensemble"
    window.set_explain("gradcam")  # maps of an ensemble: its members' maps, averaged
    qtbot.waitUntil(lambda: bool(window._last_result.maps), timeout=WAIT_MS)
    window.set_explain(None)
