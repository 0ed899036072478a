"""EmotionClassifier: an ONNX Runtime session plus the metadata the model carries."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emolens.errors import ModelLoadError
from emolens.inference._ort import cpu_session, reference_session
from emolens.labels import EMOTIONS
from emolens.preprocess import INPUT_SIZE, to_model_input

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
from emolens.shipped import DEFAULT_MODEL, SHIPPED_MODELS, resolve_model, shipped_model_path

DEFAULT_MODEL_NAME = SHIPPED_MODELS[DEFAULT_MODEL]


def default_model_path() -> Path:
    """The default model shipped inside the package."""
    return shipped_model_path(DEFAULT_MODEL)


class EmotionClassifier:
    """Classify 48x48 gray faces with an emolens ONNX model.

    One instance may be shared between threads: ONNX Runtime's ``run`` is thread-safe.

    Args:
        model_path: a shipped model's name (:data:`SHIPPED_MODELS`) or an ONNX file exported
            by ``emolens export``; default the default shipped model.
        providers: ONNX Runtime execution providers.
        threads: intra-op threads (0: ONNX Runtime's default, all cores).
        tta: also classify the mirrored face and average, unless the model already does.
        spinning: let ONNX Runtime's threads spin within a run (faster alone); False where other
            busy threads share the cores (a server, a video's decoder and encoder); see
            :func:`emolens.inference._ort.cpu_session`.
        reference: run on ONNX Runtime's reference path (no graph optimisation, the same maths
            on every CPU, several times slower): what the fast kernels are checked against.

    Raises:
        ModelLoadError: if the file is missing, not ONNX, or lacks emolens metadata.

    Example:
        >>> clf = EmotionClassifier()
        >>> probs = clf.classify(np.zeros((2, 48, 48), np.uint8))  # (2, 7)
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        providers: list[str] | None = None,
        threads: int = 0,
        tta: bool = False,
        reference: bool = False,
        spinning: bool = True,
    ):
        self.model_path = resolve_model(model_path)
        if not self.model_path.is_file():
            raise ModelLoadError(
                f"model file not found: {self.model_path} (shipped models by name: {', '.join(SHIPPED_MODELS)})"
            )
        self._session = (
            reference_session(self.model_path, threads=threads)
            if reference
            else cpu_session(self.model_path, threads=threads, providers=providers, spinning=spinning)
        )
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        if "labels" not in self.metadata or "input_size" not in self.metadata:
            raise ModelLoadError(
                f"{self.model_path}: no emolens metadata (labels, input_size); export it with `emolens export`"
            )
        self.labels = tuple(json.loads(self.metadata["labels"]))
        if self.labels != EMOTIONS or int(self.metadata["input_size"]) != INPUT_SIZE:
            raise ModelLoadError(
                f"{self.model_path}: expects labels {self.labels} at {self.metadata['input_size']} px; "
                f"emolens uses {EMOTIONS} at {INPUT_SIZE} px"
            )
        self._input = self._session.get_inputs()[0].name
        self.flip_in_model = self.metadata.get("tta_flip") == "true"
        # Models exported before view sets existed only say whether the mirror is averaged in.
        self.views_in_model = self.metadata.get("tta_views", "face, mirror" if self.flip_in_model else "face")
        self.tta = tta and not self.flip_in_model

    @property
    def session(self) -> InferenceSession:
        """The ONNX Runtime session (for profiling, or to read its settings)."""
        return self._session

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (n, 7) over EMOTIONS for uint8 gray faces (n, 48, 48); one batch."""
        x = to_model_input(faces)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if not self.tta:
            return self._session.run(None, {self._input: x})[0]
        both = self._session.run(None, {self._input: np.concatenate([x, x[..., ::-1]])})[0]
        return (both[: len(x)] + both[len(x) :]) / 2
