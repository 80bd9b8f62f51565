"""The seven FER-2013 emotions, in the dataset's own label order."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
