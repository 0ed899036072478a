"""Evaluate a model on a FER2013 split, clean or under generated perturbations.

ONNX models are evaluated with ONNX Runtime only; training checkpoints (``.pt``) need torch.
The perturbations make the robustness targets measurable: darkened (gamma and brightness),
noisy and slightly rotated copies of a split, generated deterministically from a seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from emolens.metrics import classification_report


def _dark(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low light: gamma 1.8-2.5 and brightness scaled to 40-70%."""
    x = faces.astype(np.float32) / 255
    gamma = rng.uniform(1.8, 2.5, (len(x), 1, 1))
    gain = rng.uniform(0.4, 0.7, (len(x), 1, 1))
    return np.clip(255 * gain * x**gamma, 0, 255).round().astype(np.uint8)


def _noise(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise, sigma 8-15 grey levels."""
    sigma = rng.uniform(8, 15, (len(faces), 1, 1))
    return np.clip(faces + rng.normal(size=faces.shape) * sigma, 0, 255).round().astype(np.uint8)


def _rotate(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """In-plane head tilt of 5-15 degrees either way."""
    out = np.empty_like(faces)
    h, w = faces.shape[1:]
    for i, face in enumerate(faces):
        angle = rng.uniform(5, 15) * rng.choice([-1, 1])
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out[i] = cv2.warpAffine(face, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


PERTURBATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "dark": _dark,
    "noise": _noise,
    "rotate": _rotate,
}


def perturb(faces: np.ndarray, name: str, *, seed: int = 0) -> np.ndarray:
    """Return a perturbed copy of uint8 faces (n, 48, 48); ``name`` is a key of PERTURBATIONS."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
    return PERTURBATIONS[name](faces, np.random.default_rng(seed))


def predict_probabilities(
    model: str | os.PathLike | None,
    faces: np.ndarray,
    *,
    tta: bool = False,
    batch_size: int = 256,
    reference: bool = False,
) -> np.ndarray:
    """Class scores (n, 7) from an ONNX model (default: the shipped one) or a ``.pt`` checkpoint.

    ``reference``: an ONNX model on ONNX Runtime's reference path (see EmotionClassifier).
    """
    if model is not None and Path(model).suffix == ".pt":
        from emolens.training.export import load_checkpoint
        from emolens.training.train import predict_logits

        net, _ = load_checkpoint(model)
        return predict_logits(net, faces, tta=tta)
    from emolens.inference.classifier import EmotionClassifier

    classifier = EmotionClassifier(model, tta=tta, reference=reference)
    return np.concatenate([classifier.classify(faces[i : i + batch_size]) for i in range(0, len(faces), batch_size)])


def evaluate(
    model: str | os.PathLike | None,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    tta: bool = False,
    perturbation: str | None = None,
    seed: int = 0,
) -> dict:
    """Classification report (see :func:`emolens.metrics.classification_report`) of a model on faces."""
    if perturbation:
        images = perturb(images, perturbation, seed=seed)
    scores = predict_probabilities(model, images, tta=tta)
    report = classification_report(labels, scores.argmax(1))
    report["perturbation"] = perturbation or "none"
    return report
