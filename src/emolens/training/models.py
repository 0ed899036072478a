"""CNNs for 48x48 gray faces, looked up by name in :data:`MODELS`.

Every model takes raw pixel values (float, 0-255) of shape (n, 1, 48, 48) and returns
logits over EMOTIONS. The first layer standardises each face by its own mean and standard
deviation: that makes the network blind to global brightness and contrast (the origin's
low-light failures) and keeps preprocessing out of callers' hands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from emolens.errors import SettingsError

__all__ = ["MODELS", "DEFAULT_ARCH", "create_model", "list_models", "count_parameters", "count_multiply_adds"]


class PerImageStandardize(nn.Module):
    """(x - mean(x)) / (std(x) + eps) per sample; no parameters.

    The standard deviation is the population one: ``Tensor.std``'s unbiased one differs by
    0.02% on a 48x48 face, but exports as ~15 ONNX nodes that read the face's size at run
    time, where this exports as seven, which int8 models run in float
    (:func:`emolens.training.quantize.quantize_int8`).
    """

    def __init__(self, eps: float = 1.0):
        super().__init__()
        self.eps = eps  # in pixel units: a flat face is not blown up into noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (1, 2, 3)
        centred = x - x.mean(dim=dims, keepdim=True)
        std = (centred * centred).mean(dim=dims, keepdim=True).sqrt()
        return centred / (std + self.eps)


class Seed2020(nn.Module):
    """The origin's Keras CNN, layer for layer (4,474,759 trainable parameters)."""

    def __init__(self, num_classes: int = 7, drop_rate: float = 0.25):
        super().__init__()
        layers: list[nn.Module] = [PerImageStandardize()]
        in_ch = 1
        for out_ch, k in ((64, 3), (128, 5), (512, 3), (512, 3)):
            layers += [
                nn.Conv2d(in_ch, out_ch, k, padding=k // 2),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.Dropout(drop_rate),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * 3 * 3, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(256, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


def _spatial_head(channels: int, side: int, hidden: int, num_classes: int, drop_rate: float) -> nn.Sequential:
    """A small fully connected head on the last (side x side) map: keeps where features are (eyes above mouth)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(drop_rate),
        nn.Linear(channels * side * side, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(drop_rate),
        nn.Linear(hidden, num_classes),
    )


def _init_convolutions(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class Residual(nn.Module):
    """x + body(x): lets a stage's later convolutions learn a correction to its first one."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VggFace48(nn.Module):
    """Our default: a VGG-style net sized for 48x48 faces on a 2-core CPU.

    Few channels at full resolution (where convolutions are most expensive) and more
    convolutions at 12x12 and 6x6 (where they are cheap); BatchNorm after every convolution;
    a small fully connected head on the 3x3 map, which keeps where features are (eyes above
    mouth) instead of averaging it away.

    With ``residual=True``, each later pair of convolutions in a stage becomes one residual
    block (as in the ResNet-9 of fast CIFAR training): the same weights and multiply-adds
    plus an identity path, meant to make a short training budget go further; with the shipped
    recipe it did not beat the plain net (emolens_vggface48.card.md).
    """

    def __init__(
        self,
        num_classes: int = 7,
        widths: Sequence[int] = (32, 64, 128, 256),
        depths: Sequence[int] = (1, 2, 3, 3),
        hidden: int = 256,
        drop_rate: float = 0.25,
        residual: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = [PerImageStandardize()]
        in_ch = 1
        for width, depth in zip(widths, depths):
            layers += _conv_bn_relu(in_ch, width)
            in_ch, left = width, depth - 1
            while residual and left >= 2:
                layers.append(Residual(nn.Sequential(*_conv_bn_relu(width, width), *_conv_bn_relu(width, width))))
                left -= 2
            for _ in range(left):
                layers += _conv_bn_relu(width, width)
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = _spatial_head(in_ch, 48 // 2 ** len(widths), hidden, num_classes, drop_rate)
        _init_convolutions(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _separable(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 depthwise then 1x1 pointwise convolution, each with BatchNorm and ReLU (MobileNet's unit)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False),
        nn.BatchNorm2d(in_ch),
        nn.ReLU(inplace=True),
        *_conv_bn_relu_1x1(in_ch, out_ch),
    )


def _conv_bn_relu_1x1(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class SepFace48(nn.Module):
    """vggface48's layout with depthwise-separable convolutions: the compact model.

    A separable unit costs ``C * (9 + C')`` multiply-adds per pixel instead of ``9 * C * C'``,
    about 8x less at our widths; every unit after a stage's first is residual, which helps a
    short schedule. The stem is one full convolution at 48x48: a separable unit there costs
    little arithmetic but, being memory-bound, halved training speed. The stages, the
    max-pooling and the fully connected head on the 3x3 map are the accurate model's, which
    also makes it a natural student of that model.
    """

    def __init__(
        self,
        num_classes: int = 7,
        widths: Sequence[int] = (32, 64, 128, 256),
        depths: Sequence[int] = (1, 2, 3, 3),
        hidden: int = 256,
        drop_rate: float = 0.2,
    ):
        super().__init__()
        layers: list[nn.Module] = [PerImageStandardize(), *_conv_bn_relu(1, widths[0])]
        in_ch = widths[0]
        for stage, (width, depth) in enumerate(zip(widths, depths)):
            first = 1 if stage == 0 else 0  # the stem is the first stage's first unit
            for unit in range(first, depth):
                layers.append(_separable(in_ch, width) if unit == 0 else Residual(_separable(width, width)))
                in_ch = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = _spatial_head(in_ch, 48 // 2 ** len(widths), hidden, num_classes, drop_rate)
        _init_convolutions(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def sepface48(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """The compact model: 17.7M multiply-adds per face, an eighth of vggface48's."""
    return SepFace48(num_classes=num_classes, **kwargs)


def seed2020(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    return Seed2020(num_classes=num_classes, **kwargs)


def vggface48(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    return VggFace48(num_classes=num_classes, **kwargs)


def vggface48_res(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """vggface48 with its 12x12 and 6x6 stages' last two convolutions as residual blocks."""
    return VggFace48(num_classes=num_classes, residual=True, **kwargs)


def vggface48_mid(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """1.25x the default's channels (~1.5x its multiply-adds); tried for the shipped model, see its card."""
    return VggFace48(num_classes=num_classes, widths=(40, 80, 160, 320), **kwargs)


def vggface48_wide(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    return VggFace48(num_classes=num_classes, widths=(48, 96, 192, 384), **kwargs)


def vggface48_slim(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """Half the default's channels and one convolution fewer in the last two stages: 24.5M
    multiply-adds per view, under the compact budget of 25M. Plain 3x3 convolutions rather than
    sepface48's depthwise units, which at 48x48 are memory-bound: at the same cost it runs
    faster in int8 (``benchmarks/results/sepface48_2026-12-02/card.md``; training speed: commit 5d52d71)."""
    return VggFace48(num_classes=num_classes, widths=(16, 32, 64, 128), depths=(1, 2, 2, 2), **kwargs)


def vggface48_tiny(num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """A few thousand parameters: for tests and smoke runs, not for use."""
    return VggFace48(num_classes=num_classes, widths=(4, 8, 8, 16), depths=(1, 1, 1, 1), hidden=16, **kwargs)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "seed2020": seed2020,
    "vggface48": vggface48,
    "vggface48_res": vggface48_res,
    "vggface48_mid": vggface48_mid,
    "vggface48_wide": vggface48_wide,
    "vggface48_slim": vggface48_slim,
    "vggface48_tiny": vggface48_tiny,
    "sepface48": sepface48,
}
DEFAULT_ARCH = "vggface48"


def list_models() -> list[str]:
    return sorted(MODELS)


def create_model(name: str, num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """Build a registered model by name.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise SettingsError(f"unknown model {name!r}; choose from {', '.join(list_models())}") from None
    return builder(num_classes=num_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_multiply_adds(model: nn.Module, input_size: int = 48) -> int:
    """Multiply-adds of one forward pass of one face, summed over convolutions and linear layers.

    The figure the compact model's budget is stated in: for each Conv2d, output pixels x
    kernel area x input channels per group x output channels; for each Linear, in x out.
    BatchNorm, activations and pooling are left out (they fold into convolutions or cost
    next to nothing).
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * kh * kw * module.in_channels // module.groups

    def linear_hook(module: nn.Linear, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    hooks = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.rand(1, 1, input_size, input_size) * 255)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total
