"""EmotionRecognizer: a face detector plus the emotion classifier."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from numbers import Real

import numpy as np

from emolens.inference.classifier import EmotionClassifier
from emolens.inference.detector import (
    PHOTO_DETECT_SIDE,
    FaceDetector,
    as_face_detector,
    create_detector,
    with_max_side,
)
from emolens.inference.stream import StreamDetector
from emolens.preprocess import Framing, check_frame, crop_face
from emolens.results import FaceBox, FaceResult

# A photo's face is classified at three crop sizes, 0.9, 1 and 1.1 times the framing's, and the
# probabilities averaged: a detector's box misjudges a face's scale by several percent, and the
# average is less sensitive to it. On PublicTest faces staged as photos at 12 sizes and
# paddings, the accurate model's largest gap to the same faces classified directly fell from
# 1.01 to 0.31 points and the compact's from 0.48 to 0.31 (benchmarks/framing.py --crop-scales).
# A stream keeps one crop: every frame counts there, and its smoothing averages over frames.
PHOTO_CROP_SCALES = (0.9, 1.0, 1.1)


def _score(scores: np.ndarray | None, i: int) -> float | None:
    """The detector's score of face ``i`` (RetinaFace: a probability; Haar: a cascade weight);
    None for a user's detector that gives none."""
    if scores is None or len(scores) <= i:
        return None
    return float(scores[i])


def _xyxy(box: np.ndarray) -> tuple[int, int, int, int]:
    """A detector's box as plain ints."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return x1, y1, x2, y2


def _positive(value: object) -> bool:
    """A finite real number above 0 (not a bool, not a string)."""
    if not isinstance(value, Real) or isinstance(value, bool):
        return False
    return math.isfinite(float(value)) and float(value) > 0


class EmotionRecognizer:
    """Find every face in a frame and classify its expression, all faces in one batch.

    Calling it treats the frame as a photo; :meth:`for_stream` gives the recognizer for a
    video's or camera's frames. The two differ in the size the detector shrinks a frame to:
    a photo is detected at up to ``photo_detect_size`` pixels (1280 by default), where a
    phone's group photo still shows its faces, while a video frame keeps the detector's own
    size (640 by default), since every frame's detection counts; and a photo's face is
    classified on crops of several sizes (``photo_crop_scales``), a frame's on one.

    Thread-safe: ONNX Runtime sessions are shared, a Haar cascade is kept per thread.

    Args:
        model_path: emolens ONNX model; default the shipped one.
        detector: a detector name (``"retinaface"``, ``"haar"``) or an object with ``detect(frame)``.
        photo_detect_size: the longer side photos are shrunk to for detection. None: 1280
            for a detector named here; a detector object passed in keeps its own size for
            photos too (``create_detector("retinaface", max_side=320)`` asks for speed).
        photo_crop_scales: the sizes, relative to the detector's framing, at which a photo's
            face is cropped and classified, its probabilities averaged over them; ``(1.0,)``
            crops once. Detectors without a measured framing (Haar) crop once.
        margin: extra border around each detected face, as a fraction of its side, for
            detectors whose boxes have no measured ``framing`` (RetinaFace's has).
        threads: ONNX Runtime intra-op threads (0: all cores).
        spinning: let ONNX Runtime's threads spin within a run: fastest alone; False where
            other busy threads share the cores (a server, a video's decoder and encoder).

    Example:
        >>> recognizer = EmotionRecognizer()
        >>> faces = recognizer(cv2.imread("photo.jpg"))  # [] when there is no face
        >>> faces[0].emotion, faces[0].confidence
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        detector: str | FaceDetector = "retinaface",
        margin: float = 0.1,
        threads: int = 0,
        spinning: bool = True,
        photo_detect_size: int | None = None,
        photo_crop_scales: Sequence[float] = PHOTO_CROP_SCALES,
    ):
        if len(photo_crop_scales) == 0 or not all(_positive(s) for s in photo_crop_scales):
            raise ValueError(f"photo_crop_scales must be positive numbers, got {photo_crop_scales!r}")
        self.classifier = EmotionClassifier(model_path, threads=threads, spinning=spinning)
        if isinstance(detector, str):
            detector = create_detector(detector, spinning=spinning)
            photo_detect_size = photo_detect_size or PHOTO_DETECT_SIDE
        self.detector = as_face_detector(detector)
        self.photo_detector = with_max_side(self.detector, photo_detect_size)
        self.margin = margin
        self.photo_crop_scales = tuple(float(s) for s in photo_crop_scales)

    def __call__(self, frame: np.ndarray) -> list[FaceResult]:
        """Faces in a photo: a BGR (or gray/BGRA) uint8 frame, largest first."""
        return self._recognize(frame, self.photo_detector, self.photo_crop_scales)

    def _recognize(
        self, frame: np.ndarray, detector: FaceDetector | StreamDetector, crop_scales: tuple[float, ...] = (1.0,)
    ) -> list[FaceResult]:
        check_frame(frame)
        detected_boxes, detected_scores = detector.detect(frame)
        if len(detected_boxes) == 0:
            return []
        largest_first = np.argsort([-(b[2] - b[0]) * (b[3] - b[1]) for b in detected_boxes], kind="stable")
        boxes = [_xyxy(detected_boxes[i]) for i in largest_first]
        scores = [_score(detected_scores, i) for i in largest_first]
        probabilities = self._classify_boxes(frame, boxes, detector.framing, crop_scales)
        return [
            FaceResult.from_probabilities(FaceBox(*box), p, score)
            for box, p, score in zip(boxes, probabilities, scores)
        ]

    def _classify_boxes(
        self,
        frame: np.ndarray,
        boxes: list[tuple[int, int, int, int]],
        framing: Framing | None,
        crop_scales: tuple[float, ...],
    ) -> np.ndarray:
        """(n, 7) probabilities of the faces in ``boxes``, averaged over the crops at ``crop_scales``."""
        framings = [framing.scaled(s) for s in crop_scales] if framing is not None else [None]
        crops = np.stack([crop_face(frame, box, self.margin, framing=f) for box in boxes for f in framings])
        return self.classifier.classify(crops).reshape(len(boxes), len(framings), -1).mean(1)

    def for_stream(self, *, full_every: int = 10) -> StreamRecognizer:
        """A recognizer for the frames of one video or camera, in order (see :class:`StreamRecognizer`)."""
        return StreamRecognizer(self, full_every=full_every)

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """(n, 48, 48) uint8 gray faces -> (n, 7) probabilities."""
        return self.classifier.classify(faces)


class StreamRecognizer:
    """The faces in consecutive frames of one video or camera; it shares a recognizer's models.

    It searches the whole frame every ``full_every`` frames (and whenever a face is lost or
    none is known) and in between only around the faces it knows, which makes detection
    several times cheaper (see :class:`StreamDetector`). It keeps that state between calls:
    one per stream, in one thread; :meth:`reset` after a seek or a scene cut.
    """

    def __init__(self, recognizer: EmotionRecognizer, *, full_every: int = 10):
        self.recognizer = recognizer
        self.detector = StreamDetector(recognizer.detector, full_every=full_every)

    def __call__(self, frame: np.ndarray) -> list[FaceResult]:
        """Faces in the stream's next frame, largest first."""
        return self.recognizer._recognize(frame, self.detector)

    def reset(self) -> None:
        """Forget where the faces were: the next frame is searched whole."""
        self.detector.reset()

    @property
    def classifier(self) -> EmotionClassifier:
        return self.recognizer.classifier
