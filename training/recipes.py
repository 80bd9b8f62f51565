"""Training recipes: every hyperparameter of a run in one dataclass, by model and by name.

``paper`` is the plain recipe at the paper's input sizes (Adam, light augmentation,
plain cross-entropy, ImageNet initialisation for the ResNets). ``best`` is what
trains every model from scratch on a 2-core CPU within a session or two: the
faces' own 48 px, SGD with Nesterov and a warm-up + cosine schedule, light
geometric and photometric augmentation, label smoothing, dropout, flip
test-time augmentation, and an epoch count fitted to ``--budget-s``. Each
ingredient can be switched off on its own for the ablation,
e.g. ``--recipe best --no-mixup`` or ``--set label_smoothing=0``.

The input size and normalisation chosen here are training choices: the card of
the trained weights records them, and everything downstream reads the card.
"""

import dataclasses
import json
from dataclasses import dataclass, field

from fer_desktop.models import get_spec
from training.augment import AugmentConfig

RECIPE_NAMES = ("paper", "best")
CUSTOM_CNNS = ("baseline_cnn", "attention_cnn")
# Grayscale is copied to three channels, so ImageNet's per-channel statistics
# still apply to the ResNets; the custom CNNs take values in [0, 1] as in the paper.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)


@dataclass
class Recipe:
    name: str = "paper"
    input_size: int = 128
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    schedule: str = "constant"  # constant | cosine | cosine_restarts (after a linear warm-up)
    warmup_epochs: int = 0
    restart_epochs: int = 10  # cosine_restarts: the cycle length (CosineAnnealingWarmRestarts' T_0)
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # clip the gradients' global norm to this (0: off)
    distill_alpha: float = 0.5  # with training.train --distill: the teacher's share of the target
    mixup_alpha: float = 0.0  # 0 disables mixup
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tta: str = "none"  # none | hflip: averaged with the mirrored face at test time
    init: str = "scratch"  # scratch | imagenet (ResNets)
    select: str = "best"  # best: keep the epoch with the best val accuracy; last: the final epoch
    architecture: dict = field(default_factory=dict)  # create_model overrides

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def normalisation(model: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The ``(mean, std)`` that ``model`` is trained with, under every recipe."""
    return (UNIT_MEAN, UNIT_STD) if model in CUSTOM_CNNS else (IMAGENET_MEAN, IMAGENET_STD)


def paper_recipe(model: str) -> Recipe:
    get_spec(model)  # unknown names fail here with the list of known ones
    resnet = model not in CUSTOM_CNNS
    return Recipe(
        name="paper",
        input_size=224 if resnet else 128,  # the paper's sizes: ImageNet's for the ResNets
        epochs=30,
        batch_size=32,
        optimizer="adam",
        lr=1e-3,
        schedule="cosine_restarts",
        restart_epochs=10,
        augment=AugmentConfig(hflip=True, rotate_deg=10.0, brightness=0.2),
        init="imagenet" if resnet else "scratch",
    )


def best_recipe(model: str) -> Recipe:
    return cnn_cpu_recipe() if model in CUSTOM_CNNS else resnet_cpu_recipe()


def resnet_cpu_recipe() -> Recipe:
    """The ResNets' ``best`` recipe: from scratch (ImageNet weights cannot be assumed
    offline) on a 2-core CPU, at the faces' own 48 px.

    torchvision's stem (stride 4) leaves layer4 a 2x2 map at 48 px; a finer stem
    or a larger input costs 1.4 to 4 times the compute (training/benchmark_results.json),
    which a CPU session cannot pay. The CNNs' SGD did not get ResNet-50 off the
    ground from scratch: at lr 0.1 the loss rose to 2-6 (chance: 1.95) without
    clipping and sat at the class prior with it; at lr 0.02 too. AdamW (lr 1e-3,
    weight decay 0.05) left the prior within 200 steps, so it is the optimiser
    here, with the residual branches starting at zero (``zero_init_residual``),
    two warm-up epochs and the gradient norm clipped to 1. Augmentation and
    regularisation are the custom CNNs'. Train with ``--distill`` from a trained
    custom CNN: training/README.md has the trials.
    """
    return dataclasses.replace(cnn_cpu_recipe(), epochs=24, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                               warmup_epochs=2, grad_clip=1.0,
                               architecture={"stem_stride": 4, "zero_init_residual": True})


def cnn_cpu_recipe() -> Recipe:
    """The custom CNNs' ``best`` recipe, sized to train in about 80 minutes on a 2-core CPU.

    On such a CPU a training step is compute-bound, so the network's cost decides how
    many epochs a session buys: half the registry's widths (32-64-128) train about
    3.3 times as many images per second as 64-128-256 (training/benchmark_results.json).
    A fourth block (256) is the cheapest way back to capacity (a quarter fewer images
    per second, where wider blocks cost more): it bought both CNNs 2.5-3 points.
    A short schedule gets light regularisation: one dropout rate of 0.3 instead of
    0.5, no mixup (it pays off only over long schedules). training/README.md has
    the comparison.
    """
    return Recipe(
        name="best",
        input_size=48,  # the faces' own size: upsampling adds no detail
        epochs=30,  # --budget-s fits the count (and the schedule) to the time given
        batch_size=128,
        optimizer="sgd",
        lr=0.05,
        weight_decay=5e-4,
        momentum=0.9,
        nesterov=True,
        schedule="cosine",
        warmup_epochs=1,
        label_smoothing=0.1,
        mixup_alpha=0.0,
        # Lighter than the ResNets': with erasing and 15-degree rotations the first
        # runs underfit (augmented training accuracy = PublicTest accuracy at the end).
        augment=AugmentConfig(hflip=True, rotate_deg=10.0, zoom=0.1, translate=0.06, brightness=0.2,
                              contrast=0.2, erase_p=0.0),
        tta="hflip",
        init="scratch",
        architecture={"widths": [32, 64, 128, 256], "dropout": 0.3},
    )


def same_recipe(saved: dict, recipe: Recipe) -> bool:
    """Whether a checkpoint's ``saved`` recipe is ``recipe``; fields added since it was saved count as
    their defaults, so a checkpoint of an older release still resumes."""
    current = recipe.to_dict()
    defaults = Recipe().to_dict()
    return {**{k: defaults[k] for k in current if k not in saved}, **saved} == current


# Flags that turn one ingredient of a recipe off, for the ablation.
ABLATIONS = {
    "no_mixup": {"mixup_alpha": 0.0},
    "no_label_smoothing": {"label_smoothing": 0.0},
    "no_erasing": {"augment.erase_p": 0.0},
    "no_tta": {"tta": "none"},
    "no_imagenet": {"init": "scratch"},
    "light_augment": {"augment.zoom": 0.0, "augment.translate": 0.0, "augment.contrast": 0.0,
                      "augment.rotate_deg": 10.0, "augment.brightness": 0.2},
}


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # bare strings: --set optimizer=adamw


def apply_override(recipe: Recipe, key: str, value) -> None:
    """Set ``key`` (``lr``, ``augment.erase_p``, ``architecture.dropout``) on ``recipe`` in place."""
    if isinstance(value, str):
        value = _parse_value(value)
    target, name = recipe, key
    if "." in key:
        head, name = key.split(".", 1)
        if head == "architecture":
            recipe.architecture[name] = value
            return
        target = getattr(recipe, head, None)
        if not dataclasses.is_dataclass(target):
            raise ValueError(f"unknown recipe setting {key!r}")
    known = {f.name: f for f in dataclasses.fields(target)}
    if name not in known:
        raise ValueError(f"unknown recipe setting {key!r}; known: {', '.join(known)}")
    current = getattr(target, name)
    if isinstance(current, tuple):
        value = tuple(value)
    elif isinstance(current, float) and isinstance(value, int):
        value = float(value)
    setattr(target, name, value)


def parse_overrides(items: list[str]) -> dict:
    """``--set`` arguments (``key=value``) as a dict for ``resolve_recipe``."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def resolve_recipe(model: str, name: str = "paper", ablations=(), overrides: dict | None = None) -> Recipe:
    """The recipe ``name`` for ``model``, minus ``ablations``, then ``overrides`` (key -> value)."""
    builders = {"paper": paper_recipe, "best": best_recipe}
    if name not in builders:
        raise ValueError(f"unknown recipe {name!r}; choose one of {RECIPE_NAMES}")
    recipe = builders[name](model)
    for ablation in ablations:
        if ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {ablation!r}; known: {', '.join(ABLATIONS)}")
        for key, value in ABLATIONS[ablation].items():
            apply_override(recipe, key, value)
    for key, value in (overrides or {}).items():
        apply_override(recipe, key, value)
    if recipe.tta not in ("none", "hflip"):
        raise ValueError(f"tta must be 'none' or 'hflip', not {recipe.tta!r}")
    if recipe.select not in ("best", "last"):
        raise ValueError(f"select must be 'best' or 'last', not {recipe.select!r}")
    return recipe

