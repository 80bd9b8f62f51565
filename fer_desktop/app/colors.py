"""The emotion colours of ``fer_desktop.overlay`` as Qt colours, so the GUI and the
annotated images of ``fer-predict`` look alike."""

from PySide6.QtGui import QColor

from fer_desktop.emotions import EMOTIONS
from fer_desktop.overlay import COLORS_BGR

EMOTION_COLORS: dict[str, QColor] = {name: QColor(*reversed(COLORS_BGR[name])) for name in EMOTIONS}


def text_color_on(color: QColor) -> QColor:
    """Black or white, whichever reads better on ``color``."""
    luma = 0.299 * color.red() + 0.587 * color.green() + 0.114 * color.blue()
    return QColor(20, 20, 20) if luma > 140 else QColor(250, 250, 250)
