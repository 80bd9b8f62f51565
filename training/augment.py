"""Batch augmentation on the training device: one affine warp and a few tensor ops per batch.

Inputs are the normalised model inputs ``faces_to_tensor`` makes, so training
sees exactly what the app feeds, plus noise. Every random draw comes from the
generator passed in, which keeps runs reproducible and resumable.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    hflip: bool = True
    rotate_deg: float = 10.0  # uniform in [-rotate_deg, rotate_deg]
    zoom: float = 0.0  # random resized crop: magnify by up to 1 + zoom
    translate: float = 0.0  # shift by up to this fraction of the side
    brightness: float = 0.2  # multiply intensities by 1 +- brightness
    contrast: float = 0.0  # scale deviations from the face's mean by 1 +- contrast
    erase_p: float = 0.0  # random erasing: probability of one blanked rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def geometric(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Per-sample flip, rotation, zoom and shift as one ``grid_sample``."""
    n, dev = x.shape[0], x.device
    if not (cfg.hflip or cfg.rotate_deg or cfg.zoom or cfg.translate):
        return x
    angle = _uniform(n, -cfg.rotate_deg, cfg.rotate_deg, g, dev) * (math.pi / 180)
    scale = 1.0 / _uniform(n, 1.0, 1.0 + cfg.zoom, g, dev)  # sampling a smaller area magnifies
    flip = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0) if cfg.hflip else 1.0
    shift = _uniform(2 * n, -2 * cfg.translate, 2 * cfg.translate, g, dev).view(n, 2)  # grid units: side = 2
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([
        torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
        torch.stack([sin * flip, cos, shift[:, 1]], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    # Reflection keeps borders face-like instead of introducing black corners.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def photometric(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator, mean: torch.Tensor,
                std: torch.Tensor) -> torch.Tensor:
    """Brightness and contrast in pixel units ([0, 1]), then back to the normalised scale."""
    if not (cfg.brightness or cfg.contrast):
        return x
    n, dev = x.shape[0], x.device
    raw = x * std + mean
    if cfg.contrast:
        c = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, g, dev).view(n, 1, 1, 1)
        centre = raw.mean(dim=(1, 2, 3), keepdim=True)
        raw = (raw - centre) * c + centre
    if cfg.brightness:
        raw = raw * _uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, g, dev).view(n, 1, 1, 1)
    return (raw.clamp(0, 1) - mean) / std


def random_erase(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Blank one rectangle (to the dataset mean, i.e. 0 after normalisation) in a share of samples."""
    if not cfg.erase_p:
        return x
    n, _, h, w = x.shape
    dev = x.device
    area = _uniform(n, *cfg.erase_area, g, dev)
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), g, dev))
    eh = (torch.sqrt(area * aspect) * h).clamp(1, h)
    ew = (torch.sqrt(area / aspect) * w).clamp(1, w)
    top = torch.rand(n, generator=g, device=dev) * (h - eh)
    left = torch.rand(n, generator=g, device=dev) * (w - ew)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
    apply = torch.rand(n, generator=g, device=dev) < cfg.erase_p
    mask = (inside & apply.view(n, 1, 1)).unsqueeze(1)
    return x.masked_fill(mask, 0.0)


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator, mean, std) -> torch.Tensor:
    """Apply the whole augmentation to a normalised batch ``[N, 3, S, S]``."""
    mean_t = torch.as_tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    x = geometric(x, cfg, g)
    x = photometric(x, cfg, g, mean_t, std_t)
    return random_erase(x, cfg, g)


def sample_beta(alpha: float, g: torch.Generator) -> float:
    """Beta(alpha, alpha) from the seeded generator (Johnk's method; torch's gamma takes no generator)."""
    while True:
        u, v = torch.rand(2, generator=g, device=g.device).clamp_min(1e-12).tolist()
        a, b = u ** (1 / alpha), v ** (1 / alpha)
        if 0 < a + b <= 1:
            return a / (a + b)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, num_classes: int,
          g: torch.Generator, soft: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with a partner from the same batch; returns inputs and soft targets.

    ``soft`` (``[N, num_classes]``) replaces the one-hot targets of ``y``, e.g. FER+ vote distributions.
    """
    target = soft.to(x.dtype) if soft is not None else F.one_hot(y, num_classes).to(x.dtype)
    if alpha <= 0:
        return x, target
    lam = sample_beta(alpha, g)
    perm = torch.randperm(x.shape[0], generator=g, device=x.device)
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]
