"""The main window: live video with overlays, the selected face's bars, every face's
probabilities, the model and source selectors, and a status bar.

All work happens in the session's threads; the window only reacts to signals
and draws. Problems are shown in a banner above the video, never as a traceback.
"""

import collections
import logging
import threading
import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QGroupBox,
                               QHeaderView, QLabel, QMainWindow, QPushButton, QSplitter, QStatusBar,
                               QTableWidget, QTableWidgetItem, QToolBar, QVBoxLayout, QWidget)

from fer_desktop.app.colors import EMOTION_COLORS, text_color_on
from fer_desktop.app.emotion_bars import EmotionBars
from fer_desktop.app.session import LiveSession
from fer_desktop.app.timeline import EmotionTimeline
from fer_desktop.app.video_view import VideoView, face_key
from fer_desktop.capture import describe_source, parse_source, probe_camera
from fer_desktop.emotions import EMOTIONS
from fer_desktop.ensemble import ENSEMBLE, ENSEMBLE_TITLE, describe_ensemble, model_names, model_title
from fer_desktop.image_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from fer_desktop.models.registry import get_spec, list_models
from fer_desktop.recording import AnnotatedVideoRecorder, TimelineRecorder, default_recording_path
from fer_desktop.weights import (WeightsError, default_model, describe_card, find_weights, read_card,
                                 train_command)

log = logging.getLogger(__name__)

CAMERA_INDICES = range(4)
VIDEO_FILE = "video-file"  # item data of the "Video file…" entry
VIDEO_CLOSE_S = 5.0  # the longest stopping a recording waits for the MP4's queued frames
HINTS = {"live": "Click a face in the video to select it.",  # by mode: live video or an opened photo
         "image": "Click a face in the photo to select it."}

BANNER_STYLE = {
    "error": "background:#5c1f24; color:#ffe3e3; border-left:4px solid #e5484d;",
    "info": "background:#4a3b12; color:#fff3d6; border-left:4px solid #f5a524;",
}


class CameraCombo(QComboBox):
    """A combo box that says when its list is about to open, so cameras are probed only then."""

    popup_requested = Signal()

    def showPopup(self) -> None:
        self.popup_requested.emit()
        super().showPopup()


class Banner(QLabel):
    """A one-line message above the video; ``origin`` lets a recovery clear its own message."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.origin: str | None = None
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_message(self, text: str, level: str = "error", origin: str = "") -> None:
        self.origin = origin
        self.setStyleSheet(f"QLabel {{ {BANNER_STYLE[level]} padding:6px 10px; }}")
        self.setText(text)
        self.show()

    def clear_message(self, origin: str | None = None) -> None:
        if origin is None or origin == self.origin:
            self.origin = None
            self.setText("")
            self.hide()


class MainWindow(QMainWindow):
    _cameras_probed = Signal(dict)  # camera index -> found, from the probing thread

    def __init__(self, source=0, model: str | None = None, device: str = "auto", weights_dir=None,
                 smoothing: bool = True, record_dir=None, explain: str | None = None, record: bool = False,
                 record_video: bool = False, backend: str = "auto") -> None:
        super().__init__()
        self.record_dir = Path(record_dir) if record_dir else default_recording_path().parent
        self._recorder: TimelineRecorder | None = None
        self._video_recorder: AnnotatedVideoRecorder | None = None
        self._video_warned = False  # the video recorder's error was shown while recording
        self._recording_failure: str | None = None  # why the session stopped the recording
        self.last_recording: Path | None = None
        self.last_video: Path | None = None
        self.last_snapshot: Path | None = None
        self.setWindowTitle("FER Desktop — facial emotion recognition")
        self.weights_dir = weights_dir
        self.device_preference = device
        self.backend = backend
        self.session = LiveSession(self)
        self._source_spec = parse_source(source)
        self._requested_model = model
        self._mode = "live"  # or "image" while an opened image is shown
        self._selected = None
        self._started = False
        self._shut_down = False
        self._stopped_cleanly = True
        self._display_times: collections.deque[float] = collections.deque(maxlen=120)
        self._last_result = None
        self._last_result_time = 0.0
        self._current_model: str | None = None
        self._device = "—"
        self.results_shown = 0
        self.frames_shown = 0
        self.last_image_result = None

        self._build_ui(smoothing)
        self._connect()
        self._start_model = self._initial_model()
        if explain is not None:
            self.set_explain(explain)
        self.record_video_check.setChecked(record_video)
        self._record_at_start = record
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(500)
        self._stats_timer.timeout.connect(self._update_stats)

    # --- building ----------------------------------------------------------------------

    def _build_ui(self, smoothing: bool) -> None:
        bar = QToolBar("Controls", self)
        bar.setMovable(False)
        bar.setIconSize(QSize(16, 16))
        self.addToolBar(bar)

        bar.addWidget(QLabel(" Source "))
        self.source_combo = CameraCombo()
        self.source_combo.setMinimumContentsLength(14)
        for i in CAMERA_INDICES:
            self.source_combo.addItem(f"Camera {i}", i)
        self.source_combo.addItem("Video file…", VIDEO_FILE)
        self._select_source_item(self._source_spec)
        bar.addWidget(self.source_combo)

        bar.addWidget(QLabel("  Model "))
        self.model_combo = QComboBox()
        self.model_combo.setMinimumContentsLength(16)
        self._fill_models()
        bar.addWidget(self.model_combo)

        bar.addSeparator()
        self.smooth_check = QCheckBox("Smooth")
        self.smooth_check.setChecked(smoothing)
        self.smooth_check.setToolTip("Average each face's probabilities over time so labels do not flicker")
        bar.addWidget(self.smooth_check)
        self.explain_check = QCheckBox("Explain")
        self.explain_check.setShortcut(QKeySequence("Ctrl+E"))
        self.explain_check.setToolTip("Show where the model looks: a heat map over every face (Ctrl+E)")
        bar.addWidget(self.explain_check)
        self.explain_combo = QComboBox()
        self.explain_combo.addItem("Grad-CAM", "gradcam")
        self.explain_combo.addItem("Attention", "attention")
        self.explain_combo.setItemData(0, "Grad-CAM (gradients of the top emotion): every model",
                                       Qt.ItemDataRole.ToolTipRole)
        self.explain_combo.setItemData(1, "The model's own spatial attention map: the attention CNN and "
                                          "ResNet-50 + CBAM (Grad-CAM for the others)",
                                       Qt.ItemDataRole.ToolTipRole)
        bar.addWidget(self.explain_combo)
        bar.addSeparator()

        self.open_action = QAction("Open image…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Label every face of a photo")
        bar.addAction(self.open_action)
        self.live_button = QPushButton("Back to live")
        self.live_action = bar.addWidget(self.live_button)
        self.live_action.setVisible(False)
        bar.addSeparator()
        self.record_action = QAction("Record", self)
        self.record_action.setCheckable(True)
        self.record_action.setShortcut(QKeySequence("Ctrl+R"))
        self.record_action.setToolTip("Write every frame's faces and emotions to a CSV timeline (Ctrl+R)")
        bar.addAction(self.record_action)
        self.record_video_check = QCheckBox("Video")
        self.record_video_check.setToolTip("Record also writes the annotated video (MP4) beside the CSV")
        bar.addWidget(self.record_video_check)
        self.snapshot_action = QAction("Snapshot", self)
        self.snapshot_action.setShortcut(QKeySequence("Ctrl+Shift+S"))
        self.snapshot_action.setToolTip("Save the annotated picture as PNG (Ctrl+Shift+S)")
        bar.addAction(self.snapshot_action)

        self.banner = Banner()
        self.view = VideoView()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(0)
        left_layout.addWidget(self.banner)
        left_layout.addWidget(self.view, 1)

        self.bars = EmotionBars()
        self.face_title = QLabel("No face yet")
        self.face_title.setStyleSheet("font-weight:600;")
        selected_box = QGroupBox("Selected face")
        sel_layout = QVBoxLayout(selected_box)
        sel_layout.addWidget(self.face_title)
        sel_layout.addWidget(self.bars)
        self.hint_label = QLabel(HINTS["live"])
        self.hint_label.setStyleSheet("color:palette(mid);")
        sel_layout.addWidget(self.hint_label)

        self.table = QTableWidget(0, 1 + len(EMOTIONS))
        self.table.setHorizontalHeaderLabels(["#"] + [e[:3] for e in EMOTIONS])
        for i, name in enumerate(EMOTIONS):
            self.table.horizontalHeaderItem(1 + i).setToolTip(name)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(24)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.timeline = EmotionTimeline()
        self.timeline_box = timeline_box = QGroupBox("Selected face, last 30 s")  # live video only
        timeline_layout = QVBoxLayout(timeline_box)
        timeline_layout.setContentsMargins(4, 4, 4, 4)
        timeline_layout.addWidget(self.timeline)
        self._timeline_key = None  # whose probabilities the timeline shows

        faces_box = QGroupBox("All faces (%)")
        faces_layout = QVBoxLayout(faces_box)
        faces_layout.addWidget(self.table)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 6)
        right_layout.addWidget(selected_box)
        right_layout.addWidget(timeline_box, 1)
        right_layout.addWidget(faces_box, 1)
        right.setMinimumWidth(330)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setSizes([860, 340])
        self.setCentralWidget(splitter)

        status = QStatusBar()
        self.setStatusBar(status)
        self.device_label = QLabel("Device: —")
        self.model_label = QLabel("Model: —")
        self.display_fps_label = QLabel("Display: – fps")
        self.inference_fps_label = QLabel("Inference: – fps")
        self.latency_label = QLabel("Latency: – ms")
        self.record_label = QLabel("")
        self.record_label.setStyleSheet("color:#e5484d; font-weight:600;")
        self.record_label.hide()
        status.insertPermanentWidget(0, self.record_label)  # temporary messages would hide a normal widget
        for label in (self.device_label, self.model_label, self.display_fps_label, self.inference_fps_label,
                      self.latency_label):
            label.setContentsMargins(6, 0, 6, 0)
            status.addPermanentWidget(label)
        self.resize(1200, 700)

    def _fill_models(self) -> None:
        self.model_combo.clear()
        self.available_models: list[str] = []
        for name in list_models():
            title = get_spec(name).title
            path = find_weights(name, self.weights_dir)
            problem = None
            if path is None:
                label = f"{title} (not trained)"
                problem = f"No weights for {name}. Train them with:\n{train_command(name)}"
            else:
                try:
                    card = read_card(path)
                except WeightsError as exc:  # listed, but not offered: choosing it could only fail
                    label, problem = f"{title} (weights damaged)", str(exc)
            if problem is not None:
                self.model_combo.addItem(label, name)
                index = self.model_combo.count() - 1
                self.model_combo.model().item(index).setEnabled(False)
                self.model_combo.setItemData(index, problem, Qt.ItemDataRole.ToolTipRole)
                continue
            self.model_combo.addItem(title, name)
            self.available_models.append(name)
            self.model_combo.setItemData(self.model_combo.count() - 1, describe_card(card),
                                         Qt.ItemDataRole.ToolTipRole)
        # The ensemble: every trained model at once, once there are two.
        self.model_combo.insertSeparator(self.model_combo.count())
        self.model_combo.addItem(ENSEMBLE_TITLE, ENSEMBLE)
        index = self.model_combo.count() - 1
        if len(self.available_models) >= 2:
            self.available_models.append(ENSEMBLE)
            tip = describe_ensemble(self.weights_dir)
        else:
            self.model_combo.model().item(index).setEnabled(False)
            tip = "Needs at least two trained models"
        self.model_combo.setItemData(index, tip[0].upper() + tip[1:], Qt.ItemDataRole.ToolTipRole)

    def _connect(self) -> None:
        s = self.session
        s.frame_ready.connect(self._on_frame)
        s.result_ready.connect(self._on_result)
        s.image_ready.connect(self._on_image)
        s.source_status.connect(self._on_source_status)
        s.worker_event.connect(self._on_worker_event)
        s.recording_failed.connect(self._on_recording_failed)
        self.view.face_clicked.connect(self.select_face)
        self.table.cellClicked.connect(self._on_table_click)
        self.model_combo.activated.connect(self._on_model_chosen)
        self.source_combo.activated.connect(self._on_source_chosen)
        self.source_combo.popup_requested.connect(self._probe_cameras)
        self._cameras_probed.connect(self._on_cameras_probed)
        self.smooth_check.toggled.connect(self.session.set_smoothing)
        self.explain_check.toggled.connect(self._on_explain_changed)
        self.explain_combo.activated.connect(self._on_explain_changed)
        self.open_action.triggered.connect(self._choose_image)
        self.record_action.toggled.connect(self.set_recording)
        self.snapshot_action.triggered.connect(self.save_snapshot)
        self.live_button.clicked.connect(self.back_to_live)

    # --- start and stop ----------------------------------------------------------------

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._started:
            # Start the threads (and their slow imports) once the window is on screen.
            QTimer.singleShot(0, self.start)

    def start(self) -> None:
        if self._started or self._shut_down:
            return
        self._started = True
        self.session.start_worker(self._start_model, device=self.device_preference, backend=self.backend,
                                  weights_dir=self.weights_dir,
                                  smoothing=self.smooth_check.isChecked())
        self.set_source(self._source_spec)
        self._stats_timer.start()
        if self._record_at_start:
            self.set_recording(True)

    def _initial_model(self) -> str | None:
        wanted = self._requested_model
        if wanted is not None and wanted not in model_names():
            self.banner.show_message(f"Unknown model {wanted!r}; choose one of: {', '.join(model_names())}",
                                     origin="model")
            wanted = None
        if wanted == ENSEMBLE and wanted not in self.available_models:
            self.banner.show_message("The ensemble needs at least two trained models", origin="model")
            wanted = None
        elif wanted is not None and wanted not in self.available_models:
            self.banner.show_message(f"No weights for {wanted}. Train them with: {train_command(wanted)}",
                                     origin="model")
            wanted = None
        model = wanted or default_model(self.weights_dir)
        if model is None:
            self.banner.show_message(
                "No trained model found: the video plays without emotions. Train one with: "
                + train_command("baseline_cnn"), level="info", origin="weights")
        else:
            self._set_combo_model(model)
        return model

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Finish the recording, stop the threads and release the camera; True if the capture and
        inference threads ended within ``timeout`` s (a model still being read is abandoned: see
        ``InferenceWorker.stop``). Always completes, whatever fails on the way."""
        if self._shut_down:
            return self._stopped_cleanly
        self._shut_down = True
        video = None
        try:
            self._stats_timer.stop()
            if self._recorder is not None:
                # Every row written so far reaches the disk; the MP4 finishes while the threads stop.
                recorder, video = self._detach_recording()
                if recorder.error or self._recording_failure:
                    log.warning("%s", self._recording_summary(recorder, video)[0])
        finally:
            try:
                self._stopped_cleanly = self.session.stop(timeout)
            finally:
                if video is not None:
                    video.join(VIDEO_CLOSE_S)
                    if video.problem:
                        log.warning("%s", video.problem)
        return self._stopped_cleanly

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    # --- sources -----------------------------------------------------------------------

    def _select_source_item(self, spec) -> None:
        if isinstance(spec, int):
            index = self.source_combo.findData(spec)
            if index < 0:
                self.source_combo.insertItem(self.source_combo.count() - 1, f"Camera {spec}", spec)
                index = self.source_combo.count() - 2
        else:
            data = str(spec)
            index = self.source_combo.findData(data)
            if index < 0:
                index = self.source_combo.count() - 1  # before "Video file…"
                self.source_combo.insertItem(index, Path(data).name, data)
                self.source_combo.setItemData(index, data, Qt.ItemDataRole.ToolTipRole)
        self.source_combo.setCurrentIndex(index)

    def set_source(self, spec) -> None:
        """Play camera index or video path ``spec`` (switching back to live if an image is shown)."""
        self._source_spec = parse_source(spec)
        self._select_source_item(self._source_spec)
        self._enter_live()
        self._selected = None
        self._last_result = None
        self.view.clear(f"Opening {describe_source(self._source_spec)}…")
        self._set_faces([])
        self.banner.clear_message("source")
        self.session.set_source(self._source_spec)

    @Slot(int)
    def _on_source_chosen(self, index: int) -> None:
        data = self.source_combo.itemData(index)
        if data == VIDEO_FILE:
            patterns = " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES))
            path, _ = QFileDialog.getOpenFileName(self, "Open a video", "",
                                                  f"Videos ({patterns});;All files (*)")
            if not path:
                self._select_source_item(self._source_spec)
                return
            data = path
        if data != self._source_spec or self._mode == "image" or self.session.source is None:
            self.set_source(data)

    @Slot()
    def _probe_cameras(self) -> None:
        if getattr(self, "_probing", False):
            return
        self._probing = True
        busy = self._source_spec if isinstance(self._source_spec, int) else None

        def probe() -> None:
            found = {}
            try:  # probe_camera never raises; the finally still guarantees the menu leaves "probing"
                found = {i: probe_camera(i) for i in CAMERA_INDICES if i != busy}
            finally:
                self._cameras_probed.emit(found)
        threading.Thread(target=probe, name="probe cameras", daemon=True).start()

    @Slot(dict)
    def _on_cameras_probed(self, found: dict) -> None:
        self._probing = False
        for i, ok in found.items():
            index = self.source_combo.findData(i)
            if index >= 0:
                self.source_combo.setItemText(index, f"Camera {i}" if ok else f"Camera {i} (not found)")

    @Slot(object)
    def _on_source_status(self, status) -> None:
        if status.state == "error":
            self.banner.show_message(status.message, origin="source")
            if not self.view.has_image() or self._mode == "live":
                self.view.set_placeholder(status.message)
        elif status.state == "incomplete":  # the video goes on with what the file has
            self.banner.show_message(status.message, level="info", origin="source")
        elif status.state == "playing":
            self.banner.clear_message("source")
            self.statusBar().showMessage(status.message, 3000)
        elif status.state == "ended":
            self.statusBar().showMessage(status.message)

    # --- frames and results -------------------------------------------------------------

    @Slot(object)
    def _on_frame(self, frame) -> None:
        if self._mode != "live":
            return
        self.view.set_frame(frame.image)
        self.frames_shown += 1
        self._display_times.append(time.monotonic())

    @Slot(object)
    def _on_result(self, result) -> None:
        if self._mode != "live":
            return
        self._last_result = result
        self._last_result_time = time.monotonic()
        self.results_shown += 1
        self.view.set_faces(result.faces, result.frame_size, result.maps)
        self._set_faces(result.faces)
        self._extend_timeline(result.faces)

    def _extend_timeline(self, faces) -> None:
        if self._selected != self._timeline_key:
            self.timeline.clear()  # another face: its own history only
            self._timeline_key = self._selected
        for i, face in enumerate(faces):
            if face_key(face, i) == self._selected:
                self.timeline.add(time.monotonic(), face.probs)

    def _set_faces(self, faces) -> None:
        keys = [face_key(f, i) for i, f in enumerate(faces)]
        if self._selected not in keys:
            # Default: the largest face.
            self._selected = (keys[max(range(len(faces)), key=lambda i: faces[i].box.w * faces[i].box.h)]
                              if faces else None)
        self.view.set_selected(self._selected)
        self._fill_table(faces, keys)
        self._show_selected(faces, keys)

    def _show_selected(self, faces, keys) -> None:
        if self._selected is None:
            self.bars.set_probs(None)
            seen = self._last_result is not None or self._mode == "image"
            self.face_title.setText("No face found" if seen else "No face yet")
            return
        i = keys.index(self._selected)
        face = faces[i]
        self.bars.set_probs(face.probs)
        number = f"Face #{i + 1} of {len(faces)}: " if len(faces) > 1 else ""
        self.face_title.setText(f"{number}{face.label} ({100 * face.confidence:.0f}%)")

    def _fill_table(self, faces, keys) -> None:
        table = self.table
        table.setRowCount(len(faces))
        for row, face in enumerate(faces):
            top = int(face.probs.argmax())
            cells = [f"{row + 1}"] + [f"{100 * float(p):.0f}" for p in face.probs]
            for col, text in enumerate(cells):
                item = table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    table.setItem(row, col, item)
                item.setText(text)
                font = item.font()
                font.setBold(col == top + 1)
                item.setFont(font)
                if col == 0:
                    item.setToolTip(face.label)
                    item.setBackground(EMOTION_COLORS[face.label])
                    item.setForeground(text_color_on(EMOTION_COLORS[face.label]))
        if self._selected in keys:
            table.selectRow(keys.index(self._selected))
        else:
            table.clearSelection()

    @Slot(object)
    def select_face(self, key) -> None:
        self._selected = key
        faces = self._current_faces()
        self._set_faces(faces)

    def _current_faces(self) -> list:
        if self._mode == "image":
            return self.last_image_result.faces if self.last_image_result else []
        return self._last_result.faces if self._last_result else []

    @Slot(int, int)
    def _on_table_click(self, row: int, _column: int) -> None:
        faces = self._current_faces()
        if 0 <= row < len(faces):
            self.select_face(face_key(faces[row], row))

    # --- models ---------------------------------------------------------------------------

    def _set_combo_model(self, name: str) -> None:
        index = self.model_combo.findData(name)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)

    def set_model(self, name: str) -> None:
        """Switch model: it loads in the background while the current one keeps serving."""
        self._set_combo_model(name)
        if name == self._current_model and self.session.worker and not self.session.worker.loading:
            return
        self.session.request_model(name)

    @Slot(int)
    def _on_model_chosen(self, index: int) -> None:
        name = self.model_combo.itemData(index)
        if name is not None:
            self.set_model(name)

    @Slot(object)
    def _on_worker_event(self, event) -> None:
        if event.kind == "loading":
            self.statusBar().showMessage(f"Loading {model_title(event.model)}…")
            if self._current_model is None:
                self.view.set_placeholder(f"Loading {model_title(event.model)}…")
        elif event.kind == "model":
            self._current_model = event.model
            self._device = event.device
            self._set_combo_model(event.model)
            self.banner.clear_message("model")
            self.banner.clear_message("weights")
            self.statusBar().showMessage(f"{model_title(event.model)} ready", 3000)
            self._update_stats()
            shown = self.last_image_result
            if self._mode == "image" and shown is not None and shown.model != event.model:
                self.open_image(shown.path)  # the photo on show is labelled again, by the new model
        elif event.kind == "error":
            self.statusBar().clearMessage()
            origin = "model" if event.model else "worker"
            self.banner.show_message(event.message, origin=origin)
            if event.model and self._current_model:
                self._set_combo_model(self._current_model)  # the old model still serves
        elif event.kind == "cleared":
            self.banner.clear_message("worker")
        elif event.kind == "info":
            self.banner.show_message(event.message, level="info", origin="worker")

    # --- explanation maps -----------------------------------------------------------------

    @property
    def explain_method(self) -> str | None:
        """None, or the explanation drawn over the faces: "gradcam" or "attention"."""
        return self.explain_combo.currentData() if self.explain_check.isChecked() else None

    def set_explain(self, method: str | None) -> None:
        """Turn the maps on with ``method`` ("gradcam" or "attention"), or off with None."""
        if method is not None:
            self.explain_combo.setCurrentIndex(max(0, self.explain_combo.findData(method)))
        self.explain_check.setChecked(method is not None)
        self._on_explain_changed()

    @Slot()
    def _on_explain_changed(self, *_) -> None:
        method = self.explain_method
        if method == self.session.explain:
            return
        self.session.set_explain(method)
        if self._mode == "image" and self.last_image_result is not None:
            self.open_image(self.last_image_result.path)  # label it again, with or without maps
        elif method is None and self._last_result is not None:
            self.view.set_faces(self._last_result.faces, self._last_result.frame_size)

    # --- recording --------------------------------------------------------------------------

    @Slot(bool)
    def set_recording(self, on: bool) -> None:
        """Start or stop writing the CSV timeline (``fer_desktop.recording``) into ``record_dir``,
        and the annotated video beside it if "Video" is checked."""
        if on and self._recorder is None and not self._shut_down:
            self._start_recording()
        elif not on and self._recorder is not None:
            recorder, video = self._detach_recording()
            if video is not None:
                video.join(VIDEO_CLOSE_S)
            message, problem = self._recording_summary(recorder, video)
            if problem:
                self.banner.show_message(problem, origin="record")
            self.statusBar().showMessage(message, 10000)
        if self.record_action.isChecked() != (self._recorder is not None):
            self.record_action.setChecked(self._recorder is not None)

    def _start_recording(self) -> None:
        with_video = self.record_video_check.isChecked()
        try:  # a new file: a name already taken (same second) gets -2, -3...
            self._recorder = TimelineRecorder(default_recording_path(self.record_dir),
                                              siblings=(".mp4",) if with_video else ())
        except OSError as exc:
            self.banner.show_message(str(exc), origin="record")
            self.record_action.setChecked(False)
            return
        path = self._recorder.path
        self._video_recorder = None
        self._video_warned = False
        self._recording_failure = None
        if with_video:
            source = self.session.source
            self._video_recorder = AnnotatedVideoRecorder(path.with_suffix(".mp4"),
                                                          fps=source.fps if source else 30.0)
        self.session.start_recording(self._recorder, self._video_recorder)
        self.banner.clear_message("record")
        self.record_label.setText(f"● REC {path.name}")
        self.record_label.setToolTip(str(path) + (" (+ .mp4)" if self._video_recorder else ""))
        self.record_label.show()
        self.record_video_check.setEnabled(False)
        # The REC label names the file (its tooltip the folder): a message beside it would run into it.
        self.statusBar().clearMessage()

    def _detach_recording(self) -> tuple:
        """Stop recording: the CSV is closed, the MP4 asked to finish (the caller joins it).

        Returns (TimelineRecorder, AnnotatedVideoRecorder or None); never raises a write error."""
        self.session.stop_recording()
        recorder, self._recorder = self._recorder, None
        video, self._video_recorder = self._video_recorder, None
        try:
            recorder.close()  # never raises: a write error ends up in recorder.error
        finally:
            if video is not None:
                video.finish()
                self.last_video = video.path if video.written else None
            self.last_recording = recorder.path
            self.record_label.hide()
            self.record_video_check.setEnabled(True)
        return recorder, video

    def _recording_summary(self, recorder, video) -> tuple[str, str | None]:
        """(status bar message, banner message or None) for a recording just stopped."""
        problems = []
        failure = recorder.error or self._recording_failure
        if failure:
            problems.append(f"recording stopped: {failure}; "
                            f"{recorder.saved_rows} rows saved to {recorder.path}")
            message = problems[0]
        else:
            message = f"Recorded {recorder.frames} frames ({recorder.rows} rows) to {recorder.path}"
        if video is not None:
            if video.problem:
                problems.append(video.problem)
            elif video.written:
                message += f" and {video.path.name}"
            if video.dropped:
                message += f" ({video.dropped} video frames dropped)"
        return message, "; ".join(problems) or None

    @Slot(object)
    def _on_recording_failed(self, failure) -> None:
        """The session detached a recorder that failed (a full disk): stop, and say what was saved."""
        recorder, why = failure
        if recorder is self._recorder:
            self._recording_failure = why
            self.set_recording(False)

    @Slot()
    def save_snapshot(self) -> Path | None:
        """Save the frame with its overlays as PNG in ``record_dir``, at the frame's full resolution.

        Drawn by the same renderer as the view, so the file looks like the window."""
        import cv2

        try:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.banner.show_message(f"{self.record_dir}: cannot save the snapshot ({exc.strerror or exc})",
                                     origin="record")
            return None
        picture = self.view.rendered()
        if picture is None:
            self.statusBar().showMessage("Nothing to save yet: no picture is shown", 5000)
            return None
        data = cv2.imencode(".png", picture)[1].tobytes()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1, 1000):
            path = self.record_dir / (f"snapshot-{stamp}.png" if n == 1 else f"snapshot-{stamp}-{n}.png")
            try:
                with open(path, "xb") as f:  # never overwrite an earlier snapshot
                    f.write(data)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                path.unlink(missing_ok=True)  # no half-written picture left behind
                self.banner.show_message(f"{path}: cannot save the snapshot ({exc.strerror or exc})",
                                         origin="record")
                return None
        self.last_snapshot = path
        self.statusBar().showMessage(f"Snapshot saved to {path}", 8000)
        return path

    # --- still images -----------------------------------------------------------------------

    @Slot()
    def _choose_image(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", "",
                                              f"Images ({patterns});;All files (*)")
        if path:
            self.open_image(path)

    def open_image(self, path) -> None:
        """Label every face of the image at ``path``; the result replaces the video until "Back to live"."""
        self.statusBar().showMessage(f"Looking for faces in {Path(path).name}…")
        self.session.open_image(path)

    @Slot(object)
    def _on_image(self, result) -> None:
        self.statusBar().clearMessage()
        if result.error:
            self.banner.show_message(result.error, origin="image")
            return
        self.last_image_result = result
        self._mode = "image"
        self.session.close_source(timeout=0)  # release the camera while a photo is shown
        self.live_action.setVisible(True)
        self.hint_label.setText(HINTS["image"])
        self.timeline.clear()  # a photo has no history: the video's is gone with it
        self._timeline_key = None
        self.timeline_box.hide()
        self._selected = None
        self.view.set_frame(result.image)
        maps = dict(enumerate(result.maps)) if result.maps is not None else None
        self.view.set_faces(result.faces, (result.image.shape[1], result.image.shape[0]), maps,
                            whole_image=result.whole_image)
        self._set_faces(result.faces)
        name = Path(result.path).name
        if result.whole_image:
            self.banner.show_message(f"No face found in {name}: the whole image was classified as one face.",
                                     level="info", origin="image")
        elif not result.faces:
            self.banner.show_message(f"No face found in {name}.", level="info", origin="image")
        else:
            self.banner.clear_message("image")
            n = len(result.faces)
            self.statusBar().showMessage(f"{name}: {n} face{'s' if n != 1 else ''} found")

    def _enter_live(self) -> None:
        if self._mode == "image":
            self._mode = "live"
            self.banner.clear_message("image")
            self.live_action.setVisible(False)
            self.hint_label.setText(HINTS["live"])
            self.timeline_box.show()

    @Slot()
    def back_to_live(self) -> None:
        self.set_source(self._source_spec)

    # --- status bar -------------------------------------------------------------------------

    @Slot()
    def _update_stats(self) -> None:
        now = time.monotonic()
        title = model_title(self._current_model) if self._current_model else "none"
        self.model_label.setText(f"Model: {title}")
        if self._recorder is not None:
            self.record_label.setText(f"● REC {self._recorder.path.name}: {self._recorder.frames} frames")
        video = self._video_recorder
        if video is not None and video.error and not self._video_warned:  # the CSV goes on without it
            self._video_warned = True
            self.banner.show_message(video.error, origin="record")
        self.device_label.setText(f"Device: {self._device}")
        recent = [t for t in self._display_times if now - t <= 2.0]
        if self._mode == "live" and len(recent) >= 2 and now - recent[-1] < 1.0:
            self.display_fps_label.setText(f"Display: {(len(recent) - 1) / (recent[-1] - recent[0]):.1f} fps")
        else:
            self.display_fps_label.setText("Display: – fps")
        r = self._last_result
        if self._mode == "live" and r is not None and now - self._last_result_time < 2.0:
            self.inference_fps_label.setText(f"Inference: {r.fps:.1f} fps")
            self.latency_label.setText(f"Latency: {r.latency_ms:.0f} ms")
            self.latency_label.setToolTip(", ".join(f"{k} {v:.1f} ms" for k, v in r.timings_ms.items()))
        else:
            self.inference_fps_label.setText("Inference: – fps")
            self.latency_label.setText("Latency: – ms")
