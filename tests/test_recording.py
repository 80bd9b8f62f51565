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
