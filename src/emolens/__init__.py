"""emolens: facial emotion recognition on a plain CPU."""

from __future__ import annotations

from emolens.errors import DatasetError as DatasetError
from emolens.errors import EmolensError as EmolensError
from emolens.errors import ExportError as ExportError
from emolens.errors import ImageDecodeError as ImageDecodeError
from emolens.errors import ModelLoadError as ModelLoadError
from emolens.labels import EMOTIONS as EMOTIONS

__version__ = "0.1.0"

__all__ = [
    "EMOTIONS",
    "DatasetError",
    "EmolensError",
    "ExportError",
    "ImageDecodeError",
    "ModelLoadError",
    "__version__",
]
