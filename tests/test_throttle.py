"""Repeated messages are rate-limited and counted; new messages and recoveries pass at once."""

from fer_desktop.throttle import RepeatThrottle


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_repeating_message_passes_once_then_with_its_count():
    clock = Clock()
    throttle = RepeatThrottle(interval=2.0, clock=clock)
    shown = []
    for frame in range(120):  # 4 s of a per-frame error at 30 fps
        clock.now = frame / 30
        text = throttle("cannot label frames: boom")
        if text is not None:
            shown.append(text)
    assert shown == ["cannot label frames: boom", "cannot label frames: boom (x61)"]
    assert throttle.active


def test_a_new_message_passes_at_once_and_reset_forgets():
    clock = Clock()
    throttle = RepeatThrottle(interval=2.0, clock=clock)
    assert throttle("a") == "a" and throttle("a") is None
    assert throttle("b") == "b"
    throttle.reset()
    assert not throttle.active and throttle("b") == "b"
