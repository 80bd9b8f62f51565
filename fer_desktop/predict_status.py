"""How a fer-predict run ends: its exit statuses, the errors that set them, and Ctrl-C.

A Ctrl-C sets ``INTERRUPTED`` and, outside an output record being written,
raises ``KeyboardInterrupt`` at once; inside one (``whole``) it waits for the
record's end, so that the output stays readable.
"""

import contextlib
import functools
import logging
import signal
import sys
import threading

EXIT_OK, EXIT_BAD_FILE, EXIT_WEIGHTS, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = {
    EXIT_OK: "every file was processed",
    EXIT_BAD_FILE: "some files could not be read, or only in part (a video that ends before the frame "
                   "count it declares); the others were processed",
    EXIT_WEIGHTS: "no usable weights or model: missing, damaged, or not loadable on the device",
    EXIT_USAGE: "usage: a bad option, or an output file or folder that cannot be written (an annotated "
                "copy included)",
    EXIT_UNEXPECTED: "an unexpected error (a bug: --verbose shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class InputError(Exception):
    """A file that cannot be processed; the message is one line for the user."""

    status = EXIT_BAD_FILE


class OutputError(InputError):
    """An output (an annotated copy) that cannot be written."""

    status = EXIT_USAGE


# Set by Ctrl-C. Python drops a KeyboardInterrupt raised inside a finaliser (it only prints
# "Exception ignored"), and the run would then go on and exit 0; the flag still stops it with 130.
INTERRUPTED = threading.Event()
_deferring = 0  # > 0 while an output record is written: Ctrl-C then waits for its end


def stop_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed (the next file or frame does not start)."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _quiet_after_interrupt(previous_hook):
    """An unraisable-exception hook that, once Ctrl-C was pressed, only logs: an object whose
    constructor the KeyboardInterrupt cut short may fail in its finaliser (MediaPipe's ``Image``
    does), and "Exception ignored in ..." would follow the one line the user gets."""
    def hook(unraisable) -> None:
        if INTERRUPTED.is_set():
            logging.getLogger(__name__).debug("after Ctrl-C: %s", unraisable.err_msg or "a finaliser failed",
                                              exc_info=(unraisable.exc_type, unraisable.exc_value,
                                                        unraisable.exc_traceback))
            return
        previous_hook(unraisable)
    return hook


@contextlib.contextmanager
def ctrl_c_noted():
    previous = signal.getsignal(signal.SIGINT)
    # Only in place of Python's own handler: keep SIGINT ignored where the shell ignores it
    # (background jobs), and leave other threads' and embedders' handlers alone.
    in_main = threading.current_thread() is threading.main_thread()
    if previous is not signal.default_int_handler or not in_main:
        yield
        return

    def on_sigint(signum, frame):
        INTERRUPTED.set()
        if not _deferring:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_after_interrupt(previous_hook)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if not INTERRUPTED.is_set():  # after Ctrl-C, cut-short objects may still be freed at exit
            sys.unraisablehook = previous_hook


def whole(method):
    """An output sink's method that Ctrl-C does not cut short (a half-written JSON line would make
    the whole list unreadable): the interruption is raised once it returns."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _deferring
        _deferring += 1
        try:
            result = method(*args, **kwargs)
        finally:
            _deferring -= 1
        if INTERRUPTED.is_set() and not _deferring and method.__name__ != "close":
            raise KeyboardInterrupt
        return result

    return wrapper
