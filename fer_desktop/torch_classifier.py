"""The torch runtime: trained weights in PyTorch, for GPUs and for weights without a runtime file.

``fer_desktop.classifier.load_classifier`` chooses between this and ONNX Runtime
(``onnx_classifier.py``); both keep the same ``predict`` contract.
"""

import os
from pathlib import Path

# OpenMP threads that spin while waiting for work take the cores from detection,
# decoding and the GUI; when the cores are busy, two spinning torch threads made
# inference 10-40 times slower than sleeping ones (bench/RESULTS.md). Read once,
# when torch loads: it has effect where this module imports torch first (the
# app and fer-predict), and a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fer_desktop.emotions import EMOTIONS  # noqa: E402
from fer_desktop.engine_errors import EngineUnavailableError  # noqa: E402
from fer_desktop.models import create_model, get_spec  # noqa: E402
from fer_desktop.models.fold import fold_batchnorm  # noqa: E402
from fer_desktop.preprocessing import face_batch, faces_to_tensor  # noqa: E402
from fer_desktop.weights import InferenceSettings, WeightsError, read_state  # noqa: E402


def select_device(preference: str | None = "auto") -> torch.device:
    """``auto`` picks CUDA, else Apple's MPS, else the CPU; otherwise the named device."""
    if preference in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailableError("CUDA was asked for but is not available")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EngineUnavailableError("MPS was asked for but is not available")
    return device


class Classifier:
    """A trained model with the preprocessing its card prescribes.

    ``predict`` takes uint8 grayscale FER-style faces ``[N, 48, 48]`` and returns
    float32 probabilities ``[N, 7]`` in ``EMOTIONS`` order.
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, card: dict, device: torch.device) -> None:
        self.card = card
        self.name: str = card["model"]
        self.device = device
        settings = InferenceSettings.from_card(card)
        self.input_size, self.mean, self.std = settings.input_size, settings.mean, settings.std
        # Test-time augmentation is part of what the reported accuracy measures,
        # so the app applies exactly what the card says.
        self.hflip_tta = settings.hflip_tta
        # Temperature scaling fitted on PublicTest (training.calibrate): confidences that mean what they say.
        self.temperature = settings.temperature
        # A shift per emotion chosen on PublicTest's macro-F1 (training.calibrate), before the temperature.
        self.class_bias = None if settings.class_bias is None else np.asarray(settings.class_bias, np.float32)
        self.model = model.to(device).eval()
        # Each BatchNorm folded into its convolution: the same function with fewer
        # layers, a fifth less time for one face on a ResNet (models/fold.py).
        size = self.input_size
        example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        fold_batchnorm(self.model, example.to(device))
        # channels_last is what oneDNN (CPU) and cuDNN run convolutions fastest in:
        # 15-40% less time per forward pass on CPU (bench/RESULTS.md), same results
        # up to float rounding.
        self.channels_last = device.type in ("cuda", "cpu")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.engine = "PyTorch" + (" fp16" if device.type == "cuda" else "")

    @property
    def title(self) -> str:
        return get_spec(self.name).title

    def inputs(self, faces) -> torch.Tensor:
        """The model's input for uint8 faces ``[N, 48, 48]``: the card's size and normalisation, on the device."""
        x = faces_to_tensor(faces, self.input_size, self.mean, self.std, device=self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.inference_mode()
    def logits(self, faces) -> torch.Tensor:
        x = self.inputs(faces)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            if not self.hflip_tta:
                return self.model(x).float()
            # The faces and their mirrors as one batch: one pass through the network
            # (bench.pipeline times each model with and without the flip).
            both = self.model(torch.cat([x, x.flip(-1)])).float()
        return (both[:len(x)] + both[len(x):]) / 2

    def predict(self, faces) -> np.ndarray:
        faces = face_batch(faces.cpu().numpy() if isinstance(faces, torch.Tensor) else faces)
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        logits = self.logits(faces)
        if self.class_bias is not None:
            logits = logits + torch.from_numpy(self.class_bias).to(logits.device)
        return torch.softmax(logits / self.temperature, dim=1).cpu().numpy().astype(np.float32)


def load_torch_classifier(weights_path: Path, card: dict, device: str | None = "auto") -> Classifier:
    """The model of ``weights_path`` (whose card is ``card``) in PyTorch on ``device``.

    Raises ``WeightsError`` naming the file, or ValueError for a device that is not there.
    """
    torch_device = select_device(device)
    try:
        # Built on the meta device: no memory, no random initialisation (a third of
        # a second for a ResNet), since the weights replace every tensor anyway.
        with torch.device("meta"):
            model = create_model(card["model"], **card.get("architecture", {}))
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{weights_path}: card describes an unknown architecture ({exc})") from None
    # Stored as fp16; computed in fp32 (CUDA runs under fp16 autocast).
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_state(weights_path).items()}
    try:
        model.load_state_dict(state, assign=True)  # strict: every tensor of the model must be there
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f"{weights_path}: weights do not match {card['model']} ({first})") from None
    return Classifier(model, card, torch_device)
