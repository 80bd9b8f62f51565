"""Seven horizontal confidence bars, one per emotion, for the selected face."""

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from fer_desktop.app.colors import EMOTION_COLORS
from fer_desktop.emotions import EMOTIONS


class EmotionBars(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._probs: np.ndarray | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(len(EMOTIONS) * 26 + 8)

    def sizeHint(self) -> QSize:
        return QSize(260, len(EMOTIONS) * 26 + 8)

    def set_probs(self, probs) -> None:
        self._probs = None if probs is None else np.asarray(probs, np.float32).copy()
        self.update()

    def probs(self) -> np.ndarray | None:
        return self._probs

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        p.setFont(font)
        row, label_w, pct_w = 26, 72, 44
        top = int(np.argmax(self._probs)) if self._probs is not None else -1
        for i, name in enumerate(EMOTIONS):
            y = 4 + i * row
            value = float(self._probs[i]) if self._probs is not None else 0.0
            bold = QFont(font)
            bold.setBold(i == top)
            p.setFont(bold)
            p.setPen(self.palette().windowText().color())
            p.drawText(QRectF(0, y, label_w, row - 6), Qt.AlignmentFlag.AlignVCenter, name)
            track = QRectF(label_w, y + 3, max(10, self.width() - label_w - pct_w - 4), row - 12)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(128, 128, 128, 60))
            p.drawRoundedRect(track, 4, 4)
            if value > 0:
                bar = QRectF(track.x(), track.y(), max(3.0, track.width() * value), track.height())
                p.setBrush(EMOTION_COLORS[name])
                p.drawRoundedRect(bar, 4, 4)
            p.setPen(self.palette().windowText().color())
            text = f"{100 * value:.0f}%" if self._probs is not None else "–"
            p.drawText(QRectF(self.width() - pct_w, y, pct_w, row - 6),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, text)
