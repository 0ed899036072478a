"""Reading images from files or bytes, with clear errors and a pixel cap."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from emolens.errors import ImageDecodeError, ImageTooLargeError

MAX_PIXELS = 50_000_000


def decode_image(data: bytes, *, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes (any format OpenCV reads) to a BGR uint8 array.

    Raises:
        ImageDecodeError: if the bytes are not a decodable image or it exceeds ``max_pixels``.
    """
    if not data:
        raise ImageDecodeError(f"{name}: empty file")
    _check_declared_size(data, name, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError(f"{name}: not a readable image (unsupported format or corrupt data)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {image.shape[1]}x{image.shape[0]} is over the {max_pixels / 1e6:.0f} MP limit"
        )
    return image


def _check_declared_size(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse decompression bombs from the header alone, before any pixel is decoded.

    Pillow reads only the header here; a format it does not know is left to OpenCV, which
    refuses anything over its own limit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return
    except Image.DecompressionBombError as exc:  # Pillow's own, far larger, limit
        raise ImageTooLargeError(f"{name}: declared image size is over the {max_pixels / 1e6:.0f} MP limit") from exc
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{name}: {width}x{height} is over the {max_pixels / 1e6:.0f} MP limit")


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as BGR uint8 (see :func:`decode_image`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    return decode_image(data, name=str(path), max_pixels=max_pixels)
