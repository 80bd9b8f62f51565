"""Drawing results onto a frame with OpenCV: boxes, labels, confidence bars, explanation maps.

Used by ``fer-predict --annotate`` and the GUI alike, so both show the same thing.
"""

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


def _text(img, text, org, scale, color, thickness=1):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def draw_face(img: np.ndarray, box, probs: np.ndarray, index: int | None = None, bars: bool = True,
              selected: bool = False) -> None:
    """Draw one face's box, top emotion with confidence and, if room, seven bars. In place."""
    label = EMOTIONS[int(np.argmax(probs))]
    color = COLORS_BGR[label]
    scale = max(0.4, min(1.0, box.w / 200))
    thick = 3 if selected else 2
    cv2.rectangle(img, (box.x, box.y), (box.x + box.w, box.y + box.h), color, thick, cv2.LINE_AA)
    tag = f"{label} {100 * float(np.max(probs)):.0f}%"
    if index is not None:
        tag = f"#{index + 1} {tag}"
    _text(img, tag, (box.x, max(12, box.y - 6)), scale, color, 1 if scale < 0.6 else 2)
    if not bars:
        return
    # Bars to the right of the box if they fit, else to its left.
    bar_w, row = int(60 * max(scale, 0.6)), int(12 * max(scale, 0.6))
    x = box.x + box.w + 6
    if x + bar_w + 60 > img.shape[1]:
        x = box.x - bar_w - 66
    if x < 0:
        return
    for i, (name, p) in enumerate(zip(EMOTIONS, probs)):
        y = box.y + i * (row + 2)
        if y + row > img.shape[0]:
            break
        cv2.rectangle(img, (x, y), (x + bar_w, y + row), (40, 40, 40), -1)
        cv2.rectangle(img, (x, y), (x + int(bar_w * float(p)), y + row), COLORS_BGR[name], -1)
        _text(img, name, (x + bar_w + 4, y + row - 2), 0.35 * max(scale, 0.8), (240, 240, 240))


def face_region(box, frame_shape, whole_image: bool = False) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of the frame a face's 48x48 crop was cut from."""
    if whole_image:
        return 0, 0, frame_shape[1], frame_shape[0]
    from fer_desktop.preprocessing import crop_square

    return crop_square(box, frame_shape)


def heat_colors(face_map: np.ndarray) -> np.ndarray:
    """A [0, 1] map as a BGR uint8 heat map (blue: ignored, red: where the model looked)."""
    return cv2.applyColorMap(np.clip(face_map * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)


def blend_map(img: np.ndarray, region: tuple[int, int, int, int], face_map: np.ndarray,
              alpha: float = 0.45) -> None:
    """Blend a [0, 1] map over the 48x48 face as a heat map (red: where the model looked). In place."""
    x0, y0, x1, y1 = region
    if x1 <= x0 or y1 <= y0:
        return
    heat = cv2.resize(heat_colors(face_map), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    roi = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = cv2.addWeighted(roi, 1.0 - alpha, heat, alpha, 0.0)


def draw_results(frame: np.ndarray, faces, bars: bool = True, selected: int | None = None,
                 maps: np.ndarray | None = None, whole_image: bool = False) -> np.ndarray:
    """A copy of ``frame`` with every ``FaceResult`` drawn on it, over its explanation map if given."""
    out = frame.copy()
    if maps is not None:
        for face, face_map in zip(faces, maps):
            blend_map(out, face_region(face.box, out.shape, whole_image), face_map)
    for i, face in enumerate(faces):
        draw_face(out, face.box, face.probs, index=i if len(faces) > 1 else None, bars=bars,
                  selected=selected == i)
    return out
