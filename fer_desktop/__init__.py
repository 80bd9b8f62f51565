"""fer-desktop: real-time facial emotion recognition.

The public API is small::

    from fer_desktop import EMOTIONS, load_classifier
    clf = load_classifier("resnet50_cbam", device="cpu")
    probs = clf.predict(faces)  # uint8 [N, 48, 48] -> float [N, 7]

Heavy modules (ONNX Runtime, or torch where asked for) are imported on first
use, so that ``import fer_desktop`` stays cheap for the GUI's start-up.
"""

from fer_desktop.emotions import EMOTIONS

__all__ = ["EMOTIONS", "load_classifier", "Classifier", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_classifier":
        from fer_desktop.classifier import load_classifier

        return load_classifier
    if name == "Classifier":  # the torch runtime's class (needs the torch extra)
        from fer_desktop.torch_classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'fer_desktop' has no attribute {name!r}")
