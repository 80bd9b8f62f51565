"""The CSV timeline: columns as documented, a row per frame and face, nothing lost."""

import csv

import numpy as np
import pytest

from fer_desktop.emotions import EMOTIONS
from fer_desktop.preprocessing import Box
from fer_desktop.recording import COLUMNS, TimelineRecorder, default_recording_path
from fer_desktop.tracking import TrackedFace


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


def test_a_restart_within_the_same_second_never_overwrites(tmp_path):
    path = default_recording_path(tmp_path, now=0)  # both recordings start in the same second
    first = TimelineRecorder(path)
    first.add(1, [face(1, 3)], "baseline_cnn")
    first.close()
    second = TimelineRecorder(path)
    second.close()
    assert first.path == path and second.path == path.with_name(f"{path.stem}-2.csv")
    assert len(read_rows(first.path)) == 1 and read_rows(second.path) == []  # old code: the first was emptied
    # A name whose video (.mp4) exists is taken too, when the recording writes one.
    path.with_name(f"{path.stem}-3.mp4").write_bytes(b"someone's video")
    third = TimelineRecorder(path, siblings=(".mp4",))
    third.close()
    assert third.path.name == f"{path.stem}-4.csv"


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 kB tmpfs, filled but for one 4 kB page: a real full disk (needs root to mount)."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "tiny"
    folder.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root on Linux")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        stat = os.statvfs(folder)
        (folder / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 4096))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_the_recording_and_keeps_a_valid_csv(tiny_disk):
    clock = Clock()
    rec = TimelineRecorder(tiny_disk / "rec.csv", flush_every=0.0, clock=clock)
    for i in range(1000):  # 4 kB hold about 40 rows
        clock.now += 0.1
        rec.add(i, [face(1, 3)], "baseline_cnn")  # old code: OSError (ENOSPC) out of add, in the result path
        if rec.error:
            break
    assert rec.error == "disk full" and 10 < rec.saved_rows < rec.rows and rec.closed
    rec.add(1001, [face(1, 3)], "baseline_cnn")  # stopped: no error, no row
    rec.close()
    with open(rec.path, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert lines[0] == COLUMNS and len(lines) == 1 + rec.saved_rows  # no row cut in half
    assert all(len(line) == len(COLUMNS) for line in lines)


def test_a_disk_already_full_refuses_to_start(tiny_disk):
    (tiny_disk / "more").write_bytes(b"\0" * 4096)  # the last page
    with pytest.raises(OSError, match=r"cannot record here \(disk full\)"):
        TimelineRecorder(tiny_disk / "rec.csv")
    assert not (tiny_disk / "rec.csv").exists()


def test_a_long_pause_is_cut_to_a_second_of_repeats(tmp_path):
    from conftest import read_video
    from fer_desktop.recording import AnnotatedVideoRecorder

    clock = Clock()
    video = AnnotatedVideoRecorder(tmp_path / "paused.mp4", fps=10.0, queue_size=100, clock=clock)
    grey = np.full((120, 160, 3), 90, np.uint8)
    for t in (0.0, 0.1, 600.1, 600.2):  # ten minutes on a photo between the second and third frame
        clock.now = 100.0 + t
        video.add(grey, [face(1, 3)])
    assert video.close() and video.problem is None
    # 2 frames, the pause cut to 1 s (10 repeats), 1 more: old code wrote 6,003 frames.
    assert video.written == 13 and len(read_video(tmp_path / "paused.mp4")) == 13


def test_an_encoder_that_dies_keeps_its_frames_and_says_the_file_is_incomplete(tmp_path):
    from conftest import read_video
    from fer_desktop.recording import AnnotatedVideoRecorder

    clock = Clock()
    video = AnnotatedVideoRecorder(tmp_path / "dies.mp4", fps=10.0, clock=clock)
    grey = np.full((120, 160, 3), 90, np.uint8)
    for i in range(3):
        video.add(grey, [face(1, 3)])
        clock.now += 0.1
    video.add(grey, [object()])  # not a face: drawing it fails and the encoder thread ends
    assert video.join(timeout=10) and video.error  # ended on its own
    for _ in range(20):  # more than the queue holds
        video.add(grey, [face(1, 3)])
    assert video.dropped == 20
    # Old code: close() waited 5 s on the full queue of a dead thread, then returned False.
    assert video.close()
    assert "incomplete (3 frames)" in video.problem and "dies.mp4" in video.problem
    assert len(read_video(tmp_path / "dies.mp4")) == 3  # what was written is a valid file

