"""Two small widgets of the main window: the source combo box and the message banner."""

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel

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
