"""The main window's toolbar: source and model, smoothing and explanation maps, photo,
Record and Snapshot.

The bar owns its controls and what they list (cameras, videos, models with their weights);
the window connects their signals and does the work.
"""

import threading
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QPushButton, QToolBar

from fer_desktop.app.widgets import CameraCombo
from fer_desktop.capture import probe_camera
from fer_desktop.ensemble import ENSEMBLE, ENSEMBLE_TITLE, describe_ensemble
from fer_desktop.models.registry import get_spec, list_models
from fer_desktop.weights import WeightsError, describe_card, find_weights, read_card, train_command

CAMERA_INDICES = range(4)
VIDEO_FILE = "video-file"  # item data of the "Video file…" entry


class ControlsBar(QToolBar):
    _cameras_probed = Signal(dict)  # camera index -> found, from the probing thread

    def __init__(self, smoothing: bool, parent=None) -> None:
        super().__init__("Controls", parent)
        self.setMovable(False)
        self.setIconSize(QSize(16, 16))
        self._probing = False
        self._add_choices(smoothing)
        self.addSeparator()
        self._add_actions()
        self._cameras_probed.connect(self._on_cameras_probed)

    def _add_choices(self, smoothing: bool) -> None:
        self.addWidget(QLabel(" Source "))
        self.source_combo = CameraCombo()
        self.source_combo.setMinimumContentsLength(14)
        for i in CAMERA_INDICES:
            self.source_combo.addItem(f"Camera {i}", i)
        self.source_combo.addItem("Video file…", VIDEO_FILE)
        self.addWidget(self.source_combo)

        self.addWidget(QLabel("  Model "))
        self.model_combo = QComboBox()
        self.model_combo.setMinimumContentsLength(16)
        self.addWidget(self.model_combo)

        self.addSeparator()
        self.smooth_check = QCheckBox("Smooth")
        self.smooth_check.setChecked(smoothing)
        self.smooth_check.setToolTip("Average each face's probabilities over time so labels do not flicker")
        self.addWidget(self.smooth_check)
        self.explain_check = QCheckBox("Explain")
        self.explain_check.setShortcut(QKeySequence("Ctrl+E"))
        self.explain_check.setToolTip("Show where the model looks: a heat map over every face (Ctrl+E)")
        self.addWidget(self.explain_check)
        self.explain_combo = QComboBox()
        self.explain_combo.addItem("Grad-CAM", "gradcam")
        self.explain_combo.addItem("Attention", "attention")
        self.explain_combo.setItemData(0, "Grad-CAM (gradients of the top emotion): every model",
                                       Qt.ItemDataRole.ToolTipRole)
        self.explain_combo.setItemData(1, "The model's own spatial attention map: the attention CNN and "
                                          "ResNet-50 + CBAM (Grad-CAM for the others)",
                                       Qt.ItemDataRole.ToolTipRole)
        self.addWidget(self.explain_combo)

    def _add_actions(self) -> None:
        self.open_action = QAction("Open image…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Label every face of a photo")
        self.addAction(self.open_action)
        self.live_button = QPushButton("Back to live")
        self.live_action = self.addWidget(self.live_button)
        self.live_action.setVisible(False)
        self.addSeparator()
        self.record_action = QAction("Record", self)
        self.record_action.setCheckable(True)
        self.record_action.setShortcut(QKeySequence("Ctrl+R"))
        self.record_action.setToolTip("Write every frame's faces and emotions to a CSV timeline (Ctrl+R)")
        self.addAction(self.record_action)
        self.record_video_check = QCheckBox("Video")
        self.record_video_check.setToolTip("Record also writes the annotated video (MP4) beside the CSV")
        self.addWidget(self.record_video_check)
        self.snapshot_action = QAction("Snapshot", self)
        self.snapshot_action.setShortcut(QKeySequence("Ctrl+Shift+S"))
        self.snapshot_action.setToolTip("Save the annotated picture as PNG (Ctrl+Shift+S)")
        self.addAction(self.snapshot_action)

    # --- sources -----------------------------------------------------------------------

    def select_source(self, spec) -> None:
        """Show camera index or video path ``spec`` as the current source, adding its entry if new."""
        combo = self.source_combo
        if isinstance(spec, int):
            index = combo.findData(spec)
            if index < 0:
                combo.insertItem(combo.count() - 1, f"Camera {spec}", spec)
                index = combo.count() - 2
        else:
            data = str(spec)
            index = combo.findData(data)
            if index < 0:
                index = combo.count() - 1  # before "Video file…"
                combo.insertItem(index, Path(data).name, data)
                combo.setItemData(index, data, Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(index)

    def probe_cameras(self, busy: int | None) -> None:
        """Mark the cameras that do not answer, in a thread; ``busy`` (the one playing) is left alone."""
        if self._probing:
            return
        self._probing = True

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

    # --- models ---------------------------------------------------------------------------

    def fill_models(self, weights_dir) -> list[str]:
        """List every model, those without usable weights greyed out with the reason; returns
        the names that can be chosen (the ensemble among them once two models are trained)."""
        combo = self.model_combo
        combo.clear()
        available: list[str] = []
        for name in list_models():
            title = get_spec(name).title
            path = find_weights(name, weights_dir)
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
                self._add_model(label, name, problem, enabled=False)
            else:
                self._add_model(title, name, describe_card(card))
                available.append(name)
        # The ensemble: every trained model at once, once there are two.
        combo.insertSeparator(combo.count())
        if len(available) >= 2:
            available.append(ENSEMBLE)
            tip = describe_ensemble(weights_dir)
        else:
            tip = "Needs at least two trained models"
        self._add_model(ENSEMBLE_TITLE, ENSEMBLE, tip[0].upper() + tip[1:], enabled=ENSEMBLE in available)
        return available

    def _add_model(self, label: str, name: str, tip: str, enabled: bool = True) -> None:
        self.model_combo.addItem(label, name)
        index = self.model_combo.count() - 1
        if not enabled:
            self.model_combo.model().item(index).setEnabled(False)
        self.model_combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)

    def select_model(self, name: str) -> None:
        index = self.model_combo.findData(name)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)

    # --- explanation maps -----------------------------------------------------------------

    @property
    def explain_method(self) -> str | None:
        """None, or the explanation chosen: "gradcam" or "attention"."""
        return self.explain_combo.currentData() if self.explain_check.isChecked() else None

    def choose_explain(self, method: str | None) -> None:
        if method is not None:
            self.explain_combo.setCurrentIndex(max(0, self.explain_combo.findData(method)))
        self.explain_check.setChecked(method is not None)
