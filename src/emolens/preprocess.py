"""The only image preprocessing code: to 48x48 gray uint8, then to model input.

Training and inference both go through these functions, so a face crop yields the same
array either way. Scaling to [0, 1] and normalisation happen *inside* the exported model,
so callers only ever hand it 48x48 uint8 gray faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = 48


@dataclass(frozen=True)
class Framing:
    """Where a model's training crop lies around a detector's box, in units of the box's height.

    FER2013's faces were registered so each fills its 48x48 image the same way; a detector's
    box sits on a face in its own way (RetinaFace's is tall and narrow). Cropping the square of
    side ``side`` box heights centred ``dx``, ``dy`` box heights from the box's centre gives the
    model faces framed as it was trained on (fitted by ``benchmarks/framing.py``).
    """

    side: float
    dx: float = 0.0
    dy: float = 0.0

    def square(self, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
        """(centre x, centre y, side) of the crop for ``box`` = (x1, y1, x2, y2)."""
        x1, y1, x2, y2 = box
        height = y2 - y1
        return (x1 + x2) / 2 + self.dx * height, (y1 + y2) / 2 + self.dy * height, self.side * height

    def scaled(self, factor: float) -> Framing:
        """The same crop, ``factor`` times as wide, about the same centre."""
        return Framing(self.side * factor, self.dx, self.dy)


def check_frame(frame: np.ndarray) -> None:
    """Raise TypeError/ValueError unless ``frame`` is a non-empty uint8 gray, BGR or BGRA image."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {frame.dtype}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3, 4))):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, 1|3|4), got {frame.shape}")
    if 0 in frame.shape:
        raise ValueError(f"empty image of shape {frame.shape}")


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A uint8 gray, BGR or BGRA image as gray (checked by :func:`check_frame`)."""
    check_frame(frame)
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 1:
        return frame[:, :, 0]
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)


def to_gray48(image: np.ndarray) -> np.ndarray:
    """Convert any uint8 image (gray, BGR or BGRA) to a 48x48 gray uint8 array.

    Downscaling uses area interpolation (as FER2013's faces were made), upscaling cubic.

    Raises:
        TypeError: if the array is not uint8.
        ValueError: if the shape is not (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), or empty.
    """
    image = to_gray(image)
    if image.shape == (INPUT_SIZE, INPUT_SIZE):
        return np.ascontiguousarray(image)
    shrinking = image.shape[0] >= INPUT_SIZE and image.shape[1] >= INPUT_SIZE
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=interpolation)


def seen_small(face: np.ndarray, side: int) -> np.ndarray:
    """``face`` as a camera that saw it ``side`` pixels across would give it to the model.

    Shrunk by area averaging (the sensor), then upscaled back cubic as :func:`to_gray48`
    upscales a crop smaller than 48 px; the same size and dtype (uint8 or float) as ``face``.
    Evaluation's ``lowres`` perturbation and training's low-resolution augmentation both use it.
    """
    h, w = face.shape[:2]
    small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def to_model_input(faces: np.ndarray) -> np.ndarray:
    """Stack 48x48 uint8 faces into the model's input tensor: (n, 1, 48, 48) float32 in 0-255.

    The exported model scales and normalises internally (its metadata says how), so this is
    only a layout change; it is kept here so no caller re-implements it.
    """
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected faces of shape (n, 48, 48), got {faces.shape}")
    return faces.astype(np.float32)[:, None, :, :]


def square_box(
    box: tuple[int, int, int, int], frame_shape: tuple[int, ...], margin: float = 0.1
) -> tuple[int, int, int, int]:
    """Grow a detector box into the square, slightly wider crop FER2013's faces were cut as.

    The square is centred on the box, its side the box's larger side plus ``margin`` of it
    on each side, then clipped to the frame.
    """
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = frame_shape[:2]
    nx1, ny1 = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    nx2, ny2 = min(w, int(round(cx + side / 2))), min(h, int(round(cy + side / 2)))
    return nx1, ny1, nx2, ny2


def crop_face(
    frame: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.1, *, framing: Framing | None = None
) -> np.ndarray:
    """Cut a face out of a frame (gray or BGR uint8) as the model's 48x48 gray input.

    With ``framing``, the crop is the square it describes, and where that square runs off the
    frame the frame's edge pixels are repeated, so the face keeps its shape and place in the
    crop; without, it is :func:`square_box` with ``margin``.
    """
    if framing is None:
        x1, y1, x2, y2 = square_box(box, frame.shape, margin)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"face box {tuple(box)} lies outside the frame of shape {frame.shape}")
        return to_gray48(frame[y1:y2, x1:x2])
    cx, cy, side = framing.square(box)
    x1, y1 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x2, y2 = x1 + max(1, int(round(side))), y1 + max(1, int(round(side)))
    h, w = frame.shape[:2]
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise ValueError(f"face box {tuple(box)} lies outside the frame of shape {frame.shape}")
    inside = frame[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
    pads = (max(0, -y1), max(0, y2 - h), max(0, -x1), max(0, x2 - w))
    if any(pads):
        inside = cv2.copyMakeBorder(inside, *pads, cv2.BORDER_REPLICATE)
    return to_gray48(inside)
