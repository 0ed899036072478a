"""Exceptions raised by emolens. All derive from EmolensError."""

from __future__ import annotations


class EmolensError(Exception):
    """Base class of every error emolens raises on purpose."""


class SettingsError(EmolensError, ValueError):
    """An option or setting has a value emolens cannot use; the message names it and what it takes."""


class DatasetError(EmolensError, ValueError):
    """A data set is missing, malformed or empty; the message names the file, row or member."""


class ModelLoadError(EmolensError):
    """A model file is missing, unreadable or lacks the emolens metadata."""


class ImageDecodeError(EmolensError, ValueError):
    """Bytes or a file could not be decoded as an image."""


class ImageTooLargeError(ImageDecodeError):
    """An image is larger than the pixel limit it was read under (a decompression bomb, or a
    photo bigger than a server accepts)."""


class ExportError(EmolensError):
    """An ONNX export failed its own checks (checker or runtime parity)."""


class SourceError(EmolensError):
    """A camera or stream cannot be opened or read; the message names the source and why."""


class VideoOpenError(EmolensError):
    """A file is not a readable video (no video stream, corrupt, no frames)."""


class Cancelled(EmolensError):
    """Processing was cancelled by the caller."""
