"""Drawing results onto frames (drawing only; no inference).

Lines and text grow with the frame, so that a 1080p video is as readable as a 480p one
(1 px boxes vanish at 720p and up), and each label is placed where it covers no other face
when there is room: above its box, else below, else inside its top. The browser overlay
(``drawFaces`` in web/static/common.js) follows the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from emolens.inference.tracker import TrackedFace
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

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2 and y2 exclusive
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def line_width(height: int, width: int) -> int:
    """Box line width for a frame: 1 px per 240 px of its shorter side (3 at 720p, 4 at
    1080p), at least 2, so that a box survives the video's chroma subsampling and a phone's
    downscaling."""
    return max(2, round(min(height, width) / 240))


def font_scale(height: int, width: int) -> float:
    """OpenCV font scale for a frame: capitals ~19 px high at 720p, never under ~9 px."""
    return max(0.4, min(height, width) / 850)


def place_labels(boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], frame: tuple[int, int]) -> list[Rect]:
    """Where each face's label goes, as rectangles inside ``frame`` (height, width).

    Each label tries, in order: above its box (left-aligned, then right-aligned), below it
    (the same two), inside its top. It takes the first place that covers no other face's box
    and no label placed before it; if none is free, the place that covers the least of the
    other faces, then of the labels.
    Places outside the frame are skipped, and labels are shifted sideways to stay inside, so
    none is cut off at an edge. Faces are placed in the order given (the largest first).

    Args:
        boxes: the faces' boxes, xyxy.
        sizes: each label's (width, height) in pixels.
        frame: the frame's (height, width).

    Returns:
        One xyxy rectangle per label.
    """
    h, w = frame
    placed: list[Rect] = []
    for i, ((x1, y1, x2, y2), (lw, lh)) in enumerate(zip(boxes, sizes)):
        faces = [b for j, b in enumerate(boxes) if j != i]
        spots = [(x1, y1 - lh), (x2 - lw, y1 - lh), (x1, y2), (x2 - lw, y2), (x1, min(y1, h - lh))]
        best: tuple[tuple[int, int], Rect] | None = None
        for x, y in spots:
            if y < 0 or y + lh > h:
                continue
            x = max(0, min(x, w - lw))
            rect = (x, y, x + lw, y + lh)
            # covering a face is worse than covering a label, however little of it
            cost = (sum(_overlap(rect, b) for b in faces), sum(_overlap(rect, b) for b in placed))
            if best is None or cost < best[0]:
                best = (cost, rect)
            if cost == (0, 0):
                break
        if best is None:  # a label taller than the frame: at its top, clipped at the bottom
            x = max(0, min(x1, w - lw))
            best = ((0, 0), (x, 0, x + lw, lh))
        placed.append(best[1])
    return placed


def _overlap(a: Rect, b: Rect) -> int:
    """Area two rectangles share (0 when they only touch)."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def face_label(name: str, face: FaceResult) -> str:
    """``#12 happy 83%``; an uncertain face's emotion gets a question mark (``#12 happy? 41%``)."""
    return f"{name} {face.emotion}{'?' if face.uncertain else ''} {face.confidence:.0%}"


def draw_results(
    frame: np.ndarray,
    faces: list[FaceResult],
    *,
    ids: Sequence[int] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Return a BGR copy of ``frame`` with a box and a label per face.

    Labels read "1 happy 93%", numbered as the faces are listed (the web page's "Face 1", the
    JSON's order), or "#12 happy 93%" with ``ids``, the faces' track ids in a video.

    Args:
        frame: gray, BGR or BGRA uint8 image.
        faces: the faces to draw, in order.
        ids: a track id per face, shown instead of the face's number.
        thickness: box line width in pixels; default grows with the frame (see ``line_width``).
    """
    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame[:, :, :3].copy()
    if not faces:
        return out
    h, w = out.shape[:2]
    scale = font_scale(h, w)
    thickness = thickness or line_width(h, w)
    text_width = max(1, round(scale * 2))
    pad = max(2, round(4 * scale))
    names = [f"#{i}" for i in ids] if ids is not None else [str(n + 1) for n in range(len(faces))]
    labels = [face_label(name, face) for name, face in zip(names, faces)]
    metrics = [cv2.getTextSize(label, _FONT, scale, text_width) for label in labels]
    sizes = [(tw + 2 * pad, th + base + 2 * pad) for (tw, th), base in metrics]
    boxes = [(f.box.x1, f.box.y1, f.box.x2, f.box.y2) for f in faces]
    for (x1, y1, x2, y2), face in zip(boxes, faces):
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), COLORS.get(face.emotion, (255, 255, 255)), thickness)
    for rect, label, ((_, th), _), face in zip(place_labels(boxes, sizes, (h, w)), labels, metrics, faces):
        cv2.rectangle(out, rect[:2], (rect[2] - 1, rect[3] - 1), COLORS.get(face.emotion, (255, 255, 255)), -1)
        origin = (rect[0] + pad, rect[1] + pad + th)
        cv2.putText(out, label, origin, _FONT, scale, (0, 0, 0), text_width, cv2.LINE_AA)
    return out


def draw_tracked(frame: np.ndarray, tracked: Sequence[TrackedFace]) -> np.ndarray:
    """:func:`draw_results` for tracked faces, labelled with their track ids ("#3 happy 80%")."""
    return draw_results(frame, [tf.face for tf in tracked], ids=[tf.track_id for tf in tracked])
