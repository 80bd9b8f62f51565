"""Where a run's first weights come from: scratch, ImageNet (the ResNets) or a trained run.

ImageNet's are torchvision's weights in the torch hub cache. Nothing is
downloaded unless the file is missing and a download works; on an offline
machine the error says which file to place where.
"""

from pathlib import Path

import torch
from torch import nn

from fer_desktop.weights import read_card, read_state
from training.recipes import Recipe

# The V2 weights first (better ImageNet recipe), V1 as a fallback if that is what is cached.
IMAGENET_FILES = {
    "IMAGENET1K_V2": "resnet50-11ad3fa6.pth",
    "IMAGENET1K_V1": "resnet50-0676ba61.pth",
}


class PretrainedWeightsMissing(RuntimeError):
    pass


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_imagenet_file() -> tuple[Path, str] | None:
    """The ImageNet weights file in the torch hub cache and its tag, if there is one."""
    for tag, filename in IMAGENET_FILES.items():
        path = hub_checkpoint_dir() / filename
        if path.is_file():
            return path, tag
    return None


def imagenet_state(allow_download: bool = True) -> tuple[dict, str]:
    """torchvision ResNet-50 ImageNet state dict and the name of the weights it came from."""
    folder = hub_checkpoint_dir()
    cached = cached_imagenet_file()
    if cached is not None:
        return torch.load(cached[0], map_location="cpu", weights_only=True), cached[1]
    if allow_download:
        from torchvision.models import ResNet50_Weights

        try:
            weights = ResNet50_Weights.IMAGENET1K_V2
            return weights.get_state_dict(progress=False, check_hash=True), "IMAGENET1K_V2"
        except Exception as exc:  # offline, blocked, a bad hash, a full disk: say which
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PretrainedWeightsMissing(
                f"ImageNet weights not found and their download failed ({type(exc).__name__}: {reason}): "
                f"place {IMAGENET_FILES['IMAGENET1K_V2']} (torchvision ResNet50_Weights.IMAGENET1K_V2) in "
                f"{folder}/ or use --init scratch") from exc
    raise PretrainedWeightsMissing(
        f"ImageNet weights not found: place {IMAGENET_FILES['IMAGENET1K_V2']} (torchvision ResNet50_Weights."
        f"IMAGENET1K_V2) in {folder}/ or use --init scratch")


def load_imagenet_backbone(model: nn.Module, allow_download: bool = True) -> str:
    """Copy ImageNet weights into ``model.backbone`` (the classifier ``fc`` excluded)."""
    if not hasattr(model, "backbone"):
        raise ValueError("ImageNet initialisation applies to the ResNets only")
    state, tag = imagenet_state(allow_download)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise RuntimeError(f"ImageNet weights do not fit the backbone: missing {missing}, unexpected {unexpected}")
    return tag


def initialise(model: nn.Module, recipe: Recipe) -> str:
    """Apply the recipe's ``init`` to a freshly built ``model``; returns how it started, for the card."""
    if recipe.init == "scratch":
        return "scratch"
    if recipe.init == "imagenet":
        return "imagenet:" + load_imagenet_backbone(model)
    raise ValueError(f"unknown init {recipe.init!r}; choose scratch or imagenet")


def start_from_weights(model: nn.Module, path: str, model_name: str, architecture: dict) -> str:
    """Load a trained run's weights (its card must name the same model and architecture) into ``model``:
    fine-tuning at another input size, or a longer schedule after a short one."""
    card = read_card(path)
    if card["model"] != model_name or (card.get("architecture") or {}) != architecture:
        raise ValueError(f"{path}: weights of {card['model']} {card.get('architecture') or {}}, "
                         f"not of {model_name} {architecture}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in read_state(path).items()})
    return f"weights:{Path(path).name}"
