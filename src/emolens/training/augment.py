"""Batch augmentation for 48x48 faces, done on whole tensors (no per-image Python loop).

Chosen to match faces and the origin's failures: small shifts, rotations and scale (turned
and off-centre heads), horizontal flip, brightness/contrast/gamma (poor light), blur or
sharpening (soft or over-processed cameras; FER2013's train split is also slightly
smoother than its test split), Gaussian noise, and random erasing (occlusion). The robust
preset adds what poor cameras do to a face: defocus blur of 1-2 px, strong sensor noise,
JPEG at low quality and dark exposures, each rounded back to 8 bits as a camera would.
Three more are off by default and measured on their own (``emolens train --augment
motion_p=0.3``): motion blur along a random direction (a head moving during the exposure),
uneven light, a brightness ramp across the face (a window or lamp to one side), and low
resolution, a face seen small and upscaled back as the pipeline upscales small crops.

Geometry and appearance are separate steps (:func:`augment_geometry`,
:func:`augment_appearance`): distillation shows the teacher each geometric view, while the
student also sees it degraded, and learns to answer for the degraded face what the teacher
says of the clean one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from emolens.errors import SettingsError


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
    min_noise_std: float = 0.0
    gain: tuple[float, float] = (1.0, 1.0)  # exposure: pixel values scaled (before gamma), with the light step
    defocus_p: float = 0.0
    defocus_sigma: tuple[float, float] = (1.0, 2.0)  # Gaussian blur, pixels
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (10, 30)
    quantize: bool = False  # round to 8 bits at the end, as frames from a camera are
    motion_p: float = 0.0
    motion_length: tuple[float, float] = (3.0, 9.0)  # pixels the face moves during the exposure
    ramp_p: float = 0.0
    ramp_depth: tuple[float, float] = (0.3, 0.8)  # the far side's light falls to 1 - depth of the near side's
    lowres_p: float = 0.0
    lowres_side: tuple[float, float] = (12.0, 32.0)  # pixels across the face as the camera saw it


# Poor cameras and poor light (issue targets: noise sigma 25, blur sigma 1.5, JPEG 12, gamma
# 2.2 at 45% exposure, rotation up to 25 degrees), on top of the default augmentation.
ROBUST = AugmentConfig(
    max_rotate_deg=25.0,
    gamma=(0.5, 2.5),
    gain=(0.35, 1.0),
    noise_p=0.25,
    min_noise_std=0.02,
    max_noise_std=0.12,
    defocus_p=0.2,
    jpeg_p=0.25,
    quantize=True,
)


def with_overrides(cfg: AugmentConfig, items: list[str]) -> AugmentConfig:
    """``cfg`` with ``KEY=VALUE`` items applied (``motion_p=0.3``, ``motion_length=3,7``), typed as the field is.

    Raises:
        SettingsError: naming an unknown key or a value that does not fit the field.
    """
    fields = {f.name: f for f in dataclasses.fields(AugmentConfig)}
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise SettingsError(f"--augment {item!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        default = getattr(cfg, key)
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                value: Any = text.lower() in ("true", "1")
            elif isinstance(default, tuple):
                value = tuple(type(v)(part) for v, part in zip(default, text.split(",", len(default) - 1), strict=True))
            else:
                value = type(default)(text)
        except ValueError:
            raise SettingsError(f"--augment {item!r}: {text!r} is not a value for {key} (like {default!r})") from None
        changes[key] = value
    return dataclasses.replace(cfg, **changes)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def _chance(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Augment a batch of faces: geometry, then appearance.

    Args:
        x: (n, 1, H, W) float in [0, 1].
        cfg: augmentation strengths.
        gen: the random generator (seeded by the trainer, so runs are reproducible).

    Returns:
        (n, 1, H, W) float in [0, 1].
    """
    return augment_appearance(augment_geometry(x, cfg, gen), cfg, gen)


def augment_geometry(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """One affine warp per face (flip, rotation, scale, shift); (n, 1, H, W) floats in [0, 1]."""
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
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment_appearance(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Light, blur, noise, compression and occlusion; (n, 1, H, W) floats in [0, 1]."""
    n = x.shape[0]
    # Light: contrast around the mean, brightness offset, exposure, gamma.
    on = _chance(n, cfg.photometric_p, gen).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(n, *cfg.contrast, gen).view(n, 1, 1, 1)
    bright = _uniform(n, -cfg.brightness, cfg.brightness, gen).view(n, 1, 1, 1)
    log_gamma = _uniform(n, math.log(cfg.gamma[0]), math.log(cfg.gamma[1]), gen).view(n, 1, 1, 1)
    gain = _uniform(n, *cfg.gain, gen).view(n, 1, 1, 1)
    lit = gain * ((x - mean) * contrast + mean + bright).clamp(0, 1) ** torch.exp(log_gamma)
    x = torch.where(on, lit, x)
    if cfg.ramp_p > 0:
        depth, angle = _uniform(n, *cfg.ramp_depth, gen), _uniform(n, 0, 2 * math.pi, gen)
        x = _light_ramp(x, depth, angle, _chance(n, cfg.ramp_p, gen))
    if cfg.defocus_p > 0:
        x = _defocus(x, _uniform(n, *cfg.defocus_sigma, gen), _chance(n, cfg.defocus_p, gen))
    if cfg.motion_p > 0:
        length = _uniform(n, *cfg.motion_length, gen)
        x = _motion_blur(x, length, _uniform(n, 0, math.pi, gen), _chance(n, cfg.motion_p, gen))
    if cfg.lowres_p > 0:
        x = _low_resolution(x, _uniform(n, *cfg.lowres_side, gen), _chance(n, cfg.lowres_p, gen))

    # Blur (amount < 0) or sharpen (amount > 0): x + amount * (x - blur(x)).
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    amount = _uniform(n, -1.0, 1.5, gen).view(n, 1, 1, 1) * _chance(n, cfg.blur_sharpen_p, gen).view(n, 1, 1, 1)
    x = x + amount * (x - blurred)

    # Sensor noise.
    sigma = _uniform(n, cfg.min_noise_std, cfg.max_noise_std, gen) * _chance(n, cfg.noise_p, gen)
    sigma = sigma.view(n, 1, 1, 1)
    x = x + sigma * torch.randn(x.shape, generator=gen)
    x = x.clamp(0, 1)
    if cfg.quantize:
        x = (x * 255).round() / 255
    if cfg.jpeg_p > 0:
        low, high = cfg.jpeg_quality
        quality = torch.randint(low, high + 1, (n,), generator=gen)
        x = _jpeg(x, quality, _chance(n, cfg.jpeg_p, gen))

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


def _defocus(x: torch.Tensor, sigma: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each chosen face with its own sigma (pixels), as one grouped convolution."""
    if not chosen.any():
        return x
    index = torch.nonzero(chosen).flatten()
    sigma = sigma[index]
    k, h, w = len(index), x.shape[2], x.shape[3]
    radius = int(math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel_1d = torch.exp(-(taps[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel_1d = kernel_1d / kernel_1d.sum(1, keepdim=True)  # separable: rows, then columns
    padded = F.pad(x[index].reshape(1, k, h, w), (radius,) * 4, mode="replicate")
    rows = F.conv2d(padded, kernel_1d.view(k, 1, 1, -1), groups=k)
    blurred = F.conv2d(rows, kernel_1d.view(k, 1, -1, 1), groups=k).reshape(k, 1, h, w)
    out = x.clone()
    out[index] = blurred
    return out


def _light_ramp(x: torch.Tensor, depth: torch.Tensor, angle: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Each chosen face lit by a ramp: full light in one corner, ``1 - depth`` of it in the opposite one."""
    n, _, h, w = x.shape
    rows = torch.linspace(-0.5, 0.5, h).view(1, h, 1)
    cols = torch.linspace(-0.5, 0.5, w).view(1, 1, w)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    along = (cols * cos + rows * sin) / (0.5 * (cos.abs() + sin.abs()))  # -1 .. 1, corner to corner
    light = 1 - depth.view(n, 1, 1) * (along + 1) / 2
    return torch.where(chosen.view(n, 1, 1, 1), x * light.unsqueeze(1), x)


def _motion_blur(x: torch.Tensor, length: torch.Tensor, angle: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Each chosen face smeared along a line of ``length`` pixels at ``angle``, as one grouped convolution."""
    if not chosen.any():
        return x
    index = torch.nonzero(chosen).flatten()
    length, angle = length[index], angle[index]
    k, h, w = len(index), x.shape[2], x.shape[3]
    radius = int(math.ceil(float(length.max()) / 2))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    v, u = torch.meshgrid(taps, taps, indexing="ij")
    cos, sin = torch.cos(angle).view(k, 1, 1), torch.sin(angle).view(k, 1, 1)
    along, across = u * cos + v * sin, (u * sin - v * cos).abs()
    kernel = (1 - across).clamp(min=0) * ((length.view(k, 1, 1) / 2 + 0.5 - along.abs()).clamp(0, 1))
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    padded = F.pad(x[index].reshape(1, k, h, w), (radius,) * 4, mode="replicate")
    blurred = F.conv2d(padded, kernel.view(k, 1, 2 * radius + 1, 2 * radius + 1), groups=k).reshape(k, 1, h, w)
    out = x.clone()
    out[index] = blurred
    return out


def _low_resolution(x: torch.Tensor, side: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Each chosen face as seen ``side`` pixels across (:func:`emolens.preprocess.seen_small`,
    which ``emolens evaluate --perturb lowres`` uses too)."""
    from emolens.preprocess import seen_small

    out = x.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        out[i, 0] = torch.from_numpy(seen_small(x[i, 0].numpy(), int(round(float(side[i]))))).clamp(0, 1)
    return out


def _jpeg(x: torch.Tensor, quality: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Each chosen face through a JPEG encoder at its quality, as a poor camera or a stream would."""
    import cv2
    import numpy as np

    out = x.clone()
    pixels = (x[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    for i in torch.nonzero(chosen).flatten().tolist():
        ok, encoded = cv2.imencode(".jpg", pixels[i], [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        if not ok:  # pragma: no cover - OpenCV encodes any 8-bit gray image
            raise RuntimeError("OpenCV failed to JPEG-encode a face")
        decoded = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
        out[i, 0] = torch.from_numpy(np.ascontiguousarray(decoded)).to(x.dtype) / 255
    return out
