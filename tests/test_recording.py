"""The CSV timeline: columns as documented, a row per frame and face, nothing lost."""

import csv

import numpy as np
import pytest

from fer_desktop.emotions import EMOTIONS
from fer_desktop.preprocessing import Box
from fer_desktop.recording import COLUMNS, TimelineRecorder, default_recording_path
from fer_desktop.smoothing import TrackedFace


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def face(track_id, top):
    probs = np.full(7, 0.05, np.float32)
    probs[top] = 0.7
    return TrackedFace(track_id, Box(10 * track_id, 20, 50, 60, 0.9), probs, probs)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_rows_per_frame_and_face_with_the_documented_columns(tmp_path):
    clock = Clock()
    rec = TimelineRecorder(tmp_path / "sub" / "rec.csv", clock=clock)
    rec.add(1, [face(1, 3), face(2, 0)], "baseline_cnn")
    clock.now += 0.25
    rec.add(2, [], "baseline_cnn")  # a frame without a face still gets its row
    clock.now += 0.25
    rec.add(3, [face(1, 3)], "attention_cnn")  # after a model switch, rows say which model
    rec.close()
    with open(tmp_path / "sub" / "rec.csv", newline="") as f:
        assert next(csv.reader(f)) == COLUMNS
    rows = read_rows(tmp_path / "sub" / "rec.csv")
    assert [(r["frame"], r["face"], r["model"]) for r in rows] == [
        ("1", "1", "baseline_cnn"), ("1", "2", "baseline_cnn"), ("2", "", "baseline_cnn"),
        ("3", "1", "attention_cnn")]
    assert [r["time_s"] for r in rows] == ["0.000", "0.000", "0.250", "0.500"]
    assert rows[0]["label"] == "happy" and rows[1]["label"] == "angry" and rows[0]["x"] == "10"
    assert abs(sum(float(rows[0][e]) for e in EMOTIONS) - 1.0) < 1e-3
    assert rec.rows == 4 and rec.frames == 3


def test_rows_reach_the_disk_while_recording_and_close_is_idempotent(tmp_path):
    clock = Clock()
    path = tmp_path / "rec.csv"
    rec = TimelineRecorder(path, flush_every=0.5, clock=clock)
    for i in range(10):
        clock.now += 0.1
        rec.add(i, [face(1, 6)], "baseline_cnn")
    # Without a close (a crash, a killed app), what was flushed is readable.
    assert len(read_rows(path)) >= 5
    rec.close()
    rec.close()
    rec.add(11, [face(1, 6)], "baseline_cnn")  # ignored after close, no error
    assert len(read_rows(path)) == 10


def test_an_unwritable_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot record here"):
        TimelineRecorder(blocker / "rec.csv")


def test_default_path_is_timestamped_in_the_folder(tmp_path):
    path = default_recording_path(tmp_path, now=0)
    assert path.parent == tmp_path and path.name.startswith("recording-") and path.suffix == ".csv"


def test_annotated_video_keeps_real_time_and_draws_the_faces(tmp_path):
    from conftest import read_video
    from fer_desktop.recording import AnnotatedVideoRecorder

    clock = Clock()
    path = tmp_path / "rec" / "session.mp4"
    video = AnnotatedVideoRecorder(path, fps=10.0, queue_size=100, clock=clock)
    grey = np.full((120, 160, 3), 90, np.uint8)
    for i, t in enumerate([0.0, 0.1, 0.5, 0.6]):  # a stall between 0.1 and 0.5 s
        clock.now = 100.0 + t
        video.add(grey, [face(1, 3)], maps={1: np.ones((48, 48), np.float32)} if i == 3 else None)
    assert video.close() and video.error is None and video.dropped == 0
    # 0.6 s at 10 fps: 7 frames, the one of 0.1 s repeated over the stall.
    assert video.written == 7
    frames = read_video(path)
    assert len(frames) == 7 and frames[0].shape == grey.shape
    assert np.abs(frames[0].astype(int) - 90).max() > 100  # the box and label were drawn
    # The last frame's map turns the face's crop into colour.
    chroma = lambda f: (f.max(axis=2).astype(int) - f.min(axis=2)).mean()
    assert chroma(frames[-1]) > chroma(frames[0]) + 5


def test_a_video_that_cannot_be_written_says_so(tmp_path):
    from fer_desktop.recording import AnnotatedVideoRecorder

    blocker = tmp_path / "file"
    blocker.write_text("x")
    video = AnnotatedVideoRecorder(blocker / "session.mp4")
    video.add(np.zeros((60, 80, 3), np.uint8), [])
    assert video.close() and video.error and "session.mp4" in video.error
