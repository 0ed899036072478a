"""Typed results: FaceBox, FaceResult and FaceRecord (frozen dataclasses; to_dict() for JSON)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emolens.labels import EMOTIONS

# Below this top score a face is reported as uncertain. The shipped models' scores are
# calibrated (expected calibration error 2-4% on PublicTest, clean and degraded), so a top
# score under one half means the label is more likely wrong than right: on PublicTest the
# accurate model is right on 43% of the faces it flags (19% of them) and on 79% of the rest.
UNCERTAIN_BELOW = 0.5


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face rectangle in input-frame pixels, xyxy (x2, y2 exclusive)."""

    x1: int
    y1: int
    x2: int
    y2: int

    def __post_init__(self) -> None:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError(f"empty box: ({self.x1}, {self.y1}, {self.x2}, {self.y2})")

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def to_list(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is, its most likely emotion and the probabilities over EMOTIONS.

    ``detection_score`` is the face detector's confidence that this is a face (RetinaFace: a
    probability; Haar: its cascade weight, not bounded by 1), None where no detector gave one.
    """

    box: FaceBox
    scores: dict[str, float]
    detection_score: float | None = None

    @property
    def emotion(self) -> str:
        return max(self.scores, key=self.scores.__getitem__)

    @property
    def confidence(self) -> float:
        return self.scores[self.emotion]

    @property
    def uncertain(self) -> bool:
        """True when the top emotion is more likely wrong than right (see UNCERTAIN_BELOW)."""
        return self.confidence < UNCERTAIN_BELOW

    @classmethod
    def from_probabilities(
        cls, box: FaceBox, probabilities: Iterable[float], detection_score: float | None = None
    ) -> FaceResult:
        score = None if detection_score is None else round(float(detection_score), 4)
        return cls(box, {name: float(p) for name, p in zip(EMOTIONS, probabilities)}, score)

    def to_dict(self) -> dict:
        return {
            "box": self.box.to_list(),
            "detection_score": self.detection_score,
            "emotion": self.emotion,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "scores": dict(self.scores),
        }


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One face on one analysed frame of a video or stream: when, which track, where, what.

    What every per-frame output is made of: the video's CSV and JSON, ``emolens watch``'s
    JSON Lines and CSV, the batch's faces table, a camera's ``/records``. :meth:`to_dict`
    is its JSON form; the writers never build records of their own.

    Attributes:
        time: seconds from the source's start (see ``Frame.time``; the pipeline rounds it to 0.1 ms).
        frame: the frame's index in the source.
        shot: the shot's number, from 0; a scene cut starts the next.
        track_id: the face's track, from 1; a track never spans two shots.
        box: the face in frame pixels.
        detection_score: the detector's confidence (see :class:`FaceResult`), or None.
        probabilities: the track's smoothed scores, one per ``EMOTIONS`` entry, in its order
            (a tuple, so a record cannot be changed after the writers have seen it).
        wall_time: when the frame was captured, Unix epoch seconds (the pipeline rounds it to
            1 ms); None unless the processor was asked for it (live sources).

    Example:
        >>> record = FaceRecord.from_face(face, track_id=1, time=0.5, frame=15, shot=0)
        >>> record.emotion, record.scores["happy"], record.to_dict()["box"]
    """

    time: float
    frame: int
    shot: int
    track_id: int
    box: FaceBox
    detection_score: float | None
    probabilities: tuple[float, ...]
    wall_time: float | None = None

    def __post_init__(self) -> None:
        if len(self.probabilities) != len(EMOTIONS):
            raise ValueError(
                f"probabilities must have one value per emotion ({len(EMOTIONS)}), got {len(self.probabilities)}"
            )

    @classmethod
    def from_face(
        cls, face: FaceResult, *, track_id: int, time: float, frame: int, shot: int, wall_time: float | None = None
    ) -> FaceRecord:
        """The record of a (tracked) face seen on a frame."""
        probabilities = tuple(face.scores[e] for e in EMOTIONS)
        return cls(time, frame, shot, track_id, face.box, face.detection_score, probabilities, wall_time)

    @property
    def face(self) -> FaceResult:
        """The face part as a :class:`FaceResult` (the same emotion, confidence and JSON fields)."""
        return FaceResult(self.box, self.scores, self.detection_score)

    @property
    def scores(self) -> dict[str, float]:
        """The probabilities by emotion name, in ``EMOTIONS`` order (a new dict each time)."""
        return dict(zip(EMOTIONS, self.probabilities))

    @property
    def emotion(self) -> str:
        return self.face.emotion

    @property
    def confidence(self) -> float:
        return self.face.confidence

    @property
    def uncertain(self) -> bool:
        return self.face.uncertain

    def to_dict(self) -> dict:
        """``time``, ``frame``, ``shot``, ``wall_time`` (if any), ``track_id``, then :meth:`FaceResult.to_dict`."""
        stamp: dict[str, Any] = {"time": self.time, "frame": self.frame, "shot": self.shot}
        if self.wall_time is not None:
            stamp["wall_time"] = self.wall_time
        return {**stamp, "track_id": self.track_id, **self.face.to_dict()}

    def __getitem__(self, key: str) -> Any:
        """Records used to be dicts: ``record["emotion"]`` still works, with a warning."""
        if not isinstance(key, str):  # so that iteration and ``in`` fail plainly instead of coming here
            raise TypeError("a FaceRecord is neither a sequence nor a mapping: use its attributes or to_dict()")
        warnings.warn(
            f"records are FaceRecord objects now: use record.{key} (or record.to_dict()[{key!r}])",
            FutureWarning,
            stacklevel=2,
        )
        return self.to_dict()[key]
