"""Export a trained checkpoint to ONNX, with its preprocessing contract, and verify it.

The ONNX graph takes ``faces``: (n, 1, 48, 48) float32 gray pixels in 0-255, any batch size,
and returns ``scores``: (n, 7) probabilities over EMOTIONS. Per-image standardisation is
inside the graph, and with ``tta`` the mirrored (and zoomed) face is averaged in too, so
inference code needs nothing but the metadata stored in the model.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from emolens.errors import ExportError, SettingsError
from emolens.labels import EMOTIONS
from emolens.preprocess import INPUT_SIZE
from emolens.training.models import create_model

logger = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4


TTA_VIEWS = {
    "none": ("face",),
    "flip": ("face", "mirror"),
    # The zoomed views helped the first shipped model but not the second (emolens_vggface48.card.md);
    # views shifted by 2 px added nothing (commit 5259879).
    "flip-zoom": ("face", "mirror", "zoom", "mirror zoom"),
}


class _Probabilities(nn.Module):
    """Softmax over the model's logits, averaged over test-time views of each face."""

    def __init__(self, model: nn.Module, tta: str):
        super().__init__()
        if tta not in TTA_VIEWS:
            raise SettingsError(f"unknown test-time augmentation {tta!r}; choose from {', '.join(TTA_VIEWS)}")
        self.model = model
        self.views = TTA_VIEWS[tta]

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        mirror = torch.flip(faces, dims=[3])
        views = {"face": faces, "mirror": mirror}
        if "zoom" in self.views:
            big, crop = round(INPUT_SIZE * 1.1), (round(INPUT_SIZE * 1.1) - INPUT_SIZE) // 2
            for name, x in (("zoom", faces), ("mirror zoom", mirror)):
                zoomed = nn.functional.interpolate(x, size=(big, big), mode="bilinear", align_corners=False)
                views[name] = zoomed[:, :, crop : crop + INPUT_SIZE, crop : crop + INPUT_SIZE]
        batch = torch.cat([views[name] for name in self.views])  # one pass over all views
        # The class count as a constant: a shape taken from the batch exports as four more nodes.
        logits = self.model(batch).reshape(len(self.views), -1, len(EMOTIONS)).mean(0)
        return torch.softmax(logits, dim=1)


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in a training checkpoint (``best.pt`` or ``last.pt``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        model = create_model(ckpt["arch"], num_classes=len(EMOTIONS))
        state = ckpt["ema"] if ckpt.get("ema") and "optimizer" in ckpt else ckpt["model"]
        model.load_state_dict(state)
    except (
        KeyError,
        TypeError,
        RuntimeError,
        EOFError,
        OSError,
        pickle.UnpicklingError,
    ) as exc:  # torch.load raises RuntimeError on garbage
        raise ExportError(f"{path}: not an emolens training checkpoint ({exc})") from exc
    return model.eval(), ckpt


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    arch: str,
    tta: bool | str = True,
    extra_metadata: dict | None = None,
    check: bool = True,
) -> dict:
    """Write ``model`` as ONNX to ``path`` with metadata, then check it.

    Checks: the ONNX checker, then ONNX Runtime against PyTorch in fp32 on random and
    face-like inputs; the max absolute difference of the probabilities must stay under
    1e-4.

    Returns:
        The metadata written (all values are strings).

    Raises:
        ExportError: if the checker or the parity check fails (the file is removed).
    """
    import onnx
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(tta, bool):
        tta = "flip" if tta else "none"
    # torch's overloads of Module.to omit memory_format=, which it documents and accepts
    plain = model.float().eval().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    wrapped = _Probabilities(plain, tta).eval()
    example = torch.rand(2, 1, INPUT_SIZE, INPUT_SIZE) * 255
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but needs no onnxscript, and its output is checked below.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped,
            (example,),
            str(tmp),
            input_names=["faces"],
            output_names=["scores"],
            dynamic_axes={"faces": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    metadata = {
        "emolens_format": "1",
        "labels": json.dumps(list(EMOTIONS)),
        "input_name": "faces",
        "input_size": str(INPUT_SIZE),
        "input_layout": "NCHW, 1 gray channel",
        "input_range": "float32 pixel values 0-255 (per-image standardisation is inside the graph)",
        "output": "scores: softmax probabilities over labels",
        "arch": arch,
        "tta_flip": str(tta != "none").lower(),
        "tta_views": ", ".join(TTA_VIEWS[tta]),
        "git_commit": _git_commit(),
        **{k: str(v) for k, v in (extra_metadata or {}).items()},
    }
    onnx.helper.set_model_props(proto, metadata)
    proto.producer_name = "emolens"
    try:
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        if check:
            diff = _parity(wrapped, tmp, ort)
            if not diff < PARITY_TOLERANCE:
                raise ExportError(
                    f"ONNX Runtime differs from PyTorch by {diff:.2e} (max abs), over {PARITY_TOLERANCE:.0e}"
                )
            logger.info("ONNX Runtime vs PyTorch: max abs difference %.2e", diff)
    except onnx.checker.ValidationError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX checker rejected the model: {exc}") from exc
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return metadata


def _parity(wrapped: nn.Module, onnx_path: Path, ort: ModuleType) -> float:
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.rand(1, 1, INPUT_SIZE, INPUT_SIZE, generator=gen) * 255,
        torch.rand(16, 1, INPUT_SIZE, INPUT_SIZE, generator=gen) * 255,
        torch.full((3, 1, INPUT_SIZE, INPUT_SIZE), 128.0),  # flat faces: the standardisation's edge case
        (torch.rand(5, 1, 6, 6, generator=gen) * 255).repeat_interleave(8, 2).repeat_interleave(8, 3),  # blocky
    ]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            expected = wrapped(x).numpy()
            got = session.run(None, {"faces": x.numpy()})[0]
            worst = max(worst, float(np.abs(expected - got).max()))
    return worst
