"""Threads still running at interpreter exit would be cut off inside OpenCV,
mediapipe or torch (C++ aborts): stop whatever the program forgot to stop.

``stop_at_exit(thing)`` holds ``thing`` weakly; at exit, each one still alive
gets ``stop(timeout=2.0)``, the last registered first.
"""

import atexit
import weakref

_running: "weakref.WeakKeyDictionary[object, None]" = weakref.WeakKeyDictionary()


def stop_at_exit(thing) -> None:
    """Have ``thing.stop(timeout=2.0)`` called at interpreter exit, unless it is gone by then."""
    _running[thing] = None


@atexit.register
def _stop_all() -> None:
    for item in reversed(list(_running)):
        item.stop(timeout=2.0)
