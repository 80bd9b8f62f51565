"""The video (or opened image) with every face's box, top emotion and bars.

The overlays come from ``fer_desktop.overlay.draw_results``, the renderer that also
draws Snapshot, the recorded video and ``fer-predict --annotate``, so all four look
the same. It draws at the size the frame is shown (in device pixels), so labels
stay sharp and readable whatever the frame's size.
"""

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from fer_desktop.overlay import draw_results


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
        self._image: np.ndarray | None = None  # the frame as it came, BGR or grayscale
        self._faces: list = []
        self._maps: dict = {}  # face key -> [0, 1] explanation map over its 48x48 crop
        self._whole_image = False
        self._frame_size: tuple[int, int] | None = None
        self._selected = None
        self._placeholder = "Starting…"
        self._shown: tuple | None = None  # (QImage, target) drawn last, until anything changes
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self.setMouseTracking(False)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def sizeHint(self) -> QSize:
        return QSize(800, 450)

    # --- content -------------------------------------------------------------------

    def set_frame(self, image: np.ndarray) -> None:
        self._image = np.ascontiguousarray(image)
        self._changed()

    def set_faces(self, faces, frame_size: tuple[int, int] | None = None, maps: dict | None = None,
                  whole_image: bool = False) -> None:
        """``maps``: face key -> [0, 1] explanation map over the face's 48x48 crop (``fer_desktop.explain``)."""
        self._faces = list(faces)
        self._frame_size = frame_size
        self._maps = dict(maps or {})
        self._whole_image = whole_image
        self._changed()

    def shows_maps(self) -> bool:
        return bool(self._maps) and self._image is not None

    def set_selected(self, key) -> None:
        if key != self._selected:
            self._selected = key
            self._changed()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def clear(self, placeholder: str = "") -> None:
        self._image, self._faces, self._maps = None, [], {}
        self._placeholder = placeholder
        self._changed()

    def has_image(self) -> bool:
        return self._image is not None

    def faces(self) -> list:
        return list(self._faces)

    def rendered(self, size: tuple[int, int] | None = None) -> np.ndarray | None:
        """The frame with its overlays, at ``size`` (width, height; default: the frame's own), or None.

        What Snapshot saves: the same drawing as on screen, at the frame's full resolution.
        """
        if self._image is None:
            return None
        image = self._image
        if size is not None and size != (image.shape[1], image.shape[0]):
            shrink = size[0] < image.shape[1]
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        keys = [face_key(f, i) for i, f in enumerate(self._faces)]
        selected = keys.index(self._selected) if self._selected in keys else None
        maps = [self._maps.get(k) for k in keys]
        frame_size = self._frame_size or (self._image.shape[1], self._image.shape[0])
        return draw_results(image, self._faces, selected=selected, maps=maps, whole_image=self._whole_image,
                            frame_size=frame_size)

    def _changed(self) -> None:
        self._shown = None
        self.update()

    # --- geometry ------------------------------------------------------------------

    def _target(self) -> QRectF:
        """Where the image is drawn: fitted, centred, aspect kept."""
        if self._image is None:
            return QRectF()
        ih, iw = self._image.shape[:2]
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def _mapper(self):
        target = self._target()
        fw, fh = self._frame_size or (self._image.shape[1], self._image.shape[0])
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

    def resizeEvent(self, event) -> None:
        self._shown = None
        super().resizeEvent(event)

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
        target = self._target()
        if self._shown is None or self._shown[1] != target:
            # Drawn at the shown size in device pixels: one pixel of the picture per pixel of the screen.
            ratio = self.devicePixelRatioF()
            size = (max(1, round(target.width() * ratio)), max(1, round(target.height() * ratio)))
            image = to_qimage(self.rendered(size))
            image.setDevicePixelRatio(ratio)
            self._shown = (image, target)
        p.drawImage(target.topLeft(), self._shown[0])
