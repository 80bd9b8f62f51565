"""``fer-desktop``: the GUI's entry point.

``main()`` stays thin: parse the command line, make Qt use PySide6's own
plugins, create the application, show the window. ``build_window()`` is what
tests call (under pytest-qt's application). Ctrl-C and SIGTERM close the window
as its close button does (``install_signal_handlers``).
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda", "mps")
BACKENDS = ("auto", "onnx", "torch")  # fer_desktop.classifier.BACKENDS, without importing it here
# Plugins: "module:function[,module:function...]", each called as function(window, app, started)
# before the window is shown. The screenshot and benchmark hooks of bench/window_hooks.py are
# loaded this way, so the entry point carries none of them.
PLUGIN_ENV = "FER_DESKTOP_PLUGIN"


def parse_args(argv=None) -> argparse.Namespace:
    from fer_desktop.ensemble import model_names

    parser = argparse.ArgumentParser(
        prog="fer-desktop", description="Recognise facial emotions live from a webcam or a video file.")
    parser.add_argument("--source", default="0",
                        help="camera index (0, 1, ...) or a video file path (default: camera 0)")
    parser.add_argument("--model", choices=model_names(), default=None,
                        help="model to start with (default: the first one with trained weights)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the model runs (auto: the CPU, on ONNX Runtime where the model is "
                             "exported; cuda and mps run PyTorch, from the torch extra)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="the engine: auto (ONNX Runtime on the CPU where exported, else PyTorch), "
                             "onnx, or torch (needs the torch extra)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder with <model>.safetensors and <model>.json (searched first)")
    parser.add_argument("--no-smoothing", action="store_true", help="start with smoothing off")
    parser.add_argument("--explain", nargs="?", const="gradcam", choices=["gradcam", "attention"], default=None,
                        help="start with explanation maps on (default method: gradcam; attention for the "
                             "attention models' own maps)")
    parser.add_argument("--record", action="store_true", help="start recording the CSV timeline at once")
    parser.add_argument("--record-video", action="store_true",
                        help="recordings also write the annotated video (MP4) beside the CSV")
    parser.add_argument("--record-dir", type=Path, default=None,
                        help="where Record and Snapshot write (default: ~/fer-desktop)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what the capture and inference threads do, with tracebacks of errors")
    return parser.parse_args(argv)


def configure_logging(verbose: bool) -> None:
    """Warnings (errors the window also shows) always reach stderr; ``--verbose`` adds the details."""
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(threadName)s %(name)s: %(levelname)s: %(message)s")
    if verbose:  # libraries' own chatter stays at INFO
        for name in ("PIL", "matplotlib"):
            logging.getLogger(name).setLevel(logging.INFO)


def use_pyside_qt_plugins() -> None:
    """Keep OpenCV's bundled Qt plugins and fonts away from PySide6.

    OpenCV's wheels point ``QT_QPA_PLATFORM_PLUGIN_PATH`` (and ``QT_QPA_FONTDIR``)
    at their own Qt 5 files when cv2 is imported; PySide6 would then fail to load
    the xcb platform. Import cv2 now, so it cannot set them later, and drop what
    it set (values a user set elsewhere are kept).
    """
    import cv2  # noqa: F401  (sets the variables as a side effect)

    for var in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR"):
        value = os.environ.get(var)
        if value and "cv2" in Path(value).parts:
            del os.environ[var]


def quiet_ffmpeg(verbose: bool) -> None:
    """Keep FFmpeg's own lines ("partial file", "ac-tex damaged"...) off stderr: they repeat on
    every loop of a damaged file, and the window already says what is wrong with a source.

    OpenCV reads the variable when it first opens a video, so this must run before; a value the
    user set is kept, and ``--verbose`` keeps FFmpeg's messages."""
    if not verbose:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def install_signal_handlers(window, signals=(signal.SIGINT, signal.SIGTERM)) -> list:
    """Close ``window`` on Ctrl-C or SIGTERM, as its close button does (recordings finished).

    Python runs signal handlers only between bytecodes, never while Qt's event loop waits in C++:
    the signal's number is written to a socket (``signal.set_wakeup_fd``) that a ``QSocketNotifier``
    watches, which wakes the loop, runs a little Python and so the handler. The handler only
    schedules the close. Returns the list the signals received are appended to.
    """
    import socket

    from PySide6.QtCore import QSocketNotifier, QTimer

    received: list = []
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, window)

    def drain() -> None:
        try:
            reader.recv(64)
        except OSError:
            pass

    def handle(signum, _frame) -> None:
        received.append(signum)
        QTimer.singleShot(0, window.close)  # out of the handler: it may have interrupted anything

    notifier.activated.connect(drain)
    window._signal_wakeup = (reader, writer, notifier)  # kept alive as long as the window
    window._signal_previous = {signum: signal.signal(signum, handle) for signum in signals}
    return received


def restore_signal_handlers(window) -> None:
    """Undo ``install_signal_handlers`` (for a caller that goes on after the window)."""
    signal.set_wakeup_fd(-1)
    for signum, previous in getattr(window, "_signal_previous", {}).items():
        signal.signal(signum, previous)


def build_window(args=None):
    """The main window for ``args`` (a namespace or a list of command-line words), not yet shown.

    A ``QApplication`` must exist. Threads start when the window is first shown.
    """
    from fer_desktop.app.main_window import MainWindow
    from fer_desktop.app.qt_compat import guard_none_refcount

    guard_none_refcount()  # PySide6 6.12.0 on Python 3.11 would otherwise abort within minutes

    if args is None or isinstance(args, (list, tuple)):
        args = parse_args(args or [])
    return MainWindow(source=args.source, model=args.model, device=args.device,
                      backend=getattr(args, "backend", "auto"),
                      weights_dir=args.weights_dir, smoothing=not getattr(args, "no_smoothing", False),
                      record_dir=getattr(args, "record_dir", None), explain=getattr(args, "explain", None),
                      record=getattr(args, "record", False), record_video=getattr(args, "record_video", False))


def load_plugins(window, app, started: float, spec: str | None = None) -> None:
    """Call each ``module:function`` named in ``$FER_DESKTOP_PLUGIN`` (or ``spec``) with the window."""
    import importlib

    for entry in filter(None, (spec if spec is not None else os.environ.get(PLUGIN_ENV, "")).split(",")):
        module, _, function = entry.strip().partition(":")
        getattr(importlib.import_module(module), function or "install")(window, app, started)


def main(argv=None) -> int:
    """Exit status: 0, or 128 + the signal's number after Ctrl-C (130) or SIGTERM (143)."""
    started = time.time()
    args = parse_args(argv)
    configure_logging(args.verbose)
    quiet_ffmpeg(args.verbose)
    use_pyside_qt_plugins()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FER Desktop")
    window = build_window(args)
    received = install_signal_handlers(window)
    load_plugins(window, app, started)
    window.show()
    try:
        code = app.exec()
    finally:
        window.shutdown()  # idempotent: closing the window has normally done it
        restore_signal_handlers(window)
    return 128 + received[0] if received else code


if __name__ == "__main__":
    sys.exit(main())
