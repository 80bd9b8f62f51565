"""Work-arounds for known-bad Qt for Python builds.

PySide6 6.12.0's stable-ABI wheels return ``None`` from every void method
without taking a new reference when run on Python 3.11 (they assume ``None`` is
immortal, which it is only from Python 3.12). Each call such as
``widget.update()`` or ``painter.drawImage()`` then lowers ``None``'s reference
count by one, and after a minute of video the interpreter aborts with "Fatal
Python error: none_dealloc". PySide6 6.11.x and Python 3.12+ are not affected.

``guard_none_refcount`` detects the fault and gives ``None`` the huge reference
count that Python 3.12 gives immortal objects, so the leak can never reach zero.
"""

import ctypes
import sys

_IMMORTAL_MARGIN = 1 << 40  # ~10^12 leaked references: years of video


def pyside_leaks_none() -> bool:
    """True if void PySide6 methods drop a reference to ``None`` (needs no QApplication)."""
    if sys.version_info >= (3, 12):
        return False  # None is immortal: its reference count is never used
    from PySide6.QtCore import QObject

    probe = QObject()
    calls = 200
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("probe")
    return before - sys.getrefcount(None) >= calls // 2


def guard_none_refcount() -> bool:
    """Make ``None`` effectively immortal if this PySide6 build leaks it; True if it did."""
    if not pyside_leaks_none():
        return False
    if hasattr(sys, "gettotalrefcount"):  # a debug build's object header differs: leave it alone
        return False
    refcnt = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is PyObject's first field
    if refcnt.value < _IMMORTAL_MARGIN:
        refcnt.value += _IMMORTAL_MARGIN
    return True
