"""Face detectors: one interface, frame -> :class:`Detections` ((n, 4) int xyxy boxes, (n,) scores).

``haar`` is OpenCV's frontal-face cascade, as in the origin, tuned: it runs on a frame
downscaled to at most ``max_side`` pixels, dark frames get CLAHE contrast normalisation
first (which recovers dim faces), and overlapping boxes are merged.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import cv2
import cv2.data
import numpy as np

from emolens.errors import ModelLoadError, SettingsError
from emolens.inference._ort import cpu_session, reference_session
from emolens.preprocess import Framing, to_gray

if TYPE_CHECKING:
    from onnxruntime import InferenceSession


class Detections(NamedTuple):
    """The faces a detector found in one frame: ``boxes`` (n, 4) int32 xyxy in frame pixels,
    ``scores`` (n,) float32. A tuple, so ``boxes, scores = detector.detect(frame)`` works."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.int32), np.zeros(0, np.float32))


class FaceDetector(Protocol):
    """What emolens asks of a face detector.

    ``framing`` says how to crop the classifier's input around its boxes
    (:class:`~emolens.preprocess.Framing`); None gives the plain square crop.
    ``detect_many`` detects in several small frames at once (a stream's face regions):
    RetinaFace runs them as one batch; others may loop. A user's object with only
    ``detect`` is adapted by :func:`as_face_detector`.
    """

    @property
    def framing(self) -> Framing | None: ...

    def detect(self, frame: np.ndarray) -> Detections: ...

    def detect_many(self, frames: list[np.ndarray]) -> list[Detections]: ...


class _PerFrame:
    """A user's detector with only ``detect(frame)``: ``detect_many`` as a loop, no framing unless it has one."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self.framing = getattr(detector, "framing", None)

    def detect(self, frame: np.ndarray) -> Detections:
        return Detections(*self._detector.detect(frame))

    def detect_many(self, frames: list[np.ndarray]) -> list[Detections]:
        return [self.detect(f) for f in frames]


def as_face_detector(detector: object) -> FaceDetector:
    """``detector`` as a full :class:`FaceDetector`: emolens's own as they are, any other object
    with ``detect(frame) -> (boxes, scores)`` wrapped once, here, where it enters the library."""
    if isinstance(detector, (HaarFaceDetector, RetinaFaceDetector)):
        return detector
    if not callable(getattr(detector, "detect", None)):
        raise TypeError(f"a face detector needs a detect(frame) method; got {type(detector).__name__}")
    if callable(getattr(detector, "detect_many", None)) and hasattr(detector, "framing"):
        return cast(FaceDetector, detector)  # it has all FaceDetector asks for
    return _PerFrame(detector)


# A frame whose mean gray level is under this is dim: detectors equalise its contrast first.
DARK_MEAN = 80.0


def brighten_if_dark(gray: np.ndarray, *, dark_mean: float = DARK_MEAN) -> np.ndarray:
    """CLAHE on dark frames only: it recovers faces in poor light, but on well-lit frames a
    global stretch (equalizeHist) made the cascade miss faces it otherwise finds."""
    if gray.mean() >= dark_mean:
        return gray
    return cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)


def merge_overlapping(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3) -> Detections:
    """Non-maximum suppression: keep the best-scoring box of each overlapping group."""
    if len(boxes) == 0:
        return Detections(boxes.reshape(0, 4).astype(np.int32), scores.astype(np.float32))
    xywh = [[int(x1), int(y1), int(x2 - x1), int(y2 - y1)] for x1, y1, x2, y2 in boxes]
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh, scores.astype(float).tolist(), 0.0, iou_threshold), dtype=int).ravel()
    return Detections(boxes[keep].astype(np.int32), scores[keep].astype(np.float32))


def detection_scale(longer: int, max_side: int, enlarge_below: int) -> float:
    """How much a frame whose longer side is ``longer`` is resized by before detection: down to
    ``max_side``, or up to ``enlarge_below`` (never past ``max_side``) when it is smaller."""
    target = min(enlarge_below, max_side)
    if longer < target:
        return target / longer
    return min(1.0, max_side / longer)


# A face this many pixels tall is found, and boxed as the framing was fitted, at a small
# picture's own size; enlarging the picture only moves its box (PublicTest faces filling 160 px
# pictures: 0.08 points from direct as they are, 1.02 enlarged; benchmarks/framing.py).
NATIVE_FACE_PX = 100


def detect_whole_picture(detect_one: Callable[..., Detections], frame: np.ndarray, enlarge_to: int) -> Detections:
    """Detection in a whole picture with ``detect_one(frame, enlarge=...)``. A picture under
    ``enlarge_to`` px is searched at its own size first, and enlarged and searched again only
    when that shows no face :data:`NATIVE_FACE_PX` tall: the enlargement is for small faces."""
    found = detect_one(frame, enlarge=False)
    if max(frame.shape[:2]) >= enlarge_to:
        return found
    heights = found.boxes[:, 3] - found.boxes[:, 1]
    if len(heights) and heights.max() >= NATIVE_FACE_PX:
        return found
    return detect_one(frame, enlarge=True)


def resized_for_detection(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale``: by area when shrinking, cubic when enlarging."""
    if scale == 1:
        return image
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (the origin's detector), tuned.

    ``CascadeClassifier`` objects are not thread-safe, so each thread gets its own. Frames are
    shrunk to ``max_side`` and small whole frames enlarged to ``enlarge_below`` as for RetinaFace.
    """

    framing: Framing | None = None  # not measured for the cascade: the plain square crop

    def __init__(
        self,
        *,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 36,
        max_side: int = 640,
        enlarge_below: int = 320,
        equalize_dark: bool = True,
    ):
        self.equalize_dark, self.enlarge_below = equalize_dark, enlarge_below
        self.cascade_path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
        if cv2.CascadeClassifier(self.cascade_path).empty():
            raise ModelLoadError(
                f"cannot load Haar cascade {self.cascade_path} (OpenCV 5 wheels ship none; use opencv<5)"
            )
        self.scale_factor, self.min_neighbors, self.min_size, self.max_side = (
            scale_factor,
            min_neighbors,
            min_size,
            max_side,
        )
        self._local = threading.local()

    def _cascade(self) -> cv2.CascadeClassifier:
        if not hasattr(self._local, "cascade"):
            self._local.cascade = cv2.CascadeClassifier(self.cascade_path)
        return self._local.cascade

    def detect_many(self, frames: list[np.ndarray]) -> list[Detections]:
        return [self._detect_one(f, enlarge=False) for f in frames]

    def detect(self, frame: np.ndarray) -> Detections:
        return detect_whole_picture(self._detect_one, frame, min(self.enlarge_below, self.max_side))

    def _detect_one(self, frame: np.ndarray, *, enlarge: bool) -> Detections:
        gray = to_gray(frame)
        scale = detection_scale(max(gray.shape[:2]), self.max_side, self.enlarge_below if enlarge else 0)
        small = resized_for_detection(gray, scale)
        if self.equalize_dark:
            small = brighten_if_dark(small)
        min_side = max(12, int(round(self.min_size * scale)))
        rects, _, weights = self._cascade().detectMultiScale3(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return Detections.empty()
        xywh = np.asarray(rects, dtype=np.float64) / scale
        boxes = np.column_stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]])
        return merge_overlapping(np.round(boxes).astype(np.int32), np.asarray(weights, np.float32).ravel())


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25 (ONNX, shipped in the package), run with ONNX Runtime.

    Finds turned, small and dim faces that the Haar cascade misses. The frame is
    downscaled so its longer side is at most ``max_side`` before detection, and a whole frame
    whose longer side is under ``enlarge_below`` is enlarged to it unless it already shows a
    face :data:`NATIVE_FACE_PX` tall: RetinaFace misses most faces that fill a small picture (a
    48x48 FER2013 face: 37% found as it is, 99% enlarged to 320). The regions a stream searches
    (:meth:`detect_many`) keep their size. Thread-safe
    (one shared ONNX Runtime session); ``spinning=False`` where other busy threads share the
    cores (see :func:`emolens.inference._ort.cpu_session`); ``reference=True`` runs ONNX
    Runtime's reference path, what the fast kernels are checked against.
    """

    # FER2013's crop around RetinaFace's box: medians over 3,962 training faces
    # (benchmarks/framing.py); the box is tall and narrow (x 0.10-0.91, y 0.01-1.03 of the 48 px frame).
    framing = Framing(side=0.9746, dx=-0.0064, dy=-0.0117)
    _STRIDES = (8, 16, 32)
    _SIZES = ((16, 32), (64, 128), (256, 512))
    _MEAN_BGR = np.array([104, 117, 123], np.float32)

    def __init__(
        self,
        *,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.4,
        max_side: int = 640,
        min_size: int = 20,
        enlarge_below: int = 320,
        threads: int = 0,
        model_path: str | None = None,
        equalize_dark: bool = True,
        spinning: bool = True,
        reference: bool = False,
    ):
        self.equalize_dark = equalize_dark
        path = model_path or self.default_model_path()
        self._session = (
            reference_session(path, threads=threads)
            if reference
            else cpu_session(path, threads=threads, spinning=spinning)
        )
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.max_side, self.min_size, self.enlarge_below = max_side, min_size, enlarge_below

    @property
    def session(self) -> InferenceSession:
        """The ONNX Runtime session (for profiling, or to read its settings)."""
        return self._session

    @staticmethod
    def default_model_path() -> Path:
        """RetinaFace (MobileNet-0.25), shipped inside the package."""
        return Path(__file__).resolve().parent.parent / "models" / "retinaface_mnet025.onnx"

    def _anchors_for(self, height: int, width: int) -> np.ndarray:
        """(n, 4) anchors cx, cy, w, h in pixels, in the network's output order."""
        return _anchor_grid(height, width, self._STRIDES, self._SIZES)

    def _prepare(self, frame: np.ndarray, *, enlarge: bool = True) -> tuple[np.ndarray, float]:
        """The network's input for ``frame`` (1, 3, h, w) float, and the scale it was resized by."""
        bgr = (
            cv2.cvtColor(to_gray(frame), cv2.COLOR_GRAY2BGR)
            if frame.ndim == 2 or frame.shape[2] == 1
            else frame[:, :, :3]
        )
        scale = detection_scale(max(bgr.shape[:2]), self.max_side, self.enlarge_below if enlarge else 0)
        small = resized_for_detection(bgr, scale)
        if self.equalize_dark and to_gray(small).mean() < DARK_MEAN:  # equalise lightness, keep colour
            lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB)
            lab[:, :, 0] = brighten_if_dark(lab[:, :, 0])
            small = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        # blobFromImage: NCHW float minus the mean in one pass (0.5 ms at 640x480; numpy took ~2.5)
        blob = cv2.dnn.blobFromImage(
            np.ascontiguousarray(small), 1.0, size=(0, 0), mean=self._MEAN_BGR.tolist(), swapRB=False, crop=False
        )  # size (0, 0): the image's own
        return blob, scale

    def detect(self, frame: np.ndarray) -> Detections:
        return detect_whole_picture(self._detect_one, frame, min(self.enlarge_below, self.max_side))

    def _detect_one(self, frame: np.ndarray, *, enlarge: bool) -> Detections:
        x, scale = self._prepare(frame, enlarge=enlarge)
        loc, conf, _ = self._session.run(None, {"input": x})
        return self._decode(loc[0], conf[0, :, 1], self._anchors_for(*x.shape[2:]), scale, frame.shape[:2])

    def detect_many(self, frames: list[np.ndarray]) -> list[Detections]:
        """Detection in each of several small frames (a stream's face regions) in one run, each
        at its own size (a region is not enlarged as a whole small picture is).

        Each network input is padded at its bottom and right with the mean colour (zero
        after subtracting it) to the largest of them, so one batched run replaces a run per
        frame and its fixed cost.
        """
        if len(frames) < 2:
            return [self._detect_one(f, enlarge=False) for f in frames]
        prepared = [self._prepare(f, enlarge=False) for f in frames]
        height = max(x.shape[2] for x, _ in prepared)
        width = max(x.shape[3] for x, _ in prepared)
        batch = np.zeros((len(frames), 3, height, width), np.float32)
        for i, (x, _) in enumerate(prepared):
            batch[i, :, : x.shape[2], : x.shape[3]] = x[0]
        loc, conf, _ = self._session.run(None, {"input": batch})
        anchors = self._anchors_for(height, width)
        return [
            self._decode(loc[i], conf[i, :, 1], anchors, scale, frame.shape[:2])
            for i, ((_, scale), frame) in enumerate(zip(prepared, frames))
        ]

    def _decode(
        self, loc: np.ndarray, scores: np.ndarray, anchors: np.ndarray, scale: float, shape: tuple[int, int]
    ) -> Detections:
        """Boxes in the original frame's pixels from one input's box offsets and face scores."""
        h0, w0 = shape
        keep = scores > self.score_threshold
        if not keep.any():
            return Detections.empty()
        anchors, loc, scores = anchors[keep], loc[keep], scores[keep]
        centre = anchors[:, :2] + loc[:, :2] * 0.1 * anchors[:, 2:]
        size = anchors[:, 2:] * np.exp(loc[:, 2:] * 0.2)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1) / scale
        boxes = np.clip(np.round(boxes), 0, [w0, h0, w0, h0]).astype(np.int32)
        big = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= self.min_size
        return merge_overlapping(boxes[big], scores[big], self.nms_threshold)


# Bounded: a stream's face regions come in many sizes (every shape up to 128x128), and a cache
# keyed by size without a bound grew for hours (~0.2 MiB every 10 s on a 30 fps stream).
@functools.lru_cache(maxsize=64)
def _anchor_grid(height: int, width: int, strides: tuple[int, ...], sizes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    parts = []
    for stride, cell_sizes in zip(strides, sizes):
        ny, nx = -(-height // stride), -(-width // stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xx.ravel() + 0.5) * stride, (yy.ravel() + 0.5) * stride], 1)
        for_cell = [np.column_stack([centres, np.full((len(centres), 2), s)]) for s in cell_sizes]
        parts.append(np.stack(for_cell, 1).reshape(-1, 4))
    grid = np.concatenate(parts).astype(np.float32)
    grid.setflags(write=False)  # shared between calls and threads
    return grid


DETECTORS = {"haar": HaarFaceDetector, "retinaface": RetinaFaceDetector}


MIN_DETECT_SIDE = 64  # below this even a close face is too few pixels for either detector

# Photos are detected larger than video frames: a 4000x3000 phone photo shrunk to 640 px loses
# every face under ~80 px wide (a group photo's), at 1280 only those under ~63 px, for one
# detection of ~90 ms instead of ~45 (benchmarks/big_photo.py); a frame of 1280 px or less is
# not shrunk at all. Video keeps 640, where every frame's detection counts.
PHOTO_DETECT_SIDE = 1280


def check_detector(name: str, options: dict[str, Any]) -> None:
    """Refuse an unknown detector or option, or a bad size, before anything is loaded: the CLI's
    flags and the web server's ``DETECTOR``/``DETECTOR_OPTIONS`` settings go through here.

    Raises:
        ValueError: naming the setting and what it accepts.
    """
    if name not in DETECTORS:
        raise SettingsError(f"unknown detector {name!r}; choose from {', '.join(sorted(DETECTORS))}")
    accepted = set(inspect.signature(DETECTORS[name]).parameters) - {"spinning"}  # create_detector's own argument
    unknown = set(options) - accepted
    if unknown:
        raise SettingsError(
            f"unknown {name} detector option(s) {', '.join(sorted(unknown))}; it takes {', '.join(sorted(accepted))}"
        )
    side = options.get("max_side")
    if side is not None and (not isinstance(side, int) or side < MIN_DETECT_SIDE):
        raise SettingsError(f"the detection size (max_side) must be at least {MIN_DETECT_SIDE} pixels, got {side!r}")


def photo_detect_side(photo: int | None, video: int | None) -> int:
    """The size photos are detected at where a tool has both settings (``--photo-detect-size``
    and ``--detect-size``): the photos' own if set, else the one set for video frames (a user who
    shrank detection for speed keeps that speed), else :data:`PHOTO_DETECT_SIDE`."""
    return photo or video or PHOTO_DETECT_SIDE


def with_max_side(detector: FaceDetector, max_side: int | None) -> FaceDetector:
    """``detector`` shrinking frames to ``max_side`` instead, sharing its models (the same
    RetinaFace session, the same per-thread cascades); None, or a detector not emolens's own
    (which has no such setting), gives ``detector`` itself.

    Raises:
        SettingsError: ``max_side`` is under :data:`MIN_DETECT_SIDE`.
    """
    if max_side is None or not isinstance(detector, (HaarFaceDetector, RetinaFaceDetector)):
        return detector
    check_detector("haar" if isinstance(detector, HaarFaceDetector) else "retinaface", {"max_side": max_side})
    if max_side == detector.max_side:
        return detector
    resized = copy.copy(detector)
    resized.max_side = max_side
    return resized


def create_detector(name: str = "retinaface", *, spinning: bool = True, **kwargs: Any) -> FaceDetector:
    """A detector by name (RetinaFace by default, as everywhere else), with its options
    (checked by :func:`check_detector`).

    ``spinning`` reaches the detectors that run ONNX Runtime (see :func:`cpu_session`); the
    Haar cascade has no threads to spin, so callers need not know which detector it is.
    """
    check_detector(name, kwargs)
    if name == "retinaface":
        kwargs["spinning"] = spinning
    return DETECTORS[name](**kwargs)
