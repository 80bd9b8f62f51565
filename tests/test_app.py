"""The window, offscreen, with real threads: video files, real mediapipe, tiny weights."""

import os
import re
import shutil
import subprocess
import sys
import threading

import cv2
import pytest

from conftest import FaultyCapture
from test_recording import tiny_disk  # noqa: F401  (a fixture: a real full disk)
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
    frames_before = window.frames_shown
    with qtbot.waitSignal(window.session.worker_event, timeout=WAIT_MS,
                          check_params_cb=lambda e: e.kind == "model" and e.model == "attention_cnn"):
        window.set_model("attention_cnn")
    assert window.frames_shown > frames_before  # the video went on while the model loaded
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


def test_image_without_face_is_classified_whole_only_if_it_is_a_face_crop(make_window, qtbot, cnn_weights_dir, face_video,
                                                           tmp_path, face_image):
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), face_image[:40, :40])
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir)
    qtbot.waitUntil(lambda: model_ready(window), timeout=WAIT_MS)
    window.open_image(path)
    qtbot.waitUntil(lambda: window.last_image_result is not None, timeout=WAIT_MS)
    assert window.last_image_result.whole_image and len(window.view.faces()) == 1
    assert "whole image" in window.banner.text()
    # A photo (larger than a face crop) without a face gets no emotion, and says so.
    landscape = tmp_path / "landscape.png"
    cv2.imwrite(str(landscape), cv2.resize(face_image[:40, :40], (640, 400)))
    window.open_image(landscape)
    qtbot.waitUntil(lambda: window.last_image_result.path == str(landscape), timeout=WAIT_MS)
    assert not window.last_image_result.faces and not window.last_image_result.whole_image
    assert window.banner.text() == "No face found in landscape.png." and not window.view.faces()


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
    window.close()
    assert not source.running and not worker.running  # how long it takes: bench/gui.py


def test_command_line_help():
    out = subprocess.run([sys.executable, "-m", "fer_desktop", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    for option in ("--source", "--model", "--device", "--weights-dir"):
        assert option in out.stdout


def test_the_installed_pyside_does_not_leak_none():
    """pyproject keeps PySide6 6.12.0 off Python 3.11, where void calls leak None (app/qt_compat.py)."""
    from fer_desktop.app.qt_compat import pyside_leaks_none

    assert not pyside_leaks_none()


@pytest.mark.skipif(sys.version_info >= (3, 12) or hasattr(sys, "gettotalrefcount"),
                    reason="None is immortal from Python 3.12; debug builds are left alone")
def test_the_none_guard_lifts_none_out_of_reach_of_a_leak(monkeypatch):
    from fer_desktop.app import qt_compat

    monkeypatch.setattr(qt_compat, "pyside_leaks_none", lambda: True)  # as a leaking build reports
    assert qt_compat.guard_none_refcount()
    assert sys.getrefcount(None) > qt_compat._IMMORTAL_MARGIN  # a leak of one per call never reaches zero


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
    events = []  # the slow driver's opens and releases
    # The first device opened here is slow to let go; the next one is not (closing waits for it).
    window.session.open_capture = lambda source: FaultyCapture(source, release_delay=0.0 if events else 2.0,
                                                               log=events)
    window.set_source(face_video)
    frames = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= frames + 3, timeout=WAIT_MS)
    window.set_source(group_video)
    # Old code waited on the GUI thread for the old device's release before returning.
    assert [kind for kind, _ in events] == ["open"]
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


def test_window_snapshot_recording_and_annotate_draw_the_same_picture(make_window, qtbot, cnn_weights_dir,
                                                                       face_video, group_image, tmp_path):
    """One renderer: fer-predict's annotated copy, Snapshot, the recorded video and the screen agree."""
    import numpy as np
    from PySide6.QtGui import QImage

    from fer_desktop.predict_cli import main
    from fer_desktop.recording import AnnotatedVideoRecorder

    photo = tmp_path / "group.png"
    cv2.imwrite(str(photo), group_image)
    assert main([str(photo), "--model", "baseline_cnn", "--weights-dir", str(cnn_weights_dir),
                 "--annotate", str(tmp_path / "annotated")]) == 0
    annotated = cv2.imread(str(tmp_path / "annotated" / "group.annotated.png"))

    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--record-dir", tmp_path / "rec")
    qtbot.waitUntil(lambda: model_ready(window), timeout=WAIT_MS)
    window.open_image(photo)
    qtbot.waitUntil(lambda: window.last_image_result is not None, timeout=WAIT_MS)
    result = window.last_image_result
    window.view.set_selected(None)  # the window's outline of the chosen face is all it adds
    snapshot = cv2.imread(str(window.save_snapshot()))
    assert snapshot.shape == group_image.shape  # the photo's own resolution, not the window's
    assert np.array_equal(snapshot, annotated)

    recorder = AnnotatedVideoRecorder(tmp_path / "rec" / "clip.mp4", fps=10)
    recorder.add(group_image, result.faces, dict(enumerate(result.maps)) if result.maps is not None else None)
    assert recorder.close() and recorder.problem is None
    capture = cv2.VideoCapture(str(tmp_path / "rec" / "clip.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == annotated.shape
    # The same picture, video-compressed: where overlays are, the frame is the annotated copy's.
    overlays = np.abs(annotated.astype(int) - group_image).max(axis=2) > 40
    off_annotated = np.abs(frame.astype(int) - annotated)[overlays].mean()
    assert off_annotated < 0.3 * np.abs(frame.astype(int) - group_image)[overlays].mean() and off_annotated < 15

    # On screen: the same drawing, made at the size the photo is shown.
    qtbot.waitUntil(lambda: window.view.isVisible(), timeout=WAIT_MS)
    target = window.view._target()
    x, y, w, h = (round(v) for v in (target.x(), target.y(), target.width(), target.height()))
    shown = window.view.grab().toImage().convertToFormat(QImage.Format.Format_BGR888)
    pixels = np.frombuffer(shown.constBits(), np.uint8).reshape(shown.height(), shown.bytesPerLine())
    pixels = pixels[:, :3 * shown.width()].reshape(shown.height(), shown.width(), 3)[y:y + h, x:x + w]
    expected = window.view.rendered((w, h))
    assert (np.abs(pixels.astype(int) - expected).max(axis=2) <= 2).mean() > 0.99
    drawn = np.abs(expected.astype(int) - cv2.resize(group_image, (w, h), interpolation=cv2.INTER_AREA))
    assert (drawn.max(axis=2) > 40).mean() > 0.02  # and it has overlays on it


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


def test_timeline_axis_spans_the_history_so_far(qtbot):
    """Not a thin strip at the right edge: the first seconds fill the chart, up to 30 s."""
    import numpy as np

    from fer_desktop.app.timeline import EmotionTimeline

    timeline = EmotionTimeline(window_s=30.0)
    qtbot.addWidget(timeline)
    timeline.show()
    qtbot.waitUntil(lambda: timeline.plot is not None, timeout=5000)
    probs = np.full(7, 1 / 7, np.float32)
    spans, now = [], 100.0
    for until in (102.0, 112.0, 150.0):  # 2, 12 and 50 s of history
        while now < until:
            timeline.add(now, probs)
            now += 0.2
        timeline._redraw()
        (x0, x1), _ = timeline.plot.getViewBox().viewRange()
        spans.append((round(x0, 1), round(x1, 1)))
    assert spans == [(-5.0, 0.0), (-11.8, 0.0), (-30.0, 0.0)]


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


def test_an_unreadable_ensemble_card_is_said_and_the_ensemble_still_serves(make_window, qtbot, cnn_weights_dir,
                                                                          face_video, tmp_path):
    import shutil

    folder = tmp_path / "weights"
    shutil.copytree(cnn_weights_dir, folder)
    (folder / "ensemble.json").write_text("{not json")
    window = make_window("--source", face_video, "--weights-dir", folder, "--model", "ensemble")
    qtbot.waitUntil(lambda: window.results_shown >= 1 and window._last_result.model == "ensemble",
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "ensemble.json is unreadable" in window.banner.text(), timeout=WAIT_MS)
    assert "weighted equally" in window.banner.text() and "\n" not in window.banner.text()


def test_switching_model_relabels_the_open_photo_and_the_panel_follows_the_mode(
        make_window, qtbot, cnn_weights_dir, face_video, face_image, tmp_path):
    import numpy as np

    path = tmp_path / "portrait.jpg"
    cv2.imwrite(str(path), face_image)
    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn")
    qtbot.waitUntil(lambda: window.timeline.points() >= 2, timeout=WAIT_MS)  # the video's history
    assert window.hint_label.text() == "Click a face in the video to select it."
    window.open_image(path)
    qtbot.waitUntil(lambda: window.last_image_result is not None, timeout=WAIT_MS)
    first = window.last_image_result
    assert first.model == "baseline_cnn" and len(first.faces) == 1
    # A photo has no history: the video's is gone, and the hint speaks of the photo.
    assert window.timeline.points() == 0 and not window.timeline_box.isVisible()
    assert window.hint_label.text() == "Click a face in the photo to select it."
    window.set_model("attention_cnn")
    # Old code: the status said the new model was ready while the photo kept the old model's numbers.
    qtbot.waitUntil(lambda: window.last_image_result.model == "attention_cnn", timeout=WAIT_MS)
    relabelled = window.last_image_result
    assert relabelled.path == first.path and len(relabelled.faces) == 1
    assert not np.array_equal(relabelled.faces[0].probs, first.faces[0].probs)
    np.testing.assert_allclose(window.bars.probs(), relabelled.faces[0].probs)  # what the panel shows
    assert window._mode == "image" and window.session.source is None
    window.back_to_live()
    assert window.timeline_box.isVisible()
    assert window.hint_label.text() == "Click a face in the video to select it."


def test_a_truncated_video_says_so_once_in_the_window(make_window, qtbot, tmp_path, no_shipped_weights):
    from test_capture import make_truncated_video

    clip, readable = make_truncated_video(tmp_path / "cut.mp4")
    window = make_window("--source", clip, "--weights-dir", tmp_path)
    qtbot.waitUntil(lambda: "ended early" in window.banner.text(), timeout=WAIT_MS)
    assert window.banner.text() == (f"cut.mp4 ended early: {readable} of 472 frames could be read "
                                    "(the file is incomplete)")
    frames = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown > frames + readable, timeout=WAIT_MS)  # it loops what it has
    assert window.banner.isVisible() and "ended early" in window.banner.text()


class GatedClassifier:
    """A real classifier whose forward passes wait, once ``armed``, until ``release`` (a slow model)."""

    def __init__(self, real):
        self.real = real
        self.name, self.device, self.title = real.name, real.device, real.title
        self.blocked, self.release = threading.Event(), threading.Event()

    def predict(self, faces):
        if not self.release.is_set():
            self.blocked.set()
            self.release.wait(30)
        return self.real.predict(faces)


def test_results_in_flight_from_the_old_source_are_neither_shown_nor_recorded(
        make_window, qtbot, cnn_weights_dir, face_video, group_video, tmp_path):
    import collections
    import csv

    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--record-dir", tmp_path)
    qtbot.waitUntil(lambda: window.results_shown >= 2, timeout=WAIT_MS)
    worker = window.session.worker
    gate = GatedClassifier(worker._classifier)
    worker._classifier = gate
    assert gate.blocked.wait(30)  # a frame of the one-face video is being labelled...
    window.record_action.trigger()
    shown = []
    window.session.result_ready.connect(shown.append)
    window.set_source(group_video)  # ...when the source becomes a video with two faces in every frame
    gate.release.set()
    qtbot.waitUntil(lambda: len(shown) >= 5, timeout=WAIT_MS)
    window.record_action.trigger()
    # Old code: the one-face result arrived after the switch, drawn over the new video and recorded
    # with the old video's frame number.
    assert all(len(r.faces) == 2 for r in shown), [len(r.faces) for r in shown]
    with open(window.last_recording, newline="", encoding="utf-8") as f:
        per_frame = collections.Counter(row["frame"] for row in csv.DictReader(f))
    assert per_frame and set(per_frame.values()) == {2}


def test_a_full_disk_stops_the_recording_with_a_message_and_the_labels_go_on(
        make_window, qtbot, cnn_weights_dir, face_video, tiny_disk):
    import csv

    from fer_desktop.recording import COLUMNS

    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--record-dir", tiny_disk / "rec")
    qtbot.waitUntil(lambda: window.results_shown >= 1, timeout=WAIT_MS)
    window.record_action.trigger()
    assert window.record_action.isChecked()
    # Old code: the flush raised in the inference thread, before the result reached the window: frozen labels.
    qtbot.waitUntil(lambda: "recording stopped: disk full" in window.banner.text(), timeout=WAIT_MS)
    assert not window.record_action.isChecked() and not window.record_label.isVisible()
    path = window.last_recording
    saved = re.fullmatch(rf"recording stopped: disk full; (\d+) rows saved to {re.escape(str(path))}",
                         window.banner.text())
    assert saved, window.banner.text()
    with open(path, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert lines[0] == COLUMNS and len(lines) - 1 == int(saved[1]) > 0
    assert all(len(line) == len(COLUMNS) for line in lines)  # the file stays a valid CSV
    shown = window.results_shown
    qtbot.waitUntil(lambda: window.results_shown > shown + 3, timeout=WAIT_MS)  # the labels go on


def test_record_restarted_within_the_same_second_keeps_both_files(make_window, qtbot, tmp_path, face_video,
                                                                  no_shipped_weights, monkeypatch):
    from fer_desktop.recording import default_recording_path

    # Every recording starts "in the same second".
    monkeypatch.setattr("fer_desktop.app.record_snapshot.default_recording_path",
                        lambda folder: default_recording_path(folder, now=0))
    window = make_window("--source", face_video, "--weights-dir", tmp_path / "none",
                         "--record-dir", tmp_path / "rec")
    paths = []
    for _ in range(2):
        window.record_action.trigger()
        window.record_action.trigger()
        paths.append(window.last_recording)
    # Old code: the same file, reopened and emptied.
    assert paths[0] != paths[1] and paths[1].name == paths[0].stem + "-2.csv"
    assert all(p.is_file() for p in paths)


def test_a_video_encoder_that_dies_is_reported_and_the_csv_goes_on(make_window, qtbot, cnn_weights_dir,
                                                                   face_video, tmp_path):
    import numpy as np
    from conftest import read_video

    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--record-dir", tmp_path, "--record-video")
    qtbot.waitUntil(lambda: window.results_shown >= 1, timeout=WAIT_MS)
    window.record_action.trigger()
    video = window._video_recorder
    qtbot.waitUntil(lambda: video.written >= 3, timeout=WAIT_MS)
    video.add(np.zeros((360, 640, 3), np.uint8), [object()])  # a frame the encoder cannot draw: it stops
    # Old code: nothing was said until Record was pressed again, which then hung 5 s on the dead encoder.
    qtbot.waitUntil(lambda: "video recording stopped" in window.banner.text(), timeout=WAIT_MS)
    frames = window._recorder.frames
    qtbot.waitUntil(lambda: window._recorder.frames > frames + 3, timeout=WAIT_MS)  # the CSV goes on
    window.record_action.trigger()
    assert "the file is incomplete" in window.banner.text() and not window.record_action.isChecked()
    assert window.last_video == video.path and len(read_video(video.path)) == video.written >= 3


def test_closing_with_a_model_loading_and_a_recording_running(make_window, qtbot, cnn_weights_dir, face_video,
                                                              tmp_path):
    import csv

    from conftest import read_video, wait_for

    window = make_window("--source", face_video, "--weights-dir", cnn_weights_dir, "--model", "baseline_cnn",
                         "--record-dir", tmp_path, "--record", "--record-video")
    qtbot.waitUntil(lambda: window._recorder is not None and window._recorder.frames >= 5, timeout=WAIT_MS)
    session = window.session
    source, worker = session.source, session.worker
    timeline, video = window._recorder, window._video_recorder
    reading, release = threading.Event(), threading.Event()
    real_load = worker._load_classifier

    def slow_load(name):  # a model file that takes long to read: the read itself cannot be interrupted
        reading.set()
        release.wait(30)
        return real_load(name)

    worker._load_classifier = slow_load
    window.set_model("attention_cnn")
    assert reading.wait(30)
    try:
        window.close()
        assert not window.isVisible()
        # Old code: the close waited for the load, then reported a failure.
        assert window.shutdown()  # the capture and inference threads have ended
        assert not source.running and not worker.running
        assert worker.loader_running  # still reading: abandoned, a daemon that cannot keep the process
        assert all(t.daemon for t in threading.enumerate() if t.name == "model loader")
        # Both files are finished.
        assert timeline.closed and video.join(0) and video.problem is None
        with open(timeline.path, newline="", encoding="utf-8") as f:
            assert len(list(csv.DictReader(f))) == timeline.rows > 0
        assert len(read_video(video.path)) == video.written > 0
    finally:
        release.set()
    assert wait_for(lambda: not worker.loader_running, timeout=30)
    assert worker.model_name == "baseline_cnn"  # the abandoned model was never swapped in
