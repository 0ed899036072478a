"""Evaluate a model on a FER2013 split, clean or under generated perturbations.

ONNX models are evaluated with ONNX Runtime only; training checkpoints (``.pt``) need torch.
The perturbations make the robustness targets measurable: darkened (gamma and exposure),
noisy, blurred, JPEG-compressed and rotated copies of a split, motion-blurred, unevenly lit
and low-resolution ones, at a strength given with the name (``noise:25``), generated
deterministically from a seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolens.errors import SettingsError
from emolens.metrics import classification_report, expected_calibration_error
from emolens.preprocess import seen_small
from emolens.results import UNCERTAIN_BELOW


@dataclass(frozen=True)
class Perturbation:
    """A named degradation of faces with its strength: ``noise:25``, ``blur:1.5``, ``rotate:15-25``.

    ``low``/``high`` bound the strength drawn per face (equal for a fixed strength); for
    ``dark`` the strength is the gamma and ``gain`` the exposure (``dark:2.2x0.45``).
    """

    name: str
    low: float
    high: float
    gain: tuple[float, float] = (1.0, 1.0)

    @property
    def spec(self) -> str:
        strength = f"{self.low:g}" if self.low == self.high else f"{self.low:g}-{self.high:g}"
        if self.name == "dark":
            gain = f"{self.gain[0]:g}" if self.gain[0] == self.gain[1] else f"{self.gain[0]:g}-{self.gain[1]:g}"
            strength += f"x{gain}"
        return f"{self.name}:{strength}"

    def apply(self, faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        strength = rng.uniform(self.low, self.high, len(faces))
        return _APPLY[self.name](faces, strength, self, rng)


def _dark(faces: np.ndarray, gamma: np.ndarray, p: Perturbation, rng: np.random.Generator) -> np.ndarray:
    """Low light: gamma, then exposure scaled down, rounded to 8 bits as a camera would."""
    x = faces.astype(np.float32) / 255
    gain = rng.uniform(*p.gain, len(x))
    return np.clip(255 * gain[:, None, None] * x ** gamma[:, None, None], 0, 255).round().astype(np.uint8)


def _noise(faces: np.ndarray, sigma: np.ndarray, _p: Perturbation, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise, sigma in grey levels."""
    noisy = faces + rng.normal(size=faces.shape) * sigma[:, None, None]
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def _blur(faces: np.ndarray, sigma: np.ndarray, _p: Perturbation, _rng: np.random.Generator) -> np.ndarray:
    """Defocus: Gaussian blur, sigma in pixels."""
    return np.stack(
        [cv2.GaussianBlur(f, (0, 0), float(s), borderType=cv2.BORDER_REPLICATE) for f, s in zip(faces, sigma)]
    )


def _jpeg(faces: np.ndarray, quality: np.ndarray, _p: Perturbation, _rng: np.random.Generator) -> np.ndarray:
    """JPEG compression at the given quality (1-100)."""
    out = np.empty_like(faces)
    for i, (face, q) in enumerate(zip(faces, quality)):
        _, encoded = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(round(q))])
        out[i] = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return out


def _rotate(faces: np.ndarray, degrees: np.ndarray, _p: Perturbation, rng: np.random.Generator) -> np.ndarray:
    """In-plane head tilt, either way."""
    out = np.empty_like(faces)
    h, w = faces.shape[1:]
    for i, (face, angle) in enumerate(zip(faces, degrees * rng.choice([-1, 1], len(faces)))):
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), 1.0)
        out[i] = cv2.warpAffine(face, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def _motion(faces: np.ndarray, length: np.ndarray, _p: Perturbation, rng: np.random.Generator) -> np.ndarray:
    """Motion blur: each face smeared along a line of ``length`` pixels in a random direction."""
    out = np.empty_like(faces)
    for i, (face, size, angle) in enumerate(zip(faces, length, rng.uniform(0, 180, len(faces)))):
        k, n = int(np.ceil(size)) // 2 * 2 + 1, int(round(size))
        kernel, c = np.zeros((k, k), np.float32), k // 2
        kernel[c, c - n // 2 : c + n // 2 + 1] = 1
        if n % 2 == 0:  # an even length ends half-way into its end pixels, so the line stays centred
            kernel[c, [c - n // 2, c + n // 2]] = 0.5
        matrix = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), float(angle), 1.0)
        smear = cv2.warpAffine(kernel, matrix, (k, k), flags=cv2.INTER_LINEAR)
        out[i] = cv2.filter2D(face, -1, smear / smear.sum(), borderType=cv2.BORDER_REPLICATE)
    return out


def _ramp(faces: np.ndarray, depth: np.ndarray, _p: Perturbation, rng: np.random.Generator) -> np.ndarray:
    """Uneven light: a ramp from full light in one corner to ``1 - depth`` of it in the opposite one."""
    h, w = faces.shape[1:]
    rows, cols = np.meshgrid(np.linspace(-0.5, 0.5, h), np.linspace(-0.5, 0.5, w), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi, len(faces))[:, None, None]
    cos, sin = np.cos(angle), np.sin(angle)
    along = (cols * cos + rows * sin) / (0.5 * (np.abs(cos) + np.abs(sin)))  # -1 .. 1, corner to corner
    light = 1 - depth[:, None, None] * (along + 1) / 2
    return np.clip(faces * light, 0, 255).round().astype(np.uint8)


def _lowres(faces: np.ndarray, side: np.ndarray, _p: Perturbation, _rng: np.random.Generator) -> np.ndarray:
    """A small face: seen ``side`` pixels across, upscaled back as the pipeline upscales a small crop."""
    out = np.empty_like(faces)
    for i, (face, size) in enumerate(zip(faces, side)):
        out[i] = seen_small(face, int(round(size)))
    return out


_APPLY: dict[str, Callable[[np.ndarray, np.ndarray, Perturbation, np.random.Generator], np.ndarray]] = {
    "dark": _dark,
    "noise": _noise,
    "blur": _blur,
    "jpeg": _jpeg,
    "rotate": _rotate,
    "motion": _motion,
    "ramp": _ramp,
    "lowres": _lowres,
}
# A bare name means these strengths (the first three as the perturbations were first defined).
DEFAULT_STRENGTHS = {
    "dark": "1.8-2.5x0.4-0.7",
    "noise": "8-15",
    "rotate": "5-15",
    "blur": "1.5",
    "jpeg": "12",
    "motion": "7",
    "ramp": "0.6",
    "lowres": "16-24",
}
# Poor cameras and poor light at the strengths the robustness targets are set at.
ROBUSTNESS_SUITE = ("noise:25", "blur:1.5", "jpeg:12", "dark:2.2x0.45", "rotate:15-25")
PERTURBATIONS = tuple(_APPLY)


def parse_perturbation(spec: str) -> Perturbation:
    """``NAME`` or ``NAME:STRENGTH``; a strength is a number or a range ``LOW-HIGH`` (dark: ``GAMMA[xGAIN]``).

    Raises:
        ValueError: naming the unknown perturbation or the malformed strength.
    """
    name, _, strength = spec.partition(":")
    if name not in _APPLY:
        raise SettingsError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
    strength = strength or DEFAULT_STRENGTHS[name]
    try:
        level, _, gain = strength.partition("x") if name == "dark" else (strength, "", "")
        low, high = _range(level)
        gains = _range(gain) if gain else (1.0, 1.0)
    except ValueError:
        raise SettingsError(f"perturbation {spec!r}: the strength must be a number or LOW-HIGH") from None
    if (
        low > high
        or low < 0
        or (name == "jpeg" and not 1 <= low <= high <= 100)
        or (name == "ramp" and high > 1)
        or (name == "lowres" and not 4 <= low <= high <= 48)
    ):
        raise SettingsError(f"perturbation {spec!r}: strength out of range")
    return Perturbation(name, low, high, gains)


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def perturb(faces: np.ndarray, spec: str, *, seed: int = 0) -> np.ndarray:
    """Return a perturbed copy of uint8 faces (n, 48, 48); ``spec`` as :func:`parse_perturbation` reads it."""
    return parse_perturbation(spec).apply(faces, np.random.default_rng(seed))


def predict_probabilities(
    model: str | os.PathLike | None,
    faces: np.ndarray,
    *,
    tta: bool = False,
    batch_size: int = 256,
    reference: bool = False,
) -> np.ndarray:
    """Probabilities (n, 7) from an ONNX model (default: the shipped one) or a ``.pt`` checkpoint.

    ``reference``: an ONNX model on ONNX Runtime's reference path (see EmotionClassifier).
    """
    if model is not None and Path(model).suffix == ".pt":
        from emolens.training.export import load_checkpoint
        from emolens.training.train import predict_logits

        net, _ = load_checkpoint(model)
        logits = predict_logits(net, faces, tta=tta).astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
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
        perturbation = parse_perturbation(perturbation).spec
        images = perturb(images, perturbation, seed=seed)
    scores = predict_probabilities(model, images, tta=tta)
    report = classification_report(labels, scores.argmax(1))
    report["perturbation"] = perturbation or "none"
    report["calibration"] = calibration_report(scores, labels)
    return report


def calibration_report(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Expected calibration error, and how the faces reported as uncertain fare against the rest."""
    uncertain = scores.max(axis=1) < UNCERTAIN_BELOW
    correct = scores.argmax(axis=1) == labels
    return {
        "expected_calibration_error": expected_calibration_error(scores, labels),
        "uncertain_below": UNCERTAIN_BELOW,
        "uncertain_share": float(uncertain.mean()) if len(labels) else 0.0,
        "accuracy_uncertain": float(correct[uncertain].mean()) if uncertain.any() else None,
        "accuracy_confident": float(correct[~uncertain].mean()) if (~uncertain).any() else None,
    }
