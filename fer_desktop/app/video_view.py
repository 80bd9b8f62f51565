"""The video (or opened image) with every face's box, top emotion and bars, drawn with QPainter.

Frames arrive as numpy arrays and are turned into a ``QImage`` that owns its
pixels here, in the GUI thread. Overlays are drawn at screen resolution, so
labels stay sharp whatever the frame's size.
"""

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from fer_desktop.app.colors import EMOTION_COLORS, text_color_on
from fer_desktop.emotions import EMOTIONS
from fer_desktop.overlay import face_region, heat_colors
from fer_desktop.preprocessing import Box

MAP_OPACITY = 0.45


def to_qimage(image: np.ndarray) -> QImage:
    """A ``QImage`` that owns a copy of a BGR (or grayscale) uint8 array's pixels."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    if image.ndim == 2:
        return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_BGR888).copy()


def face_key(face, index: int):
    """Tracked faces are known by their track id, faces of a still image by their index."""
    return getattr(face, "track_id", index)


class VideoView(QWidget):
    face_clicked = Signal(object)  # the key of the face under the click

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._faces: list = []
        self._heat: dict = {}  # face key -> QImage of its explanation map
        self._whole_image = False
        self._frame_size: tuple[int, int] | None = None
        self._selected = None
        self._placeholder = "Starting…"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self.setMouseTracking(False)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def sizeHint(self) -> QSize:
        return QSize(800, 450)

    # --- content -------------------------------------------------------------------

    def set_frame(self, image: np.ndarray) -> None:
        self._image = to_qimage(image)
        self.update()

    def set_faces(self, faces, frame_size: tuple[int, int] | None = None, maps: dict | None = None,
                  whole_image: bool = False) -> None:
        """``maps``: face key -> [0, 1] explanation map over the face's 48x48 crop (``fer_desktop.explain``)."""
        self._faces = list(faces)
        self._frame_size = frame_size
        self._heat = {key: to_qimage(heat_colors(m)) for key, m in (maps or {}).items()}
        self._whole_image = whole_image
        self.update()

    def shows_maps(self) -> bool:
        return bool(self._heat) and self._image is not None

    def set_selected(self, key) -> None:
        self._selected = key
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def clear(self, placeholder: str = "") -> None:
        self._image, self._faces, self._heat = None, [], {}
        self._placeholder = placeholder
        self.update()

    def has_image(self) -> bool:
        return self._image is not None

    def faces(self) -> list:
        return list(self._faces)

    # --- geometry ------------------------------------------------------------------

    def _target(self) -> QRectF:
        """Where the image is drawn: fitted, centred, aspect kept."""
        if self._image is None:
            return QRectF()
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def _mapper(self):
        target = self._target()
        fw, fh = self._frame_size or (self._image.width(), self._image.height())
        sx, sy = target.width() / fw, target.height() / fh

        def to_view(box) -> QRectF:
            return QRectF(target.x() + box.x * sx, target.y() + box.y * sy, box.w * sx, box.h * sy)
        return to_view

    def face_at(self, pos: QPointF):
        """The key of the smallest face box containing ``pos`` (view coordinates), or None."""
        if self._image is None:
            return None
        to_view = self._mapper()
        hits = [(f.box.w * f.box.h, face_key(f, i)) for i, f in enumerate(self._faces)
                if to_view(f.box).adjusted(-4, -4, 4, 4).contains(pos)]
        return min(hits, key=lambda h: h[0])[1] if hits else None

    def mousePressEvent(self, event) -> None:
        key = self.face_at(event.position())
        if key is not None:
            self.face_clicked.emit(key)
        super().mousePressEvent(event)

    # --- drawing -------------------------------------------------------------------

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QPainter) -> None:
        p.fillRect(self.rect(), QColor(24, 26, 30))
        if self._image is None:
            p.setPen(QColor(170, 170, 170))
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            p.drawText(self.rect(), flags, self._placeholder)
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawImage(self._target(), self._image)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        to_view = self._mapper()
        if self._heat:
            self._draw_maps(p, to_view)
        numbered = len(self._faces) > 1
        for i, face in enumerate(self._faces):
            key = face_key(face, i)
            self._draw_face(p, to_view(face.box), face.probs, f"#{i + 1} " if numbered else "",
                            selected=key == self._selected)

    def _draw_maps(self, p: QPainter, to_view) -> None:
        """Each face's map, blended over the square the classifier's crop was cut from."""
        fw, fh = self._frame_size or (self._image.width(), self._image.height())
        p.save()
        p.setOpacity(MAP_OPACITY)
        for i, face in enumerate(self._faces):
            heat = self._heat.get(face_key(face, i))
            if heat is None:
                continue
            x0, y0, x1, y1 = face_region(face.box, (fh, fw), self._whole_image)
            p.drawImage(to_view(Box(x0, y0, x1 - x0, y1 - y0, 0.0)), heat)
        p.restore()

    def _draw_face(self, p: QPainter, rect: QRectF, probs, prefix: str, selected: bool) -> None:
        top = int(np.argmax(probs))
        color = EMOTION_COLORS[EMOTIONS[top]]
        if selected:
            p.setPen(QPen(QColor(255, 255, 255, 200), 5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRoundedRect(rect, 6, 6)
        p.setPen(QPen(color, 3 if selected else 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRoundedRect(rect, 6, 6)

        # The label: a pill above the box (inside it if the box touches the top).
        font = QFont(self.font())
        font.setPixelSize(int(max(11, min(18, rect.width() / 7))))
        font.setBold(True)
        p.setFont(font)
        fm = QFontMetricsF(font)
        text = f"{prefix}{EMOTIONS[top]} {100 * float(probs[top]):.0f}%"
        pill = QRectF(0, 0, fm.horizontalAdvance(text) + 12, fm.height() + 4)
        pill.moveBottomLeft(QPointF(rect.left() - 1, rect.top() - 3))
        if pill.top() < 0:
            pill.moveTopLeft(QPointF(rect.left() + 3, rect.top() + 3))
        path = QPainterPath()
        path.addRoundedRect(pill, 5, 5)
        p.fillPath(path, color)
        p.setPen(text_color_on(color))
        p.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)
        if selected:
            self._draw_bars(p, rect, probs)

    def _draw_bars(self, p: QPainter, rect: QRectF, probs) -> None:
        """Seven small bars beside the selected face: right of the box, else left."""
        font = QFont(self.font())
        font.setPixelSize(11)
        font.setBold(False)
        p.setFont(font)
        fm = QFontMetricsF(font)
        row, bar_w = 14.0, 70.0
        label_w = max(fm.horizontalAdvance(n) for n in EMOTIONS) + 6
        panel = QRectF(0, 0, label_w + bar_w + 14, row * len(EMOTIONS) + 8)
        panel.moveTopLeft(QPointF(rect.right() + 8, rect.top()))
        if panel.right() > self.width():
            panel.moveTopRight(QPointF(rect.left() - 8, rect.top()))
        if panel.left() < 0:
            return
        if panel.bottom() > self.height():
            panel.moveBottom(self.height() - 2)
        path = QPainterPath()
        path.addRoundedRect(panel, 6, 6)
        p.fillPath(path, QColor(0, 0, 0, 150))
        for i, name in enumerate(EMOTIONS):
            y = panel.top() + 4 + i * row
            p.setPen(QColor(235, 235, 235))
            p.drawText(QRectF(panel.left() + 6, y, label_w, row), Qt.AlignmentFlag.AlignVCenter, name)
            track = QRectF(panel.left() + 6 + label_w, y + 3, bar_w, row - 6)
            p.fillRect(track, QColor(255, 255, 255, 40))
            value = QRectF(track.x(), track.y(), bar_w * float(probs[i]), track.height())
            p.fillRect(value, EMOTION_COLORS[name])
