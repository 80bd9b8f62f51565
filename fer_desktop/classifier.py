"""Load trained weights and predict emotion probabilities for 48x48 faces, on the engine that suits.

Two runtimes keep one contract (``predict``: uint8 faces ``[N, 48, 48]`` ->
float32 probabilities ``[N, 7]`` in ``EMOTIONS`` order, the card's test-time
flip applied; ``gradcam``/attention maps through ``fer_desktop.explain``):

- ONNX Runtime (``onnx_classifier.py``) runs the exported ``<name>.onnx`` on
  the CPU: several times faster than eager PyTorch, and all a laptop installs;
- PyTorch (``torch_classifier.py``, the ``torch`` extra) runs the safetensors
  on a GPU, or on the CPU for weights without a runtime file (a model trained
  a minute ago).

``backend="auto"`` takes ONNX Runtime on the CPU where the card names a runtime
file, and PyTorch for ``device="cuda"`` / ``"mps"`` or where there is none.
This module imports neither engine until a model loads.
"""

import importlib.util
import os
from pathlib import Path

from fer_desktop.engine_errors import EngineUnavailableError
from fer_desktop.ensemble import ENSEMBLE, load_ensemble
from fer_desktop.models.registry import get_spec
from fer_desktop.weights import WeightsError, WeightsNotFoundError, find_weights, read_card, train_command

BACKENDS = ("auto", "onnx", "torch")
TORCH_EXTRA = "pip install 'fer-desktop[torch]'"


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def runtime_file(weights_path: Path, card: dict) -> Path | None:
    """The ONNX file exported from these weights, or None (a card without a ``runtime`` block
    was written after the last export: a retrained model, whose old file would be stale)."""
    runtime = card.get("runtime")
    if not isinstance(runtime, dict) or not runtime.get("file"):
        return None
    path = weights_path.parent / str(runtime["file"])
    return path if path.is_file() else None


def choose_backend(backend: str, device: str | None, onnx_file: Path | None) -> str:
    """``onnx`` or ``torch`` for a request; raises EngineUnavailableError with what to do."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    on_cpu = device in (None, "", "auto", "cpu")
    if backend == "onnx":
        if not on_cpu:
            raise EngineUnavailableError(f"the ONNX backend runs on the CPU, not on {device}; "
                                         "use --backend torch for a GPU")
        if onnx_file is None:
            raise EngineUnavailableError("no runtime file exported from these weights; make it with: "
                                         "python -m training.export NAME --data fer2013.npz")
        return "onnx"
    if backend == "auto" and on_cpu and onnx_file is not None:
        return "onnx"
    if not torch_installed():
        what = f"--device {device}" if not on_cpu else ("--backend torch" if backend == "torch"
                                                         else "these weights (no runtime file)")
        raise EngineUnavailableError(f"{what} needs PyTorch: {TORCH_EXTRA}")
    return "torch"


def load_classifier(name: str | None = None, device: str | None = "auto", weights_dir=None,
                    weights_path: str | os.PathLike | None = None, backend: str = "auto"):
    """Load model ``name`` from the weights folders, or an explicit ``weights_path``.

    ``name="ensemble"`` gives an ``EnsembleClassifier`` of every model with weights.

    Raises ``WeightsNotFoundError`` (with the command that trains it),
    ``WeightsError`` (naming the bad file) or ``EngineUnavailableError``
    (an engine not installed, a device not there).
    """
    if weights_path is None:
        if name is None:
            raise ValueError("give a model name or a weights path")
        if name == ENSEMBLE:  # every trained model at once (fer_desktop.ensemble)
            return load_ensemble(lambda member: load_classifier(member, device=device, weights_dir=weights_dir,
                                                                backend=backend), weights_dir)
        get_spec(name)  # unknown names fail here with the list of known ones
        weights_path = find_weights(name, weights_dir)
        if weights_path is None:
            raise WeightsNotFoundError(f"no weights for {name}; train them with: {train_command(name)}")
    weights_path = Path(weights_path)
    card = read_card(weights_path)
    if name is not None and card["model"] != name:
        raise WeightsError(f"{weights_path}: holds {card['model']}, not {name}")
    onnx_file = runtime_file(weights_path, card)
    if choose_backend(backend, device, onnx_file) == "onnx":
        from fer_desktop.onnx_classifier import OnnxClassifier

        try:
            return OnnxClassifier(onnx_file, card, weights_path)
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise WeightsError(f"{onnx_file}: cannot be loaded ({first})") from None
    from fer_desktop.torch_classifier import load_torch_classifier

    return load_torch_classifier(weights_path, card, device)

