"""Face detection with the real MediaPipe model bundled in the package."""

import hashlib
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fer_desktop.detection import MODEL_PATH, FaceDetector, merge_boxes, native_logs_filtered
from fer_desktop.preprocessing import Box


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as det:
        yield det


def _inside(box: Box, frame: np.ndarray) -> bool:
    h, w = frame.shape[:2]
    return 0 <= box.x and 0 <= box.y and box.w > 0 and box.h > 0 and box.x + box.w <= w and box.y + box.h <= h


def test_one_face_in_the_face_photo(detector, face_image):
    boxes = detector.detect(face_image)
    assert len(boxes) == 1
    box = boxes[0]
    assert _inside(box, face_image) and box.score > 0.8
    # The face of the test photo sits in its upper middle.
    assert 60 < box.x + box.w / 2 < 200 and 50 < box.y + box.h / 2 < 160
    assert len(detector.detect(face_image, tiled=True)) == 1


def test_eight_faces_in_the_group_photo_when_tiled(detector, group_image):
    boxes = detector.detect(group_image, tiled=True)
    assert len(boxes) == 8
    assert all(_inside(b, group_image) for b in boxes)
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)


def test_face_cut_by_the_frame_edge_stays_inside(detector, face_image):
    # Shift the photo so the face is cut by the top edge (its box reaches row 0). Further
    # (90, 110) the detector finds nothing, which made the old check below vacuous.
    shifted = np.full_like(face_image, 128)
    shifted[:-70, :-90] = face_image[70:, 90:]
    boxes = detector.detect(shifted)
    assert boxes  # the cut face is still found: an empty list would make the check below vacuous
    for box in boxes:
        assert _inside(box, shifted)


@pytest.mark.parametrize("frame", [np.zeros((240, 320, 3), np.uint8),
                                   np.full((240, 320, 3), 255, np.uint8),
                                   np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)],
                         ids=["black", "white", "noise"])
def test_no_face_in_blank_or_noise(detector, frame):
    assert detector.detect(frame) == []
    assert detector.detect(frame, tiled=True) == []


def test_grayscale_and_bgra_input(detector, face_image):
    gray = cv2.cvtColor(face_image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(face_image, cv2.COLOR_BGR2BGRA)
    assert len(detector.detect(gray)) == 1
    assert len(detector.detect(bgra)) == 1
    assert len(detector.detect(np.ascontiguousarray(face_image[:, ::-1]))) == 1  # a view, not contiguous


def test_merge_boxes_keeps_the_best_of_overlaps():
    boxes = [Box(0, 0, 100, 100, 0.9), Box(5, 5, 100, 100, 0.95), Box(20, 20, 40, 40, 0.99),
             Box(300, 300, 50, 50, 0.6)]
    kept = merge_boxes(boxes)
    assert Box(300, 300, 50, 50, 0.6) in kept and len(kept) == 2


def test_bundled_model_matches_its_documented_sha256():
    readme = (MODEL_PATH.parent / "README.md").read_text(encoding="utf-8")
    documented = re.search(r"sha256: `([0-9a-f]{64})`", readme).group(1)
    assert hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest() == documented
    assert (MODEL_PATH.parent / "LICENSE.mediapipe").is_file()


def test_native_logs_filtered_drops_mediapipe_lines_and_keeps_the_rest(capfd):
    with native_logs_filtered():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"WARNING: Logging before InitGoogle() is written to STDERR\n"
                    b"W0000 00:00:1796575646.359232    4614 inference_runner_litert.cc:1433] Input tensor\n"
                    b"E0000 an error of another library\n")
        os.write(2, b"a message of the program's own\n")
    os.write(2, b"INFO: after the block, nothing is filtered\n")
    assert capfd.readouterr().err == ("E0000 an error of another library\na message of the program's own\n"
                                      "INFO: after the block, nothing is filtered\n")


@pytest.mark.slow
def test_the_detector_keeps_mediapipe_logs_off_stderr(tmp_path, face_video):
    # In a fresh process, as the app and fer-predict run it: created, detecting (PyTorch loaded first
    # moves LiteRT's one alignment warning from the first detection to a later one), closed.
    code = ("import importlib.util, sys\n"
            "if importlib.util.find_spec('torch'):\n"
            "    import torch\n"
            "sys.path.insert(0, sys.argv[2])\n"
            "from conftest import read_video\n"
            "from fer_desktop.detection import FaceDetector\n"
            "frames = read_video(sys.argv[1])\n"
            "with FaceDetector() as detector:\n"
            "    found = [len(detector.detect(frame)) for frame in frames]\n"
            "    found.append(len(detector.detect(frames[0], tiled=True)))\n"
            "print(sum(found))\n")
    tests = os.path.dirname(os.path.abspath(__file__))
    args = [sys.executable, "-c", code, str(face_video), tests]
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "FER_DESKTOP_DEBUG": ""})
    assert quiet.returncode == 0 and int(quiet.stdout) == 46  # one face in each of the 45 frames, and tiled
    assert quiet.stderr == ""
    debug = subprocess.run(args, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "FER_DESKTOP_DEBUG": "1"})
    assert "INFO" in debug.stderr  # FER_DESKTOP_DEBUG lets them through
