"""``fer-desktop``: the GUI's entry point.

``main()`` stays thin: parse the command line, make Qt use PySide6's own
plugins, create the application, show the window. ``build_window()`` is what
tests call (under pytest-qt's application).
"""

import argparse
import os
import sys
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda", "mps")
# A test hook: save a screenshot of the window after this many results with faces, then quit.
SMOKE_SCREENSHOT_ENV = "FER_DESKTOP_SMOKE_SCREENSHOT"
SMOKE_RESULTS_ENV = "FER_DESKTOP_SMOKE_RESULTS"
SMOKE_TIMEOUT_ENV = "FER_DESKTOP_SMOKE_TIMEOUT"


def parse_args(argv=None) -> argparse.Namespace:
    from fer_desktop.models.registry import list_models

    parser = argparse.ArgumentParser(
        prog="fer-desktop", description="Recognise facial emotions live from a webcam or a video file.")
    parser.add_argument("--source", default="0",
                        help="camera index (0, 1, ...) or a video file path (default: camera 0)")
    parser.add_argument("--model", choices=list_models(), default=None,
                        help="model to start with (default: the first one with trained weights)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the model runs (auto: CUDA, else MPS, else the CPU)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder with <model>.safetensors and <model>.json (searched first)")
    parser.add_argument("--no-smoothing", action="store_true", help="start with smoothing off")
    return parser.parse_args(argv)


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
                      weights_dir=args.weights_dir, smoothing=not getattr(args, "no_smoothing", False))


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


def main(argv=None) -> int:
    args = parse_args(argv)
    use_pyside_qt_plugins()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FER Desktop")
    window = build_window(args)
    _install_smoke_hook(window, app)
    window.show()
    code = app.exec()
    window.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
