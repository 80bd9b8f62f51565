"""A registry of the four models: name -> how to build it.

Only architectures live here. How a set of weights is fed (input size,
normalisation, test-time augmentation) is in its card (``fer_desktop.weights``),
and what training chooses for them in its recipe (``training.recipes``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads in seconds: the GUI lists models before it is imported
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    builder: Callable[..., nn.Module]
    defaults: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def create_model(name: str, **config) -> nn.Module:
    """Build an untrained model by name; ``config`` overrides the architecture defaults."""
    spec = get_spec(name)
    return spec.builder(**{**spec.defaults, **config})


def _baseline_cnn(**kw) -> nn.Module:
    from fer_desktop.models.custom_cnn import CustomCNN

    return CustomCNN(attention=False, **kw)


def _attention_cnn(**kw) -> nn.Module:
    from fer_desktop.models.custom_cnn import CustomCNN

    return CustomCNN(attention=True, **kw)


def _resnet50(**kw) -> nn.Module:
    from fer_desktop.models.resnet import ResNet50FER

    return ResNet50FER(cbam=False, **kw)


def _resnet50_cbam(**kw) -> nn.Module:
    from fer_desktop.models.resnet import ResNet50FER

    return ResNet50FER(cbam=True, **kw)


register_model(ModelSpec("baseline_cnn", "Baseline CNN", _baseline_cnn))
register_model(ModelSpec("attention_cnn", "Attention CNN", _attention_cnn))
register_model(ModelSpec("resnet50", "ResNet-50", _resnet50))
register_model(ModelSpec("resnet50_cbam", "ResNet-50 + CBAM", _resnet50_cbam))
