"""The one renderer: boxes, labels, confidence bars and explanation maps drawn onto an image.

The window, Snapshot, the recorded video and ``fer-predict --annotate`` all draw
through ``draw_results``, so a face looks the same in each. The layout is decided
first (``layout``), then painted:

- sizes follow the image, so text reads the same at 640 px and at 4,000 px;
- a face's label sits above its box, else below, else inside it, and stays in the image;
- its bar panel sits beside, below or above it where it covers no other face's box,
  label or panel; where there is no such room, the runner-up emotion is folded into
  the label instead;
- a heat map covers its face's box only.
"""

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fer_desktop.emotions import EMOTIONS

# One colour per emotion (BGR), readable on video.
COLORS_BGR = {
    "angry": (60, 60, 230),
    "disgust": (60, 160, 60),
    "fear": (170, 80, 170),
    "happy": (40, 200, 250),
    "sad": (200, 120, 40),
    "surprise": (60, 200, 200),
    "neutral": (190, 190, 190),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX
MAP_OPACITY = 0.45
PANEL_OPACITY = 0.6
TRACK_BGR = (72, 72, 72)  # a bar's empty part, on the panel's dark ground
# Text is 0.5 of OpenCV's font scale (about 11 px high) per 480 px of the image's
# shorter side, never less than 0.4: readable in a 640x360 video and on a 4,000 px photo.
REFERENCE_SIDE = 480
MIN_UNIT = 0.8

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


@dataclass(frozen=True)
class FaceLayout:
    """Where one face's parts go, in the output image's pixels."""

    box: Rect
    label: Rect
    label_text: str
    panel: Rect | None  # the seven bars, or None when they are folded into the label


def unit_for(shape: Sequence[int]) -> float:
    """The size unit of an image of ``shape``: 1.0 at 480 px on the shorter side."""
    return max(MIN_UNIT, min(shape[0], shape[1]) / REFERENCE_SIDE)


def text_color_on(bgr: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``bgr``."""
    luma = 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]
    return (20, 20, 20) if luma > 140 else (250, 250, 250)


def face_region(box, frame_shape, whole_image: bool = False) -> Rect:
    """``(x0, y0, x1, y1)``: the part of the frame a face's 48x48 crop was cut from."""
    if whole_image:
        return 0, 0, frame_shape[1], frame_shape[0]
    from fer_desktop.preprocessing import crop_square

    return crop_square(box, frame_shape)


def heat_colors(face_map: np.ndarray) -> np.ndarray:
    """A [0, 1] map as a BGR uint8 heat map (blue: ignored, red: where the model looked)."""
    return cv2.applyColorMap(np.clip(face_map * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)


def maps_for(faces: Sequence, maps) -> list:
    """``maps`` as one entry per face (None where a face has none).

    Live results key their maps by track id, a still image's by face index; a plain
    sequence is already one per face.
    """
    if maps is None:
        return [None] * len(faces)
    if isinstance(maps, Mapping):
        return [maps.get(getattr(f, "track_id", i)) for i, f in enumerate(faces)]
    return list(maps) + [None] * (len(faces) - len(maps))


# --- layout ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)  # the same few texts at the same sizes, every frame
def _text_size(text: str, scale: float, thickness: int) -> tuple[int, int, int]:
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    return w, h, base


class _Style:
    """Pixel sizes for one image, all derived from its size unit."""

    def __init__(self, shape) -> None:
        u = unit_for(shape)
        self.scale = 0.5 * u
        self.thickness = max(1, round(u))
        self.line = max(2, round(2 * u))
        self.pad = max(2, round(4 * u))
        self.gap = max(2, round(3 * u))
        self.bar_w = round(64 * u)

    def text_size(self, text: str, scale: float | None = None) -> tuple[int, int, int]:
        return _text_size(text, scale or self.scale, self.thickness)

    def pill_size(self, text: str) -> tuple[int, int]:
        w, h, base = self.text_size(text)
        return w + 2 * self.pad, h + base + 2 * self.pad

    def panel_size(self) -> tuple[int, int]:
        name_w = max(self.text_size(n, 0.8 * self.scale)[0] for n in EMOTIONS)
        row = self.row()
        return name_w + self.bar_w + 4 * self.pad, row * len(EMOTIONS) + 2 * self.pad

    def row(self) -> int:
        _, h, base = self.text_size("Hg", 0.8 * self.scale)
        return h + base + max(1, self.pad // 2)


def _overlap(a: Rect, b: Rect) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def _inside(r: Rect, width: int, height: int) -> bool:
    return r[0] >= 0 and r[1] >= 0 and r[2] <= width and r[3] <= height


def _clamp(r: Rect, width: int, height: int) -> Rect:
    """``r`` slid (not shrunk) into the image as far as it fits."""
    w, h = r[2] - r[0], r[3] - r[1]
    x0 = min(max(0, r[0]), max(0, width - w))
    y0 = min(max(0, r[1]), max(0, height - h))
    return x0, y0, x0 + w, y0 + h


def _label_text(probs: np.ndarray, number: int | None, folded: bool) -> str:
    order = np.argsort(probs)[::-1]
    text = f"{EMOTIONS[order[0]]} {100 * float(probs[order[0]]):.0f}%"
    if folded:
        text += f" / {EMOTIONS[order[1]]} {100 * float(probs[order[1]]):.0f}%"
    return text if number is None else f"#{number} {text}"


def _place_label(style: _Style, box: Rect, text: str, width: int, height: int, taken: list[Rect]) -> Rect:
    """Above the box, else below it, else inside its top; the first that covers nothing taken."""
    pw, ph = style.pill_size(text)
    x = box[0] - style.line // 2
    candidates = [
        (x, box[1] - style.gap - ph, x + pw, box[1] - style.gap),
        (x, box[3] + style.gap, x + pw, box[3] + style.gap + ph),
        (box[0] + style.gap, box[1] + style.gap, box[0] + style.gap + pw, box[1] + style.gap + ph),
    ]
    fitted = [_clamp(c, width, height) for c in candidates]
    # Clamping may only slide a pill sideways: one that had to move up or down into its box
    # would cover the face, so it counts only as a last resort.
    fair = [f for c, f in zip(candidates, fitted) if f[1] == c[1]] or fitted[-1:]
    return min(fair, key=lambda r: sum(_overlap(r, t) for t in taken))  # first of the least covering


def _place_panel(style: _Style, box: Rect, width: int, height: int, taken: list[Rect]) -> Rect | None:
    """Right of the box, else left, below, above; None where each would cover something taken."""
    pw, ph = style.panel_size()
    g = style.gap
    candidates = [
        (box[2] + g, box[1], box[2] + g + pw, box[1] + ph),
        (box[0] - g - pw, box[1], box[0] - g, box[1] + ph),
        (box[0], box[3] + g, box[0] + pw, box[3] + g + ph),
        (box[0], box[1] - g - ph, box[0] + pw, box[1] - g),
    ]
    for i, c in enumerate(candidates):
        # Beside the box it may slide up or down, below or above it only sideways.
        r = _clamp(c, width, height)
        slid_across = r[0] != c[0] if i < 2 else r[1] != c[1]
        if slid_across or not _inside(r, width, height):
            continue
        if not any(_overlap(r, t) for t in taken):
            return r
    return None


def layout(faces: Sequence, shape: Sequence[int], boxes: Sequence[Rect],
           bars: bool = True) -> list[FaceLayout]:
    """Where each face's label and bar panel go in an image of ``shape`` (see the module doc).

    ``boxes``: each face's box in the image's pixels, ``(x0, y0, x1, y1)``.
    """
    height, width = shape[:2]
    style = _Style(shape)
    number = len(faces) > 1
    labels: list[Rect] = []
    texts: list[str] = []
    for i, (face, box) in enumerate(zip(faces, boxes)):
        others = [b for j, b in enumerate(boxes) if j != i]
        text = _label_text(np.asarray(face.probs), i + 1 if number else None, folded=False)
        labels.append(_place_label(style, box, text, width, height, others + labels))
        texts.append(text)
    panels: list[Rect | None] = [None] * len(faces)
    if bars:
        # Left to right, so that "right of the box" is the rule a reader can count on.
        for i in sorted(range(len(boxes)), key=lambda k: (boxes[k][0], boxes[k][1])):
            box = boxes[i]
            taken = [b for j, b in enumerate(boxes) if j != i] + labels + [p for p in panels if p]
            panels[i] = _place_panel(style, box, width, height, taken)
    result = []
    for i, (face, box) in enumerate(zip(faces, boxes)):
        if bars and panels[i] is None:  # no room for the bars: the runner-up joins the label
            texts[i] = _label_text(np.asarray(face.probs), i + 1 if number else None, folded=True)
            others = [b for j, b in enumerate(boxes) if j != i] + labels[:i] + labels[i + 1:]
            labels[i] = _place_label(style, box, texts[i], width, height, others + [p for p in panels if p])
        result.append(FaceLayout(box, labels[i], texts[i], panels[i]))
    return result


# --- painting --------------------------------------------------------------------------


def _darken(img: np.ndarray, r: Rect, level: int, alpha: float) -> None:
    """Blend the rectangle ``r`` towards the grey ``level`` by ``alpha``. In place."""
    x0, y0, x1, y1 = r
    roi = img[y0:y1, x0:x1]
    cv2.convertScaleAbs(roi, roi, 1.0 - alpha, alpha * level)


def _blend_map(img: np.ndarray, region: Rect, box: Rect, face_map: np.ndarray) -> None:
    """Blend a [0, 1] map, laid over ``region`` (the crop's square), within ``box`` only. In place."""
    x0, y0, x1, y1 = region
    if x1 <= x0 or y1 <= y0:
        return
    heat = cv2.resize(heat_colors(face_map), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    bx0, by0 = max(box[0], x0, 0), max(box[1], y0, 0)
    bx1, by1 = min(box[2], x1, img.shape[1]), min(box[3], y1, img.shape[0])
    if bx1 <= bx0 or by1 <= by0:
        return
    roi = img[by0:by1, bx0:bx1]
    part = heat[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
    roi[:] = cv2.addWeighted(roi, 1.0 - MAP_OPACITY, part, MAP_OPACITY, 0.0)


def _paint_pill(img: np.ndarray, style: _Style, r: Rect, text: str, color) -> None:
    cv2.rectangle(img, (r[0], r[1]), (r[2] - 1, r[3] - 1), color, -1)
    _, h, _ = style.text_size(text)
    cv2.putText(img, text, (r[0] + style.pad, r[1] + style.pad + h), FONT, style.scale,
                text_color_on(color), style.thickness, cv2.LINE_AA)


def _paint_panel(img: np.ndarray, style: _Style, r: Rect, probs: np.ndarray) -> None:
    _darken(img, r, 20, PANEL_OPACITY)
    scale, row = 0.8 * style.scale, style.row()
    name_w = max(style.text_size(n, scale)[0] for n in EMOTIONS)
    bar_x = r[0] + 2 * style.pad + name_w
    for i, name in enumerate(EMOTIONS):
        top = r[1] + style.pad + i * row
        cv2.putText(img, name, (r[0] + style.pad, top + row - max(1, style.pad // 2) - 1), FONT, scale,
                    (235, 235, 235), style.thickness, cv2.LINE_AA)
        inset = max(1, row // 5)
        track = (bar_x, top + inset, bar_x + style.bar_w, top + row - inset)
        cv2.rectangle(img, track[:2], (track[2] - 1, track[3] - 1), TRACK_BGR, -1)
        filled = round(style.bar_w * float(np.clip(probs[i], 0.0, 1.0)))
        if filled:
            cv2.rectangle(img, track[:2], (track[0] + filled - 1, track[3] - 1), COLORS_BGR[name], -1)


def _scaled_box(box, sx: float, sy: float, width: int, height: int) -> Rect:
    x0, y0 = round(box.x * sx), round(box.y * sy)
    x1, y1 = round((box.x + box.w) * sx), round((box.y + box.h) * sy)
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def draw_results(image: np.ndarray, faces: Sequence, bars: bool = True, selected: int | None = None,
                 maps=None, whole_image: bool = False,
                 frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """A copy of ``image`` with every ``FaceResult`` drawn on it, over its explanation map if given.

    ``selected``: the index of a face to outline in white; ``maps``: see ``maps_for``;
    ``frame_size``: ``(width, height)`` of the frame the faces were found in, when ``image``
    is that frame resized (the window draws at its own size); default: the image's size.
    """
    out = np.ascontiguousarray(image).copy()
    if out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
    height, width = out.shape[:2]
    fw, fh = frame_size or (width, height)
    sx, sy = width / fw, height / fh
    boxes = [_scaled_box(f.box, sx, sy, width, height) for f in faces]
    for face, box, face_map in zip(faces, boxes, maps_for(faces, maps)):
        if face_map is not None:
            x0, y0, x1, y1 = face_region(face.box, (fh, fw), whole_image)
            region = (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
            _blend_map(out, region, box, face_map)
    style = _Style(out.shape)
    placed = layout(faces, out.shape, boxes, bars)
    for i, (face, where) in enumerate(zip(faces, placed)):
        color = COLORS_BGR[EMOTIONS[int(np.argmax(face.probs))]]
        x0, y0, x1, y1 = where.box
        if i == selected:
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 2 * style.line + 2, cv2.LINE_AA)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), color, style.line, cv2.LINE_AA)
    for face, where in zip(faces, placed):
        color = COLORS_BGR[EMOTIONS[int(np.argmax(face.probs))]]
        _paint_pill(out, style, where.label, where.label_text, color)
        if where.panel is not None:
            _paint_panel(out, style, where.panel, np.asarray(face.probs))
    return out
