"""The emotion colours of ``fer_desktop.overlay`` as Qt colours, so the side panel and the
table match the overlays."""

from PySide6.QtGui import QColor

from fer_desktop import overlay
from fer_desktop.emotions import EMOTIONS

EMOTION_COLORS: dict[str, QColor] = {name: QColor(*reversed(overlay.COLORS_BGR[name])) for name in EMOTIONS}


def text_color_on(color: QColor) -> QColor:
    """Black or white, whichever reads better on ``color``."""
    return QColor(*reversed(overlay.text_color_on((color.blue(), color.green(), color.red()))))
