"""The main window's status bar: the REC label, then device, model and the live rates."""

from PySide6.QtWidgets import QLabel, QStatusBar


class StatusBar(QStatusBar):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.device_label = QLabel("Device: —")
        self.model_label = QLabel("Model: —")
        self.display_fps_label = QLabel("Display: – fps")
        self.inference_fps_label = QLabel("Inference: – fps")
        self.latency_label = QLabel("Latency: – ms")
        self.record_label = QLabel("")
        self.record_label.setStyleSheet("color:#e5484d; font-weight:600;")
        self.record_label.hide()
        self.insertPermanentWidget(0, self.record_label)  # temporary messages would hide a normal widget
        for label in (self.device_label, self.model_label, self.display_fps_label, self.inference_fps_label,
                      self.latency_label):
            label.setContentsMargins(6, 0, 6, 0)
            self.addPermanentWidget(label)

    def show_model(self, title: str, device: str) -> None:
        self.model_label.setText(f"Model: {title}")
        self.device_label.setText(f"Device: {device}")

    def show_rates(self, display_fps: float | None, result) -> None:
        """The display rate, and ``result``'s inference rate and latency; None: not measured now."""
        self.display_fps_label.setText("Display: – fps" if display_fps is None
                                       else f"Display: {display_fps:.1f} fps")
        if result is not None:
            self.inference_fps_label.setText(f"Inference: {result.fps:.1f} fps")
            self.latency_label.setText(f"Latency: {result.latency_ms:.0f} ms")
            self.latency_label.setToolTip(", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
        else:
            self.inference_fps_label.setText("Inference: – fps")
            self.latency_label.setText("Latency: – ms")
