"""Detection skipping (fer_desktop.detection_skipping): on real videos with the real detector."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import load_face_image
from conftest import read_video
from fer_desktop.classifier import load_classifier
from fer_desktop.detection import FaceDetector
from fer_desktop.pipeline import FramePipeline
from fer_desktop.detection_skipping import SkippingDetector




def write_static_video(path: Path, frames: int = 24) -> Path:
    """A still face on a grey background: nothing moves. Lossless (FFV1), so every
    decoded frame is the same picture; mp4v's noise would make the detector's box
    jitter by a pixel from frame to frame."""
    face = cv2.resize(load_face_image()[32:173, 65:206], (180, 180), interpolation=cv2.INTER_AREA)
    frame = np.full((360, 640, 3), 90, np.uint8)
    frame[90:270, 200:380] = face
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 15.0, (640, 360))
    assert writer.isOpened(), "OpenCV cannot write FFV1 video here"
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as det:
        yield det


def test_static_video_gives_the_same_results(tmp_path, detector, cnn_weights_dir):
    frames = read_video(write_static_video(tmp_path / "static.avi"))
    clf = load_classifier("baseline_cnn", device="cpu", weights_dir=cnn_weights_dir)
    every_frame = FramePipeline(detector, clf)
    skipping = FramePipeline(detector, clf, detect_every=3)
    for frame in frames:
        a, b = every_frame(frame), skipping(frame)
        assert [f.box for f in a.faces] == [f.box for f in b.faces]
        assert len(a.faces) == 1
        np.testing.assert_allclose(np.stack([f.probs for f in a.faces]), np.stack([f.probs for f in b.faces]),
                                   atol=1e-6)
    assert isinstance(skipping.detector, SkippingDetector)
    assert skipping.detector.detections <= len(frames) // 3 + 1


def test_moving_face_is_followed(face_video, detector):
    frames = read_video(face_video)
    skipping = SkippingDetector(detector, every=3)
    for frame in frames:
        reference = detector.detect(frame)
        got = skipping.detect(frame)
        assert len(got) == len(reference) == 1
        a, b = reference[0], got[0]
        # Within the detector's own frame-to-frame jitter (a few pixels on a ~100 px box).
        assert max(abs(a.x - b.x), abs(a.y - b.y), abs(a.w - b.w)) <= 0.15 * a.w
    assert skipping.frames == len(frames)
    assert skipping.detections < 0.75 * len(frames)


def test_every_face_of_a_group_is_kept(group_video, detector):
    skipping = SkippingDetector(detector, every=3)
    for frame in read_video(group_video):
        assert len(skipping.detect(frame)) == len(detector.detect(frame))


def test_every_one_is_the_plain_detector(face_video, detector):
    skipping = SkippingDetector(detector, every=1)
    for frame in read_video(face_video)[:10]:
        assert skipping.detect(frame) == detector.detect(frame)
    assert skipping.detections == 10


def test_a_face_leaving_and_coming_back_is_seen_at_once(face_video, detector):
    frame = read_video(face_video)[0]
    blank = np.full_like(frame, 90)
    skipping = SkippingDetector(detector, every=10)
    assert len(skipping.detect(frame)) == 1
    assert skipping.detect(blank) == []  # the face is gone: detected again, not reused
    assert len(skipping.detect(frame)) == 1  # no face last time: detected again
    moved = np.roll(frame, 300, axis=1)  # a jump far beyond max_shift
    assert skipping.detect(moved) == detector.detect(moved)


def test_reset_tiled_and_arguments(face_video, detector):
    frame = read_video(face_video)[0]
    skipping = SkippingDetector(detector, every=5)
    skipping.detect(frame)
    skipping.reset()
    runs = skipping.detections
    skipping.detect(frame)
    assert skipping.detections == runs + 1  # after reset the next frame is detected
    assert skipping.detect(frame, tiled=True) == detector.detect(frame, tiled=True)
    small = cv2.resize(frame, (320, 180))
    assert skipping.detect(small) == detector.detect(small)  # a new frame size is detected
    with pytest.raises(ValueError):
        SkippingDetector(detector, every=0)
