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
# A test hook: save a screenshot of the window after this many results with faces, then quit.
SMOKE_SCREENSHOT_ENV = "FER_DESKTOP_SMOKE_SCREENSHOT"
SMOKE_RESULTS_ENV = "FER_DESKTOP_SMOKE_RESULTS"
SMOKE_TIMEOUT_ENV = "FER_DESKTOP_SMOKE_TIMEOUT"
# A benchmark hook (bench/gui.py): append timed events as JSON lines to this file;
# optionally switch models on a schedule and quit after a while (see _install_bench_hook).
BENCH_EVENTS_ENV = "FER_DESKTOP_BENCH_EVENTS"
BENCH_SWITCH_ENV = "FER_DESKTOP_BENCH_SWITCH"  # "SECONDS:model,model,...": one switch every SECONDS
BENCH_QUIT_ENV = "FER_DESKTOP_BENCH_QUIT"  # quit this many seconds after the first result


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


def _install_smoke_hook(window, app) -> None:
    """With $FER_DESKTOP_SMOKE_SCREENSHOT set: after N results showing faces, save a
    screenshot of the window there and quit (exit status 0; 3 on timeout)."""
    path = os.environ.get(SMOKE_SCREENSHOT_ENV)
    if not path:
        return
    from PySide6.QtCore import QTimer

    wanted = int(os.environ.get(SMOKE_RESULTS_ENV, "10"))
    seen = [0]

    def on_result(result) -> None:
        if result.faces:
            seen[0] += 1
        if seen[0] == wanted:
            labels = " ".join(face.label for face in result.faces)
            print(f"smoke: {seen[0]} results with faces; last: {labels}", flush=True)
            QTimer.singleShot(300, save_and_quit)  # let the frame with these overlays paint

    def save_and_quit(code: int = 0) -> None:
        window._update_stats()
        app.processEvents()
        screen = window.screen()
        shot = screen.grabWindow(window.winId()) if app.platformName() == "xcb" else window.grab()
        if shot.isNull():
            shot = window.grab()
        shot.save(path)
        window.close()
        app.exit(code)

    window.session.result_ready.connect(on_result)
    QTimer.singleShot(int(float(os.environ.get(SMOKE_TIMEOUT_ENV, "120")) * 1000), lambda: save_and_quit(3))


def _install_bench_hook(window, app, started: float) -> None:
    """With $FER_DESKTOP_BENCH_EVENTS set: log events with ``time.time()`` stamps, one JSON
    object a line: ``main`` (main() entered), ``painted`` (the window's first paint),
    ``frame`` (a new video frame painted), ``result`` (with its model), ``model`` (a model
    now serves), ``switch`` (a switch requested by the schedule) and ``quit``."""
    path = os.environ.get(BENCH_EVENTS_ENV)
    if not path:
        return
    import json
    import time

    from PySide6.QtCore import QEvent, QObject, QTimer

    log = open(path, "a", encoding="utf-8", buffering=1)

    def event(kind: str, t: float | None = None, **fields) -> None:
        log.write(json.dumps({"event": kind, "t": time.time() if t is None else t, **fields}) + "\n")

    class PaintWatch(QObject):
        painted, frames = False, 0

        def eventFilter(self, obj, ev) -> bool:
            if ev.type() == QEvent.Type.Paint:
                if not self.painted:
                    self.painted = True
                    event("painted")
                if window.frames_shown != self.frames:
                    self.frames = window.frames_shown
                    event("frame", n=self.frames)
            return False

    watch = PaintWatch(window)
    window.view.installEventFilter(watch)
    event("main", started)
    window.session.worker_event.connect(
        lambda e: e.kind == "model" and event("model", model=e.model))
    schedule = os.environ.get(BENCH_SWITCH_ENV, "")
    every, _, names = schedule.partition(":")
    switches = [n for n in names.split(",") if n]

    def switch() -> None:
        if switches:
            name = switches.pop(0)
            event("switch", model=name)
            window.set_model(name)
            QTimer.singleShot(int(float(every) * 1000), switch)

    def quit_() -> None:
        event("quit")
        log.flush()
        window.close()
        app.exit(0)

    def on_result(result) -> None:
        event("result", model=result.model, faces=len(result.faces), frame_id=result.frame_id)
        if window.results_shown == 1:
            if switches:
                QTimer.singleShot(int(float(every) * 1000), switch)
            if os.environ.get(BENCH_QUIT_ENV):
                QTimer.singleShot(int(float(os.environ[BENCH_QUIT_ENV]) * 1000), quit_)

    window.session.result_ready.connect(on_result)


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
    _install_smoke_hook(window, app)
    _install_bench_hook(window, app, started)
    window.show()
    try:
        code = app.exec()
    finally:
        window.shutdown()  # idempotent: closing the window has normally done it
        restore_signal_handlers(window)
    return 128 + received[0] if received else code


if __name__ == "__main__":
    sys.exit(main())
