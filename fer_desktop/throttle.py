"""Rate-limit a message that repeats, counting the repeats, so a per-frame error cannot flood a GUI.

The first occurrence passes at once; the same message again passes at most once
per ``interval`` seconds, with its count ("… (x120)"). A different message
passes at once and starts a new count; ``reset`` (on recovery) forgets the last.
"""

import time
from collections.abc import Callable


class RepeatThrottle:
    def __init__(self, interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: str | None = None
        self._count = 0
        self._shown_at = 0.0

    @property
    def active(self) -> bool:
        """Whether a message has passed since the last ``reset``."""
        return self._last is not None

    def __call__(self, message: str) -> str | None:
        """The text to show now, or None to stay quiet."""
        now = self._clock()
        if message != self._last:
            self._last, self._count, self._shown_at = message, 1, now
            return message
        self._count += 1
        if now - self._shown_at < self.interval:
            return None
        self._shown_at = now
        return f"{message} (x{self._count})"

    def reset(self) -> None:
        self._last, self._count = None, 0
