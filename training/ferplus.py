"""FER+ labels for FER-2013's faces (Barsoum et al., ICMI 2016), from its ten annotators' votes.

FER+ had every FER-2013 face relabelled by ten people, with three more choices
than FER-2013's seven: contempt, unknown and NF (not a face). Two label sets
are made from the votes:

- ``ferplus``: the majority label, i.e. the column with strictly more votes
  than any other. A face is dropped when that column is contempt, unknown or
  NF, when two columns tie for the most votes, and when FER+ has no row for it
  (177 faces). Contempt is dropped rather than merged into another class: none
  of the seven means it, and the app shows seven.
- ``ferplus-soft``: the same faces, each with the distribution of its votes
  over the seven emotions (contempt, unknown and NF votes left out) as the
  training target; evaluation uses the majority labels.

``fer2013`` is FER-2013's own labels, the default.
"""

import numpy as np

from fer_desktop.emotions import EMOTIONS

LABEL_SETS = ("fer2013", "ferplus", "ferplus-soft")

# FER+'s column names -> ours.
FERPLUS_NAMES = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
                 "sadness": "sad", "surprise": "surprise", "neutral": "neutral"}


def ferplus_targets(votes: np.ndarray, columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keep [N] bool, majority labels [N] int64, vote distributions [N, 7] float32)`` in ``EMOTIONS`` order.

    ``votes``: ``[N, 10]`` counts in ``columns`` order; a row FER+ lacks is all zero or all 255.
    Labels and distributions are meaningful where ``keep`` is true.
    """
    votes = np.asarray(votes).astype(np.int64)
    columns = [str(c) for c in columns]
    missing = (votes.sum(1) == 0) | (votes == 255).any(1)
    votes = np.where(missing[:, None], 0, votes)
    top = votes.argmax(1)
    most = votes.max(1)
    unique_top = (votes == most[:, None]).sum(1) == 1
    emotion_column = np.array([c in FERPLUS_NAMES for c in columns])
    ours = np.array([EMOTIONS.index(FERPLUS_NAMES[c]) if c in FERPLUS_NAMES else -1 for c in columns])
    keep = ~missing & unique_top & emotion_column[top]
    labels = np.where(keep, ours[top], 0).astype(np.int64)

    soft = np.zeros((len(votes), len(EMOTIONS)), np.float32)
    for j, k in enumerate(ours):
        if k >= 0:
            soft[:, k] = votes[:, j]
    total = soft.sum(1, keepdims=True)
    soft = np.divide(soft, total, out=np.zeros_like(soft), where=total > 0)
    return keep, labels, soft
