"""Drawing results onto frames (drawing only; no inference)."""

from __future__ import annotations

import cv2
import numpy as np

from emolens.results import FaceResult

# BGR colours per emotion, readable on photos.
COLORS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (0, 200, 255),
    "sad": (200, 120, 40),
    "surprise": (0, 140, 255),
    "neutral": (180, 180, 180),
}


def draw_results(frame: np.ndarray, faces: list[FaceResult], *, thickness: int | None = None) -> np.ndarray:
    """Return a BGR copy of ``frame`` with a box and "emotion 93%" label per face."""
    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame[:, :, :3].copy()
    scale = max(0.4, min(out.shape[:2]) / 900)
    thickness = thickness or max(1, int(round(2 * scale)))
    for face in faces:
        color = COLORS.get(face.emotion, (255, 255, 255))
        b = face.box
        cv2.rectangle(out, (b.x1, b.y1), (b.x2 - 1, b.y2 - 1), color, thickness)
        label = f"{face.emotion} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = b.y1 - th - base - 4 if b.y1 - th - base - 4 >= 0 else b.y2
        left = max(0, min(b.x1, out.shape[1] - tw - 6))  # keep the label inside the frame
        cv2.rectangle(out, (left, top), (left + tw + 6, top + th + base + 4), color, -1)
        cv2.putText(
            out, label, (left + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA
        )
    return out
