"""Hooks into a running ``fer-desktop``, for its tests, the README's screenshots and the
window benchmark (``bench/gui.py``). Loaded through the app's plugin variable, so the
shipped entry point carries none of this:

    FER_DESKTOP_PLUGIN=bench.window_hooks:screenshot FER_DESKTOP_SMOKE_SCREENSHOT=shot.png fer-desktop ...
    FER_DESKTOP_PLUGIN=bench.window_hooks:events FER_DESKTOP_BENCH_EVENTS=events.jsonl fer-desktop ...
"""

import os

# Save a screenshot of the window after this many results with faces, then quit.
SMOKE_SCREENSHOT_ENV = "FER_DESKTOP_SMOKE_SCREENSHOT"
SMOKE_RESULTS_ENV = "FER_DESKTOP_SMOKE_RESULTS"
SMOKE_TIMEOUT_ENV = "FER_DESKTOP_SMOKE_TIMEOUT"
# Append timed events as JSON lines to this file; optionally switch models on a schedule
# and quit after a while.
BENCH_EVENTS_ENV = "FER_DESKTOP_BENCH_EVENTS"
BENCH_SWITCH_ENV = "FER_DESKTOP_BENCH_SWITCH"  # "SECONDS:model,model,...": one switch every SECONDS
BENCH_QUIT_ENV = "FER_DESKTOP_BENCH_QUIT"  # quit this many seconds after the first result


def screenshot(window, app, started: float) -> None:
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


def events(window, app, started: float) -> None:
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
