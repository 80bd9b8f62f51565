"""The one renderer's layout: panels that cover no other face, text that follows the image's
size, nothing clipped at an edge, heat maps within their face. Plain numpy, no Qt."""

import numpy as np
import pytest

from fer_desktop.overlay import draw_results, layout
from fer_desktop.pipeline import FaceResult
from fer_desktop.preprocessing import Box

HAPPY = np.array([0.02, 0.01, 0.03, 0.80, 0.04, 0.06, 0.04], np.float32)


def faces_at(*boxes) -> list[FaceResult]:
    return [FaceResult(Box(x, y, w, h, 0.9), HAPPY) for x, y, w, h in boxes]


def rects(faces) -> list:
    return [(f.box.x, f.box.y, f.box.x + f.box.w, f.box.y + f.box.h) for f in faces]


def overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def inside(r, shape) -> bool:
    return r[0] >= 0 and r[1] >= 0 and r[2] <= shape[1] and r[3] <= shape[0]


def grid(shape, side, gap, rows, cols, x0=20, y0=40) -> list[FaceResult]:
    return faces_at(*[(x0 + c * (side + gap), y0 + r * (side + gap), side, side)
                      for r in range(rows) for c in range(cols)])


@pytest.mark.parametrize("shape, faces", [
    ((640, 960), grid((640, 960), 90, 20, 4, 8)),  # a crowded group photo: no room for most panels
    ((640, 960), grid((640, 960), 90, 190, 2, 3)),  # room beside each face
    ((3000, 4000), grid((3000, 4000), 500, 150, 3, 5)),
    ((360, 640), faces_at((250, 0, 140, 140))),  # at the top edge
    ((360, 640), faces_at((560, 250, 80, 110))),  # in the bottom-right corner
])
def test_no_panel_or_label_covers_another_face_and_nothing_leaves_the_image(shape, faces):
    boxes = rects(faces)
    placed = layout(faces, shape, boxes)
    labels = [p.label for p in placed]
    panels = [p.panel for p in placed if p.panel]
    for i, p in enumerate(placed):
        assert inside(p.label, shape), p
        others = [b for j, b in enumerate(boxes) if j != i]
        if p.panel is None:
            assert " / " in p.label_text  # the runner-up emotion folded into the label instead
            continue
        assert inside(p.panel, shape)
        assert not any(overlap(p.panel, r) for r in others + labels + [q for q in panels if q != p.panel])
        assert not overlap(p.panel, boxes[i])
    if len(faces) == 6:  # with room beside every face, every face gets its bars
        assert len(panels) == 6


def test_a_crowd_folds_bars_into_labels_instead_of_covering_faces():
    faces = grid((640, 960), 90, 20, 4, 8)
    placed = layout(faces, (640, 960), rects(faces))
    folded = [p for p in placed if p.panel is None]
    assert folded and all("/ " in p.label_text for p in folded)


def test_text_follows_the_image_size():
    def label_height(shape, side):
        face = faces_at((shape[1] // 3, shape[0] // 3, side, side))
        r = layout(face, shape, rects(face))[0].label
        return r[3] - r[1]

    small, large = label_height((360, 640), 120), label_height((3000, 4000), 800)
    assert small >= 14  # readable in a 640x360 video
    assert 5 * small <= large <= 9 * small  # about the 3000 / 360 ratio: the same look at any size


def test_a_whole_image_label_is_not_clipped_at_the_top():
    shape = (200, 200)
    face = faces_at((0, 0, 200, 200))
    placed = layout(face, shape, rects(face))[0]
    assert inside(placed.label, shape) and placed.label[1] >= 0


def test_a_heat_map_covers_its_face_box_only():
    image = np.full((480, 640, 3), 100, np.uint8)
    faces = faces_at((300, 200, 100, 100))  # its crop's square reaches well beyond the box
    out = draw_results(image, faces, bars=False, maps=[np.ones((48, 48), np.float32)])
    changed = np.any(out != image, axis=2)
    x0, y0, x1, y1 = 300, 200, 400, 300
    lab = layout(faces, image.shape, rects(faces), bars=False)[0].label
    allowed = np.zeros_like(changed)
    allowed[y0 - 4:y1 + 4, x0 - 4:x1 + 4] = True  # the box and its line
    allowed[lab[1]:lab[3], lab[0]:lab[2]] = True
    assert changed[y0 + 10:y1 - 10, x0 + 10:x1 - 10].all()  # the map is drawn inside the box
    assert not (changed & ~allowed).any()


def test_maps_keyed_by_track_follow_their_face():
    from dataclasses import dataclass

    @dataclass
    class Tracked:
        box: Box
        probs: np.ndarray
        track_id: int

    image = np.full((480, 640, 3), 100, np.uint8)
    faces = [Tracked(Box(40, 100, 100, 100, 0.9), HAPPY, 7), Tracked(Box(400, 100, 100, 100, 0.9), HAPPY, 3)]
    out = draw_results(image, faces, bars=False, maps={3: np.ones((48, 48), np.float32)})
    assert (out[140:160, 80:100] == 100).all() and (out[140:160, 440:460] != 100).any()
