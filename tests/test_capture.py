"""The capture thread over real video files: newest frame wins, pacing, looping, errors, reconnect."""

import shutil
import threading
import time

import numpy as np
import pytest

from fer_desktop.capture import FrameSource, parse_source, probe_camera


class Recorder:
    def __init__(self):
        self.frames, self.statuses = [], []
        self.lock = threading.Lock()

    def frame(self, frame):
        with self.lock:
            self.frames.append(frame)

    def status(self, status):
        with self.lock:
            self.statuses.append(status)

    def states(self):
        with self.lock:
            return [s.state for s in self.statuses]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_parse_source():
    assert parse_source("0") == 0
    assert parse_source(2) == 2
    assert str(parse_source("clip.mp4")) == "clip.mp4"


def test_file_frames_are_fresh_read_only_and_numbered(face_video):
    rec = Recorder()
    src = FrameSource(face_video, on_frame=rec.frame, on_status=rec.status).start()
    try:
        assert wait_for(lambda: len(rec.frames) >= 5)
        assert src.fps == pytest.approx(15.0)
        assert src.size == (640, 360)
        frames = list(rec.frames[:5])
        assert [f.id for f in frames] == [1, 2, 3, 4, 5]
        for f in frames:
            assert f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8
            assert not f.image.flags.writeable
        # Each frame owns its pixels: no buffer is shared between two frames.
        assert not np.shares_memory(frames[0].image, frames[1].image)
        assert "playing" in rec.states()
    finally:
        assert src.stop(timeout=2.0)
    assert rec.states()[-1] == "stopped"


def test_newest_frame_wins(face_video):
    src = FrameSource(face_video).start()
    try:
        first = src.wait_frame(0, timeout=10)
        assert first is not None
        time.sleep(0.5)  # a slow consumer: several frames arrive meanwhile
        newest = src.wait_frame(first.id, timeout=10)
        assert newest is not None and newest.id > first.id + 1  # the ones between were dropped
        assert src.latest().id >= newest.id
    finally:
        src.stop()


def test_file_without_loop_ends_cleanly(face_video):
    rec = Recorder()
    src = FrameSource(face_video, loop=False, on_frame=rec.frame, on_status=rec.status).start()
    assert wait_for(lambda: not src.running, timeout=20)
    assert len(rec.frames) == 45
    assert "ended" in rec.states()
    assert src.stop()


def test_file_loops(tmp_path, face_video):
    # Three frames at 15 fps: loops within a second.
    from conftest import write_video

    short = write_video(tmp_path / "short.mp4", frames=3)
    rec = Recorder()
    src = FrameSource(short, on_frame=rec.frame, on_status=rec.status).start()
    try:
        assert wait_for(lambda: len(rec.frames) >= 8)
        assert "error" not in rec.states() and "ended" not in rec.states()
    finally:
        src.stop()


def test_missing_file_and_non_video_are_reported(tmp_path):
    rec = Recorder()
    src = FrameSource(tmp_path / "nope.mp4", on_status=rec.status, retry_interval=0.1).start()
    assert wait_for(lambda: "error" in rec.states())
    assert "not found" in rec.statuses[-1].message
    assert src.stop(timeout=2.0)

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    rec = Recorder()
    src = FrameSource(junk, on_status=rec.status, retry_interval=0.1).start()
    assert wait_for(lambda: "error" in rec.states())
    assert "junk.mp4" in [s for s in rec.statuses if s.state == "error"][0].message
    assert src.stop(timeout=2.0)


def test_absent_camera_is_reported_and_stop_is_quick():
    index = 7  # no machine running the tests has eight cameras
    assert probe_camera(index) is False
    rec = Recorder()
    src = FrameSource(index, on_status=rec.status, retry_interval=0.2).start()
    assert wait_for(lambda: "error" in rec.states())
    message = [s for s in rec.statuses if s.state == "error"][0].message
    assert "camera 7" in message and "not found" in message
    t0 = time.monotonic()
    assert src.stop(timeout=2.0)
    assert time.monotonic() - t0 < 2.0


def test_lost_source_reconnects(tmp_path, face_video):
    """A source that goes away mid-stream is reported and reopened once it is back."""
    from conftest import write_video

    clip = write_video(tmp_path / "clip.mp4", frames=4)
    rec = Recorder()
    src = FrameSource(clip, on_frame=rec.frame, on_status=rec.status, retry_interval=0.1).start()
    try:
        assert wait_for(lambda: len(rec.frames) >= 2)
        clip.unlink()  # unplugged: the next loop cannot reopen it
        assert wait_for(lambda: "error" in rec.states())
        count = len(rec.frames)
        shutil.copy(face_video, clip)  # plugged back in
        assert wait_for(lambda: any("reconnected" in s.message for s in rec.statuses))
        assert wait_for(lambda: len(rec.frames) > count)
    finally:
        assert src.stop(timeout=2.0)
