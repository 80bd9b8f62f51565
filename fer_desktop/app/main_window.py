"""The main window: live video with overlays, the selected face's bars, every face's
probabilities, the model and source selectors, and a status bar.

All work happens in the session's threads; the window only reacts to signals
and draws. Problems are shown in a banner above the video, never as a traceback.

The window is built from rooms of one idea each: the toolbar (``toolbar.ControlsBar``),
the panel beside the video (``side_panel.SidePanel``), the status bar
(``status_bar.StatusBar``), photo mode (``photo_mode.PhotoModeMixin``) and Record and
Snapshot (``record_snapshot.RecordingMixin``). This module keeps what ties them together:
starting and stopping, the source, the model, and which face is selected.
"""

import collections
import logging
import time

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QFileDialog, QMainWindow, QSplitter, QVBoxLayout, QWidget

from fer_desktop.app.photo_mode import PhotoModeMixin
from fer_desktop.app.record_snapshot import VIDEO_CLOSE_S, RecordingMixin
from fer_desktop.app.session import LiveSession
from fer_desktop.app.side_panel import SidePanel
from fer_desktop.app.status_bar import StatusBar
from fer_desktop.app.toolbar import VIDEO_FILE, ControlsBar
from fer_desktop.app.video_view import VideoView, face_key
from fer_desktop.app.widgets import Banner
from fer_desktop.capture import describe_source, parse_source
from fer_desktop.ensemble import ENSEMBLE, model_names, model_title
from fer_desktop.image_io import VIDEO_SUFFIXES
from fer_desktop.weights import default_model, train_command

log = logging.getLogger(__name__)


class MainWindow(PhotoModeMixin, RecordingMixin, QMainWindow):
    def __init__(self, source=0, model: str | None = None, device: str = "auto", weights_dir=None,
                 smoothing: bool = True, record_dir=None, explain: str | None = None, record: bool = False,
                 record_video: bool = False, backend: str = "auto") -> None:
        super().__init__()
        self._init_recording(record_dir)
        self._init_photo_mode()
        self.setWindowTitle("FER Desktop — facial emotion recognition")
        self.weights_dir = weights_dir
        self.device_preference = device
        self.backend = backend
        self.session = LiveSession(self)
        self._source_spec = parse_source(source)
        self._requested_model = model
        self._selected = None
        self._timeline_key = None  # whose probabilities the timeline shows
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
        self.controls = bar = ControlsBar(smoothing, self)
        self.addToolBar(bar)
        bar.select_source(self._source_spec)
        self.available_models = bar.fill_models(self.weights_dir)
        # The window's names for its controls, panel and labels (the tests and bench hooks use them too).
        self.source_combo, self.model_combo, self.smooth_check = bar.source_combo, bar.model_combo, bar.smooth_check
        self.explain_check, self.explain_combo = bar.explain_check, bar.explain_combo
        self.open_action, self.live_button, self.live_action = bar.open_action, bar.live_button, bar.live_action
        self.record_action, self.record_video_check = bar.record_action, bar.record_video_check
        self.snapshot_action = bar.snapshot_action

        self.banner = Banner()
        self.view = VideoView()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(0)
        left_layout.addWidget(self.banner)
        left_layout.addWidget(self.view, 1)

        self.side_panel = panel = SidePanel()
        self.face_title, self.bars, self.hint_label = panel.face_title, panel.bars, panel.hint_label
        self.table, self.timeline, self.timeline_box = panel.table, panel.timeline, panel.timeline_box

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(panel)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setSizes([860, 340])
        self.setCentralWidget(splitter)

        status = StatusBar()
        self.setStatusBar(status)
        self.record_label, self.device_label, self.model_label = (status.record_label, status.device_label,
                                                                  status.model_label)
        self.display_fps_label, self.inference_fps_label = status.display_fps_label, status.inference_fps_label
        self.latency_label = status.latency_label
        self.resize(1200, 700)

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
            self.controls.select_model(model)
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
            video = self._stop_recording_at_exit()  # the MP4 finishes while the threads stop
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

    def set_source(self, spec) -> None:
        """Play camera index or video path ``spec`` (switching back to live if an image is shown)."""
        self._source_spec = parse_source(spec)
        self.controls.select_source(self._source_spec)
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
                self.controls.select_source(self._source_spec)
                return
            data = path
        if data != self._source_spec or self._mode == "image" or self.session.source is None:
            self.set_source(data)

    @Slot()
    def _probe_cameras(self) -> None:
        spec = self._source_spec
        self.controls.probe_cameras(busy=spec if isinstance(spec, int) else None)

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

    # --- frames, results and the selected face -------------------------------------------

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
        row = keys.index(self._selected) if self._selected in keys else None
        self.side_panel.fill_table(faces, row)
        seen = self._last_result is not None or self._mode == "image"
        self.side_panel.show_selected(faces, row, seen)

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

    def set_model(self, name: str) -> None:
        """Switch model: it loads in the background while the current one keeps serving."""
        self.controls.select_model(name)
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
            self.controls.select_model(event.model)
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
                self.controls.select_model(self._current_model)  # the old model still serves
        elif event.kind == "cleared":
            self.banner.clear_message("worker")
        elif event.kind == "info":
            self.banner.show_message(event.message, level="info", origin="worker")

    # --- explanation maps -----------------------------------------------------------------

    @property
    def explain_method(self) -> str | None:
        """None, or the explanation drawn over the faces: "gradcam" or "attention"."""
        return self.controls.explain_method

    def set_explain(self, method: str | None) -> None:
        """Turn the maps on with ``method`` ("gradcam" or "attention"), or off with None."""
        self.controls.choose_explain(method)
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

    # --- status bar -------------------------------------------------------------------------

    @Slot()
    def _update_stats(self) -> None:
        now = time.monotonic()
        status = self.statusBar()
        status.show_model(model_title(self._current_model) if self._current_model else "none", self._device)
        self._show_recording_progress()
        live = self._mode == "live"
        recent = [t for t in self._display_times if now - t <= 2.0]
        display_fps = None
        if live and len(recent) >= 2 and now - recent[-1] < 1.0:
            display_fps = (len(recent) - 1) / (recent[-1] - recent[0])
        r = self._last_result
        status.show_rates(display_fps, r if live and r is not None and now - self._last_result_time < 2.0
                          else None)
