"""Face detection over consecutive frames: the whole frame now and then, the known faces' regions between.

Detecting in the whole frame is most of the cost of a video frame (RetinaFace at 640x480:
~10 ms of ~12). In a stream, faces move little from one frame to the next, so between
whole-frame passes each face is looked for again in a small square around where it was,
scaled to a fixed small size (~1 ms for all of a frame's faces). A whole-frame pass still runs every
``full_every`` frames, whenever a face is lost, and on every frame while no face is known,
so a face that enters the picture is found within ``full_every`` frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from emolens.errors import SettingsError
from emolens.inference.detector import Detections, FaceDetector, as_face_detector, merge_overlapping
from emolens.inference.tracker import iou
from emolens.preprocess import Framing


class StreamDetector:
    """A detector for the frames of one video or camera, in order (not for unrelated images).

    It keeps state between calls, so use one per stream; the wrapped detector may be shared.

    Args:
        detector: the detector to run on whole frames and on face regions.
        full_every: run on the whole frame at least every this many frames (1: always).
        region: side of the square searched around a known face, in face sides.
        region_px: the square is resized to this many pixels before detection.
    """

    def __init__(self, detector: FaceDetector, *, full_every: int = 10, region: float = 2.0, region_px: int = 128):
        if full_every < 1:
            raise SettingsError(f"full_every must be >= 1, got {full_every}")
        self.detector = as_face_detector(detector)
        self.full_every, self.region, self.region_px = full_every, region, region_px
        self._boxes = np.zeros((0, 4), np.int32)
        self._since_full = 0

    @property
    def framing(self) -> Framing | None:
        """The wrapped detector's boxes, so its crop."""
        return self.detector.framing

    @property
    def known_faces(self) -> np.ndarray:
        """The boxes (n, 4) of the faces found on the last frame: where the next one looks first."""
        return self._boxes.copy()

    def reset(self) -> None:
        """Forget the known faces (e.g. after a seek): the next frame gets a whole-frame pass."""
        self._boxes = np.zeros((0, 4), np.int32)

    def detect(self, frame: np.ndarray) -> Detections:
        self._since_full += 1
        near = None
        if len(self._boxes) and self._since_full < self.full_every:
            near = self._near_known_faces(frame)
        if near is None:  # time for a whole-frame pass, or a face was lost: look everywhere
            self._boxes, scores = self.detector.detect(frame)
            self._since_full = 0
        else:
            self._boxes, scores = merge_overlapping(*near)
        return Detections(self._boxes, scores)

    def detect_many(self, frames: list[np.ndarray]) -> list[Detections]:
        """Consecutive frames of the stream, in order."""
        return [self.detect(f) for f in frames]

    def _near_known_faces(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Each known face found again in its square (boxes, scores), or None if any is lost."""
        squares = []
        for box in self._boxes:
            square = self._square(frame, box)
            if square is None:
                return None
            squares.append(square)
        detected = self.detector.detect_many([crop for crop, _ in squares])  # RetinaFace: in one run
        found = [self._nearest(d, box, where) for d, (_, where), box in zip(detected, squares, self._boxes)]
        if any(len(boxes) == 0 for boxes, _ in found):
            return None
        return np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found])

    def _square(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, tuple[int, int, float, float]] | None:
        """The square around ``box`` scaled to at most ``region_px``, and where it came from:
        its corner and scale; None when it lies outside the frame (whose size changed)."""
        h, w = frame.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = max(box[2] - box[0], box[3] - box[1]) * self.region / 2
        x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
        x2, y2 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            return None
        scale = self.region_px / (2 * half)
        crop = cv2.resize(
            frame[y1:y2, x1:x2],
            (
                min(self.region_px, max(1, round((x2 - x1) * scale))),
                min(self.region_px, max(1, round((y2 - y1) * scale))),
            ),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        return crop, (x1, y1, (x2 - x1) / crop.shape[1], (y2 - y1) / crop.shape[0])

    @staticmethod
    def _nearest(
        detected: tuple[np.ndarray, np.ndarray], box: np.ndarray, where: tuple[int, int, float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Of the faces found in a square, the one overlapping ``box`` most (none if none does), in frame pixels.

        Matching by overlap, not by score, keeps a neighbour's face that reaches into the
        square from taking this face's place.
        """
        boxes, scores = detected
        if len(boxes) == 0:
            return boxes, scores
        x1, y1, sx, sy = where
        mapped = np.round(boxes * [sx, sy, sx, sy] + [x1, y1, x1, y1]).astype(np.int32)
        overlap = iou(mapped, box[None])[:, 0]
        best = int(np.argmax(overlap))
        if overlap[best] <= 0:
            return mapped[:0], scores[:0]
        return mapped[best : best + 1], scores[best : best + 1]
