"""Face tracking: the same face keeps its id from one result to the next, and its
emotion probabilities are smoothed over time, so labels do not flicker.

``FaceTracker`` follows faces from one result to the next by the overlap (IoU)
of their boxes and keeps an exponential moving average of each face's
probabilities. The average uses a time constant in seconds, not a per-update
weight, so a slow model and a fast one smooth alike. Faces keep their track id
while they are seen, which also lets the GUI keep a selected face selected.

No Qt, no torch: numpy only.
"""

import itertools
import math
from dataclasses import dataclass

import numpy as np

from fer_desktop.pipeline import TopEmotion
from fer_desktop.preprocessing import Box, iou


@dataclass(frozen=True)
class TrackedFace(TopEmotion):
    """A face result with its track id; ``probs`` is smoothed (or raw when smoothing is off)."""

    track_id: int
    box: Box
    probs: np.ndarray  # float32 [7]
    raw_probs: np.ndarray  # this frame's probabilities


@dataclass
class _Track:
    track_id: int
    box: Box
    probs: np.ndarray | None
    last_seen: float


class FaceTracker:
    """Match faces across frames by IoU and smooth their probabilities.

    ``time_constant``: seconds for the average to move ~63% of the way to a new,
    steady value. ``max_age``: seconds a face may go unseen before its track is
    forgotten. With ``enabled`` False, probabilities pass through unchanged
    (tracking goes on, so ids stay stable).
    """

    def __init__(self, time_constant: float = 0.4, iou_threshold: float = 0.3, max_age: float = 1.0,
                 enabled: bool = True) -> None:
        self.time_constant = time_constant
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.enabled = enabled
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)

    def reset(self) -> None:
        """Forget every face (a new video source)."""
        self._tracks.clear()

    def restart_averages(self) -> None:
        """Keep the faces and their ids but start their averages afresh (a new model)."""
        for track in self._tracks:
            track.probs = None

    def update(self, faces, now: float) -> list[TrackedFace]:
        """``faces``: objects with ``.box`` and ``.probs`` (e.g. ``FaceResult``); ``now`` in seconds.

        Returns one ``TrackedFace`` per input face, in the input order.
        """
        self._tracks = [t for t in self._tracks if now - t.last_seen <= self.max_age]
        # Greedy matching, best overlaps first.
        pairs = sorted(((iou(f.box, t.box), fi, ti) for fi, f in enumerate(faces)
                        for ti, t in enumerate(self._tracks)), reverse=True)
        match: dict[int, int] = {}
        used: set[int] = set()
        for overlap, fi, ti in pairs:
            if overlap < self.iou_threshold:
                break
            if fi not in match and ti not in used:
                match[fi] = ti
                used.add(ti)
        out = []
        for fi, face in enumerate(faces):
            raw = np.asarray(face.probs, np.float32)
            if fi in match:
                track = self._tracks[match[fi]]
                dt = max(0.0, now - track.last_seen)
                if self.enabled and self.time_constant > 0 and track.probs is not None:
                    alpha = 1.0 - math.exp(-dt / self.time_constant)
                    track.probs = (track.probs + alpha * (raw - track.probs)).astype(np.float32)
                else:
                    track.probs = raw.copy()
                track.box, track.last_seen = face.box, now
            else:
                track = _Track(next(self._ids), face.box, raw.copy(), now)
                self._tracks.append(track)
            out.append(TrackedFace(track.track_id, face.box, track.probs.copy(), raw))
        return out
