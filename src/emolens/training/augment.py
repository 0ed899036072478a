"""Batch augmentation for 48x48 faces, done on whole tensors (no per-image Python loop).

Chosen to match faces and the origin's failures: small shifts, rotations and scale (turned
and off-centre heads), horizontal flip, brightness/contrast/gamma (poor light), blur or
sharpening (soft or over-processed cameras; FER2013's train split is also slightly
smoother than its test split), Gaussian noise, and random erasing (occlusion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    flip: float = 0.5
    max_rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    max_shift: float = 0.1  # fraction of the image side
    photometric_p: float = 0.6
    brightness: float = 0.25  # +- fraction of full range
    contrast: tuple[float, float] = (0.6, 1.4)
    gamma: tuple[float, float] = (0.6, 2.2)  # > 1 darkens mid-tones
    blur_sharpen_p: float = 0.3
    noise_p: float = 0.2
    max_noise_std: float = 0.06
    erase_p: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.15)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def _chance(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Augment a batch of faces.

    Args:
        x: (n, 1, H, W) float in [0, 1].
        cfg: augmentation strengths.
        gen: the random generator (seeded by the trainer, so runs are reproducible).

    Returns:
        (n, 1, H, W) float in [0, 1].
    """
    n = x.shape[0]
    # Geometry: one affine warp per image (flip, rotation, scale, shift).
    angle = _uniform(n, -1, 1, gen) * math.radians(cfg.max_rotate_deg)
    scale = _uniform(n, *cfg.scale, gen)
    flip = torch.where(_chance(n, cfg.flip, gen), -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, :, 2] = _uniform(2 * n, -2 * cfg.max_shift, 2 * cfg.max_shift, gen).view(n, 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    # Light: contrast around the mean, brightness offset, gamma.
    on = _chance(n, cfg.photometric_p, gen).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(n, *cfg.contrast, gen).view(n, 1, 1, 1)
    bright = _uniform(n, -cfg.brightness, cfg.brightness, gen).view(n, 1, 1, 1)
    log_gamma = _uniform(n, math.log(cfg.gamma[0]), math.log(cfg.gamma[1]), gen).view(n, 1, 1, 1)
    lit = ((x - mean) * contrast + mean + bright).clamp(0, 1) ** torch.exp(log_gamma)
    x = torch.where(on, lit, x)

    # Blur (amount < 0) or sharpen (amount > 0): x + amount * (x - blur(x)).
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    amount = _uniform(n, -1.0, 1.5, gen).view(n, 1, 1, 1) * _chance(n, cfg.blur_sharpen_p, gen).view(n, 1, 1, 1)
    x = x + amount * (x - blurred)

    # Sensor noise.
    sigma = _uniform(n, 0, cfg.max_noise_std, gen).view(n, 1, 1, 1) * _chance(n, cfg.noise_p, gen).view(n, 1, 1, 1)
    x = x + sigma * torch.randn(x.shape, generator=gen)
    x = x.clamp(0, 1)

    # Random erasing: one rectangle per chosen image, filled with uniform noise.
    h, w = x.shape[-2:]
    area = _uniform(n, *cfg.erase_area, gen) * h * w
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), gen))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    top = torch.rand(n, generator=gen) * (h - eh)
    left = torch.rand(n, generator=gen) * (w - ew)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
    )
    mask = (inside & _chance(n, cfg.erase_p, gen).view(n, 1, 1)).unsqueeze(1)
    return torch.where(mask, torch.rand(x.shape, generator=gen), x)
