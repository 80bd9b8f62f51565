"""The selected face's seven probabilities over the last 30 seconds, as a live line chart.

Drawn with pyqtgraph: it is made for live plots in Qt (axes, ticks, autoscaling,
fast polyline drawing from numpy arrays) and needs only numpy, whereas QtCharts
is not part of PySide6-Essentials. Results arrive at the inference rate; the
curves are redrawn at most ``refresh_hz`` times a second, so a fast model does
not spend the GUI thread on a chart nobody can read at 60 Hz, and a point is
kept at most every ``min_step`` seconds (300 per curve over 30 s), which is
more than a chart 300 pixels wide can show.

pyqtgraph is imported and the plot built just after the widget's first paint:
its import takes about half a second, which would otherwise delay the window's
appearance at launch. Points that arrive before are kept and drawn then.
"""

import numpy as np
from PySide6.QtCore import QSize, QTimer
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from fer_desktop.app.colors import EMOTION_COLORS
from fer_desktop.emotions import EMOTIONS

MIN_SPAN_S = 5.0


class EmotionTimeline(QWidget):
    def __init__(self, window_s: float = 30.0, refresh_hz: float = 10.0, min_step: float = 0.1,
                 parent=None) -> None:
        super().__init__(parent)
        self.window_s = window_s
        self.min_step = min_step
        self._times: list[float] = []
        self._probs: list[np.ndarray] = []
        self._dirty = False
        self._last_time = 0.0
        self.plot = None  # built after the first paint (see the module's docstring)
        self.curves = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(120)

        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / refresh_hz))
        self._timer.timeout.connect(self._redraw)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.plot is None and not self._timer.isActive():
            self._timer.start()
            QTimer.singleShot(0, self._build)

    def _build(self) -> None:
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(background=None)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setYRange(0, 1, padding=0.06)  # room for the 0 and 100 % labels
        self.plot.setXRange(-MIN_SPAN_S, 0, padding=0)  # it grows with the history (``shown_span``)
        self.plot.setLabel("bottom", "seconds")
        self.plot.getAxis("left").setTicks([[(0, "0"), (0.5, "50%"), (1, "100%")]])
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self.curves = {
            name: self.plot.plot([], [], pen=pg.mkPen(EMOTION_COLORS[name], width=2), name=name)
            for name in EMOTIONS
        }
        self._layout.addWidget(self.plot)
        self._dirty = True

    def sizeHint(self) -> QSize:
        return QSize(300, 150)

    def add(self, t: float, probs) -> None:
        """One point per emotion at time ``t`` (seconds, monotonic)."""
        if self._times and t - self._times[-1] < self.min_step:
            return
        self._times.append(t)
        self._probs.append(np.asarray(probs, np.float32))
        self._last_time = t
        # Keep a little more than the window so the left edge is not cut short.
        while self._times and t - self._times[0] > self.window_s + 1.0:
            self._times.pop(0)
            self._probs.pop(0)
        self._dirty = True

    def clear(self) -> None:
        self._times.clear()
        self._probs.clear()
        self._dirty = True

    def points(self) -> int:
        return len(self._times)

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """``(seconds relative to the newest point [T], probabilities [T, 7])``, as plotted."""
        if not self._times:
            return np.zeros(0, np.float32), np.zeros((0, len(EMOTIONS)), np.float32)
        t = np.asarray(self._times, np.float64) - self._last_time
        return t.astype(np.float32), np.stack(self._probs)

    def _redraw(self) -> None:
        if self.plot is None or not self._dirty:
            return
        self._dirty = False
        t, probs = self.series()
        for i, name in enumerate(EMOTIONS):
            self.curves[name].setData(t, probs[:, i] if len(t) else [])
        self.plot.setXRange(-self.shown_span(), 0, padding=0)

    def shown_span(self) -> float:
        """Seconds the x axis spans: the history so far (at least ``MIN_SPAN_S``), up to the window.

        A fixed 30 s axis would show the first seconds as a thin strip at its right edge."""
        t, _ = self.series()
        return min(self.window_s, max(MIN_SPAN_S, float(-t[0]) if len(t) else 0.0))
