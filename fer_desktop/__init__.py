"""fer-desktop: real-time facial emotion recognition.

The public API is small::

    from fer_desktop import EMOTIONS, load_classifier
    clf = load_classifier("resnet50_cbam", device="cpu")
    probs = clf.predict(faces)  # uint8 [N, 48, 48] -> float [N, 7]

Heavy modules (torch) are imported on first use, so that ``import fer_desktop``
stays cheap for the GUI's start-up.
"""

from fer_desktop.emotions import EMOTIONS

__all__ = ["EMOTIONS", "load_classifier", "Classifier", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("load_classifier", "Classifier"):
        from fer_desktop import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'fer_desktop' has no attribute {name!r}")
