"""emolens: facial emotion recognition on a plain CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emolens.errors import DatasetError as DatasetError
from emolens.errors import EmolensError as EmolensError
from emolens.errors import ExportError as ExportError
from emolens.errors import ImageDecodeError as ImageDecodeError
from emolens.errors import ModelLoadError as ModelLoadError
from emolens.labels import EMOTIONS as EMOTIONS

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the lazy names below are, for type checkers (nothing is imported at run time)
    from emolens.inference.annotate import draw_results as draw_results
    from emolens.inference.classifier import EmotionClassifier as EmotionClassifier
    from emolens.inference.recognizer import EmotionRecognizer as EmotionRecognizer
    from emolens.inference.video import process_video as process_video
    from emolens.results import FaceBox as FaceBox
    from emolens.results import FaceResult as FaceResult

# Inference names load on first use, so `import emolens.labels` (training) stays light.
_LAZY = {
    "EmotionRecognizer": "emolens.inference.recognizer",
    "EmotionClassifier": "emolens.inference.classifier",
    "FaceBox": "emolens.results",
    "FaceResult": "emolens.results",
    "draw_results": "emolens.inference.annotate",
    "process_video": "emolens.inference.video",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emolens' has no attribute {name!r}")


__all__ = [
    "EmotionClassifier",
    "EmotionRecognizer",
    "FaceBox",
    "FaceResult",
    "draw_results",
    "process_video",
    "EMOTIONS",
    "DatasetError",
    "EmolensError",
    "ExportError",
    "ImageDecodeError",
    "ModelLoadError",
    "__version__",
]
