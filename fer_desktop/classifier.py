"""Load trained weights and predict emotion probabilities for 48x48 faces."""

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
from fer_desktop.ensemble import ENSEMBLE, load_ensemble  # noqa: E402
from fer_desktop.models import create_model, get_spec  # noqa: E402
from fer_desktop.models.fold import fold_batchnorm  # noqa: E402
from fer_desktop.preprocessing import faces_to_tensor  # noqa: E402
from fer_desktop.weights import (  # noqa: E402
    WeightsError,
    WeightsNotFoundError,
    find_weights,
    read_card,
    read_state,
    train_command,
)


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
        raise ValueError("CUDA was asked for but is not available")
    return device


class Classifier:
    """A trained model with the preprocessing its card prescribes.

    ``predict`` takes uint8 grayscale FER-style faces ``[N, 48, 48]`` and returns
    float32 probabilities ``[N, 7]`` in ``EMOTIONS`` order.
    """

    def __init__(self, model: torch.nn.Module, card: dict, device: torch.device) -> None:
        self.card = card
        self.name: str = card["model"]
        self.device = device
        self.input_size = int(card["input_size"])
        self.mean = tuple(card["mean"])
        self.std = tuple(card["std"])
        # Test-time augmentation is part of what the reported accuracy measures,
        # so the app applies exactly what the card says.
        self.hflip_tta = card.get("test_time_augmentation", "none") == "hflip"
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
        faces = np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim != 3 or tuple(faces.shape[1:]) != (48, 48):
            raise ValueError(f"faces must be [N, 48, 48] uint8, got shape {tuple(faces.shape)}")
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        return torch.softmax(self.logits(faces), dim=1).cpu().numpy().astype(np.float32)


def load_classifier(name: str | None = None, device: str | None = "auto", weights_dir=None,
                    weights_path: str | os.PathLike | None = None) -> Classifier:
    """Load model ``name`` from the weights folders, or an explicit ``weights_path``.

    ``name="ensemble"`` gives an ``EnsembleClassifier`` of every model with weights.

    Raises ``WeightsNotFoundError`` (with the command that trains it) or
    ``WeightsError`` (naming the bad file).
    """
    if weights_path is None:
        if name is None:
            raise ValueError("give a model name or a weights path")
        if name == ENSEMBLE:  # every trained model at once (fer_desktop.ensemble)
            return load_ensemble(device, weights_dir)
        get_spec(name)  # unknown names fail here with the list of known ones
        weights_path = find_weights(name, weights_dir)
        if weights_path is None:
            raise WeightsNotFoundError(f"no weights for {name}; train them with: {train_command(name)}")
    weights_path = Path(weights_path)
    card = read_card(weights_path)
    if name is not None and card["model"] != name:
        raise WeightsError(f"{weights_path}: holds {card['model']}, not {name}")
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
    return Classifier(model, card, select_device(device))
