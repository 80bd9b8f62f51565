"""Tracking faces by IoU and smoothing their probabilities over time."""

import numpy as np
import pytest

from fer_desktop.pipeline import FaceResult
from fer_desktop.preprocessing import Box, iou
from fer_desktop.tracking import FaceTracker


def onehot(i):
    p = np.full(7, 0.0, np.float32)
    p[i] = 1.0
    return p


def test_iou():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0.0


def test_tracks_keep_ids_across_moves_and_order():
    tracker = FaceTracker()
    a, b = Box(0, 0, 100, 100), Box(300, 0, 100, 100)
    first = tracker.update([FaceResult(a, onehot(3)), FaceResult(b, onehot(0))], now=0.0)
    ids = {f.box: f.track_id for f in first}
    # Moved a little and listed in the other order: same ids.
    a2, b2 = Box(8, 4, 100, 100), Box(305, 2, 100, 100)
    second = tracker.update([FaceResult(b2, onehot(0)), FaceResult(a2, onehot(3))], now=0.1)
    assert second[0].track_id == ids[b] and second[1].track_id == ids[a]
    # A new face far away gets a new id.
    third = tracker.update([FaceResult(Box(600, 300, 50, 50), onehot(6))], now=0.2)
    assert third[0].track_id not in ids.values()


def test_smoothing_damps_a_one_frame_flip_and_follows_a_lasting_change():
    tracker = FaceTracker(time_constant=0.4)
    box = Box(10, 10, 80, 80)
    t = 0.0
    for _ in range(10):
        out = tracker.update([FaceResult(box, onehot(3))], now=t)
        t += 1 / 15
    flip = tracker.update([FaceResult(box, onehot(0))], now=t)[0]
    assert flip.label == "happy"  # one odd frame does not flip the label
    np.testing.assert_array_equal(flip.raw_probs, onehot(0))
    assert flip.probs.sum() == pytest.approx(1.0, abs=1e-5)
    for _ in range(30):
        t += 1 / 15
        out = tracker.update([FaceResult(box, onehot(0))], now=t)
    assert out[0].label == "angry"


def test_smoothing_depends_on_time_not_on_update_count():
    box = Box(0, 0, 50, 50)
    slow, fast = FaceTracker(time_constant=0.5), FaceTracker(time_constant=0.5)
    slow.update([FaceResult(box, onehot(3))], now=0.0)
    fast.update([FaceResult(box, onehot(3))], now=0.0)
    s = slow.update([FaceResult(box, onehot(0))], now=0.5)[0]
    for k in range(1, 11):
        f = fast.update([FaceResult(box, onehot(0))], now=0.05 * k)[0]
    np.testing.assert_allclose(s.probs, f.probs, atol=1e-5)


def test_toggle_off_passes_probabilities_through():
    tracker = FaceTracker(enabled=False)
    box = Box(0, 0, 50, 50)
    tracker.update([FaceResult(box, onehot(3))], now=0.0)
    out = tracker.update([FaceResult(box, onehot(5))], now=0.05)[0]
    np.testing.assert_array_equal(out.probs, onehot(5))
    assert out.track_id == 1


def test_stale_tracks_are_forgotten_and_restart_averages_keeps_ids():
    tracker = FaceTracker(max_age=1.0)
    box = Box(0, 0, 50, 50)
    first = tracker.update([FaceResult(box, onehot(3))], now=0.0)[0]
    tracker.restart_averages()
    again = tracker.update([FaceResult(box, onehot(4))], now=0.1)[0]
    assert again.track_id == first.track_id
    np.testing.assert_array_equal(again.probs, onehot(4))
    later = tracker.update([FaceResult(box, onehot(4))], now=5.0)[0]
    assert later.track_id != first.track_id
