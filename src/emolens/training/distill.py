"""Knowledge distillation: a teacher's probabilities on fixed geometric views of the train faces.

Running the teacher on every batch would cost more than training the compact student (the
accurate model is 7x its multiply-adds), and on an AVX2 CPU it would not fit the two-hour
budget. So the teacher scores ``views`` geometric augmentations of every training face once,
before the first epoch, and each step draws one view per face. The teacher sees the same
geometry as the student (what it says depends on the crop), but never the appearance
degradations (noise, blur, JPEG, dark, occlusion), which are applied to the student's copy
only: the student learns to say for a degraded face what the teacher says for the clean one.

:class:`OnlineTeacher` is the other way (``--teacher-online``): the teacher scores each
batch's own geometric view as training goes, so the student never sees the same view twice.
Measured against fixed views on the compact recipe, it was 1.4 points less accurate and 3.7x
slower a step (README, "compact: vggface48_slim").
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emolens.errors import SettingsError
from emolens.training.augment import AugmentConfig, augment_geometry

logger = logging.getLogger(__name__)

_CACHE_VERSION = "1"


@dataclass(frozen=True)
class TeacherTargets:
    """Geometric views of the training faces and the teacher's probabilities for each.

    Attributes:
        views: (k, n, 48, 48) uint8 faces; view 0 is the face itself.
        probs: (k, n, 7) float32 teacher probabilities.
    """

    views: np.ndarray
    probs: np.ndarray

    def __post_init__(self) -> None:
        if self.views.shape[:2] != self.probs.shape[:2]:
            raise ValueError(f"views {self.views.shape[:2]} and probabilities {self.probs.shape[:2]} differ")

    def draw(self, index: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One random view per face: (len(index), 1, 48, 48) floats in [0, 1] and their teacher probabilities."""
        view = torch.randint(self.views.shape[0], (len(index),), generator=gen).numpy()
        idx = index.numpy()
        faces = torch.from_numpy(self.views[view, idx]).unsqueeze(1).float() / 255
        return faces, torch.from_numpy(self.probs[view, idx])


def make_teacher_targets(
    teacher: str | os.PathLike,
    images: np.ndarray,
    *,
    views: int,
    augment: AugmentConfig,
    seed: int,
    batch_size: int = 512,
) -> TeacherTargets:
    """Score ``views`` views of each face (the face itself, then geometric augmentations) with ``teacher``.

    ``teacher`` is an ONNX model or a ``.pt`` checkpoint (scored with its mirror averaged in).
    """
    from emolens.evaluation import predict_probabilities

    if views < 1:
        raise SettingsError(f"--teacher-views must be 1 or more, got {views}")
    gen = torch.Generator().manual_seed(seed * 7919 + 17)
    out = np.empty((views, *images.shape), np.uint8)
    out[0] = images
    for v in range(1, views):
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start : start + batch_size]).unsqueeze(1).float() / 255
            warped = augment_geometry(x, augment, gen)
            out[v, start : start + batch_size] = (warped[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    tta = Path(teacher).suffix == ".pt"
    probs = np.stack([predict_probabilities(teacher, out[v], tta=tta) for v in range(views)]).astype(np.float32)
    return TeacherTargets(out, probs)


def cached_teacher_targets(
    cache: Path, teacher: str | os.PathLike, images: np.ndarray, **kwargs: Any
) -> TeacherTargets:
    """:func:`make_teacher_targets`, kept in ``cache`` (an .npz) so a resumed run does not score again."""
    key = _cache_key(teacher, images, **kwargs)
    if cache.exists():
        with np.load(cache) as saved:
            if str(saved["key"]) == key:
                logger.info("teacher targets from %s", cache)
                return TeacherTargets(saved["views"], saved["probs"])
    logger.info("scoring %d views of %d faces with the teacher %s", kwargs["views"], len(images), teacher)
    targets = make_teacher_targets(teacher, images, **kwargs)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, key=np.array(key), views=targets.views, probs=targets.probs)
    os.replace(tmp, cache)
    return targets


def _cache_key(teacher: str | os.PathLike, images: np.ndarray, **kwargs: Any) -> str:
    digest = hashlib.sha256()
    digest.update(Path(teacher).read_bytes())
    digest.update(images.tobytes())
    digest.update(repr(sorted(kwargs.items())).encode())
    return f"{_CACHE_VERSION}:{digest.hexdigest()}"


class OnlineTeacher:
    """A teacher network scoring faces as training draws them: its logits averaged with its mirror's.

    ``fast``: bf16 autocast and channels_last, as the student trains.
    """

    def __init__(self, net: torch.nn.Module, *, fast: bool) -> None:
        self.net = net.eval()
        self.fast = fast
        if fast:
            # torch's overloads of Module.to omit memory_format=, which it documents and accepts
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities (n, 7) for model input ``x`` (n, 1, 48, 48), 0-255."""
        both = torch.cat([x, torch.flip(x, dims=[3])])
        if self.fast:
            both = both.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.fast):
            logits = self.net(both).float()
        return torch.softmax((logits[: len(x)] + logits[len(x) :]) / 2, dim=1)


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target loss: KL(teacher || student) at ``temperature``, times temperature squared.

    The teacher gives probabilities (its ONNX graph ends in a softmax); their logarithm is its
    logits up to a constant per face, which the softmax below ignores.
    """
    teacher_logits = torch.log(teacher_probs.clamp_min(1e-8))
    target = torch.softmax(teacher_logits / temperature, dim=1)
    log_student = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(log_student, target, reduction="batchmean") * temperature**2
