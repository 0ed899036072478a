"""What emolens runs on, and whether the shipped model computes here what it computes everywhere.

``emolens info``, ``emolens --version`` and ``/api/v1/health`` report these facts. The
self-check exists because integer kernels differ between CPUs: a model can be right on the
machine that made it and wrong on another (this model with 8-bit weights lost 7 points of
accuracy on AVX2 CPUs without VNNI), so every install checks its own CPU.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from emolens._machine import cpu_features, cpu_name, int8_is_exact_natively, usable_cores

if TYPE_CHECKING:
    from emolens.inference.classifier import EmotionClassifier

# Rounding alone moves the shipped model's probabilities by under 0.006 on all of PublicTest
# (reference path against this CPU's kernels); saturating kernels moved them by up to 0.75.
SELF_CHECK_TOLERANCE = 0.03


@dataclass(frozen=True)
class SelfCheck:
    """This CPU's kernels against ONNX Runtime's reference path on the faces shipped for it."""

    ok: bool
    faces: int
    top1_agreement: float
    max_abs_diff: float
    seconds: float
    message: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def self_check_faces() -> np.ndarray:
    """(24, 48, 48) uint8 crops of a public-domain photo (scripts/make_selfcheck_faces.py)."""
    with (resources.files("emolens") / "models" / "selfcheck_faces.npz").open("rb") as f:
        return np.load(f)["faces"]


def self_check(classifier: EmotionClassifier | None = None) -> SelfCheck:
    """Classify the shipped faces with ``classifier`` (default: every shipped model) and on the reference path."""
    from emolens.inference.classifier import EmotionClassifier
    from emolens.shipped import SHIPPED_MODELS, shipped_model_path

    start = time.perf_counter()
    classifiers = (
        [classifier]
        if classifier
        else [EmotionClassifier(n) for n in SHIPPED_MODELS if shipped_model_path(n).is_file()]
    )
    faces = self_check_faces()
    worst_agreement, worst_diff, failing = 1.0, 0.0, []
    for clf in classifiers:
        ours = clf.classify(faces)
        reference = EmotionClassifier(clf.model_path, tta=clf.tta, reference=True).classify(faces)
        agreement = float(np.mean(ours.argmax(1) == reference.argmax(1)))
        diff = float(np.abs(ours - reference).max())
        worst_agreement, worst_diff = min(worst_agreement, agreement), max(worst_diff, diff)
        if diff > SELF_CHECK_TOLERANCE:
            failing.append(f"{clf.model_path.name} by up to {diff:.2f} (top emotion agrees on {agreement:.0%})")
    message = (
        "ok: the same scores as ONNX Runtime's reference path"
        if not failing
        else f"WARNING: on this CPU, on {len(faces)} faces, ONNX Runtime's reference path differs from"
        f" {'; '.join(failing)}: results here are not those of the model cards; report this CPU"
        " (`emolens info`) and use a float model meanwhile"
    )
    return SelfCheck(not failing, len(faces), worst_agreement, worst_diff, time.perf_counter() - start, message)


def shipped_models() -> list[dict]:
    """The models inside the package, with the accuracy their card gives."""
    from emolens.inference.detector import RetinaFaceDetector
    from emolens.shipped import SHIPPED_MODELS, model_summary, shipped_model_path

    models = []
    for name in SHIPPED_MODELS:
        path = shipped_model_path(name)
        if path.is_file():
            models.append(
                {
                    "role": f"emotion classifier '{name}'",
                    **model_summary(name),
                    "file": path.name,
                    "bytes": path.stat().st_size,
                }
            )
    detector = RetinaFaceDetector.default_model_path()
    models.append(
        {
            "role": "face detector",
            "file": detector.name,
            "arch": "RetinaFace MobileNet-0.25",
            "quantization": "none (float32)",
            "bytes": detector.stat().st_size,
        }
    )
    return models


def system_info(*, check: bool = True) -> dict:
    """Versions, CPU, threads, shipped models and (with ``check``) the self-check, as plain JSON values."""
    import cv2
    import onnxruntime as ort

    from emolens import __version__

    info = {
        "emolens": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "cpu": {
            "name": cpu_name(),
            "features": list(cpu_features()),
            "int8_kernels_exact_natively": int8_is_exact_natively(),
        },
        "threads": {"cores": os.cpu_count(), "usable": usable_cores()},
        "models": shipped_models(),
    }
    if check:
        info["self_check"] = self_check().to_dict()
    return info


_SATURATING = "can saturate with 8-bit weights; the shipped model's 7-bit weights cannot"


def format_info(info: dict) -> str:
    """``emolens info`` as lines a person reads."""
    cpu = info["cpu"]
    lines = [
        f"emolens {info['emolens']} (Python {info['python']}, {info['platform']})",
        f"ONNX Runtime {info['onnxruntime']}, OpenCV {info['opencv']}, numpy {info['numpy']}",
        f"CPU: {cpu['name']}; features: {', '.join(cpu['features']) or 'none found'}",
        "  int8 kernels: " + ("exact as they are" if cpu["int8_kernels_exact_natively"] else _SATURATING),
        f"threads: {info['threads']['usable']} of {info['threads']['cores']} cores usable"
        " (ONNX Runtime uses them all unless told otherwise)",
        "models:",
    ]
    for m in info["models"]:
        accuracy = f", PublicTest {m['publictest_accuracy']:.2%}" if m.get("publictest_accuracy") else ""
        lines.append(f"  {m['role']}: {m['file']} ({m['arch']}; {m['quantization']}{accuracy})")
    if "self_check" in info:
        check = info["self_check"]
        lines.append(f"self-check ({check['faces']} faces, {check['seconds']:.2f} s): {check['message']}")
    return "\n".join(lines)
