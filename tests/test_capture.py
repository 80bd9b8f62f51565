"""The capture thread over real video files: newest frame wins, pacing, looping, errors, reconnect."""

import shutil
import threading
import time

import numpy as np
import pytest
from conftest import FaultyCapture, wait_for

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
        assert not {"error", "ended", "incomplete"} & set(rec.states())
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
    assert src.stop(timeout=2.0)


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


def test_an_exception_while_reading_is_shown_and_capture_recovers(face_video):
    """Old code: the exception ended the thread for good (state 'stopped', no frames, no message)."""
    opens = []

    def open_capture(source):
        opens.append(source)
        return FaultyCapture(source, good=3 if len(opens) <= 2 else 10_000)  # two bad opens, then healthy

    rec = Recorder()
    src = FrameSource(face_video, on_frame=rec.frame, on_status=rec.status, retry_interval=0.05,
                      open_capture=open_capture).start()
    try:
        assert wait_for(lambda: len(rec.frames) >= 12)  # frames after the second failure: it recovered
        errors = [s for s in rec.statuses if s.state == "error"]
        assert errors and "capture failed (camera driver fault)" in errors[0].message
        assert "\n" not in errors[0].message
        assert src.running and "stopped" not in rec.states()
        assert any("reconnected" in s.message for s in rec.statuses)
    finally:
        assert src.stop(timeout=2.0)
    assert rec.states()[-1] == "stopped"


def test_an_exception_while_opening_backs_off_and_keeps_trying(face_video):
    opens = []

    def open_capture(source):
        opens.append(time.monotonic())
        raise OSError("no such device")

    rec = Recorder()
    src = FrameSource(0, on_status=rec.status, retry_interval=0.05, max_retry_interval=0.2,
                      open_capture=open_capture).start()
    try:
        assert wait_for(lambda: len(opens) >= 6)
        assert src.running and "capture failed (no such device)" in rec.statuses[-1].message
        gaps = np.diff(opens)
        assert gaps[3] > gaps[0] * 1.5  # backing off, not hammering the device
        assert [src.retry_delay(n) for n in (1, 2, 3, 4, 9)] == [0.05, 0.1, 0.2, 0.2, 0.2]
    finally:
        assert src.stop(timeout=2.0)


def test_a_listener_that_raises_is_logged_not_swallowed(face_video, caplog):
    def broken(frame):
        raise ValueError("listener bug")

    src = FrameSource(face_video, on_frame=broken).start()
    try:
        assert wait_for(lambda: src.frames_read >= 3)
        assert src.running  # capture goes on
    finally:
        src.stop()
    assert any("listener" in r.getMessage() and r.exc_info for r in caplog.records)


def test_switching_source_neither_blocks_nor_opens_a_device_still_held(face_video):
    events = []
    old = FrameSource(face_video, open_capture=lambda s: FaultyCapture(s, release_delay=2.0, log=events)).start()
    assert wait_for(lambda: old.frames_read >= 2)
    assert old.stop(timeout=0) is False  # asked to stop; still releasing
    new = FrameSource(face_video, after=old, open_capture=lambda s: FaultyCapture(s, log=events)).start()
    # The caller (the GUI thread) never waits for the old device: it has not let go yet.
    assert [k for k, _ in events] == ["open"]
    try:
        assert wait_for(lambda: new.frames_read >= 2)
        kinds = [k for k, _ in events]
        assert kinds[:3] == ["open", "released", "open"], kinds  # the old one let go before the new opened
    finally:
        assert new.stop(timeout=2.0)


def test_probing_an_absent_camera_never_raises():
    assert probe_camera(9) is False


def _boxes(data: bytes, start: int, end: int):
    """(kind, offset, size) of the MP4 boxes in ``data[start:end]``."""
    import struct

    while start < end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        yield kind, start, size
        start += size


def make_truncated_video(path, frames: int = 472, keep: int = 40_000):
    """A video cut short, as a download stopped half-way: (path, frames still readable).

    An MP4 with its index (``moov``) first, as cameras and ``-movflags faststart`` write them, so the
    header still declares ``frames`` frames; then only its first ``keep`` bytes.
    """
    import struct
    from pathlib import Path

    import cv2
    from conftest import write_video

    path = Path(path)
    data = write_video(path.with_name("whole.mp4"), frames=frames).read_bytes()
    top = {kind: (i, size) for kind, i, size in _boxes(data, 0, len(data))}
    (moov_at, moov_size), (mdat_at, mdat_size) = top[b"moov"], top[b"mdat"]
    moov = bytearray(data[moov_at:moov_at + moov_size])

    def shift_chunk_offsets(start, end):  # the samples move by the moov's size
        for kind, i, size in _boxes(moov, start, end):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                shift_chunk_offsets(i + 8, i + size)
            elif kind == b"stco":
                (count,) = struct.unpack(">I", moov[i + 12:i + 16])
                for j in range(i + 16, i + 16 + 4 * count, 4):
                    struct.pack_into(">I", moov, j, struct.unpack(">I", moov[j:j + 4])[0] + moov_size)
    shift_chunk_offsets(8, moov_size)
    whole = data[:mdat_at] + bytes(moov) + data[mdat_at:mdat_at + mdat_size]
    path.write_bytes(whole[:keep])
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == frames
    readable = 0
    while cap.read()[0]:
        readable += 1
    cap.release()
    assert 0 < readable < frames - 10
    return path, readable


def test_a_truncated_file_is_reported_once_and_what_it_has_keeps_looping(tmp_path):
    import re

    clip, readable = make_truncated_video(tmp_path / "cut.mp4")
    rec = Recorder()
    src = FrameSource(clip, on_frame=rec.frame, on_status=rec.status).start()
    try:
        assert wait_for(lambda: len(rec.frames) > 2 * readable + 2, timeout=30)  # three passes
        incomplete = [s.message for s in rec.statuses if s.state == "incomplete"]
        assert len(incomplete) == 1, rec.statuses  # said once, not once per loop
        assert re.fullmatch(rf"cut.mp4 ended early: {readable} of 472 frames could be read "
                            r"\(the file is incomplete\)", incomplete[0])
        assert "error" not in rec.states() and rec.states()[-1] == "incomplete"
    finally:
        assert src.stop(timeout=2.0)
