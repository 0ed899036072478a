"""Typed results: FaceBox and FaceResult (frozen dataclasses; to_dict() for JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from emolens.labels import EMOTIONS

# Below this top score a face is reported as uncertain. The shipped models' scores are
# calibrated (expected calibration error 2-4% on PublicTest, clean and degraded), so a top
# score under one half means the label is more likely wrong than right: on PublicTest the
# accurate model is right on 43% of the faces it flags (19% of them) and on 79% of the rest.
UNCERTAIN_BELOW = 0.5


@dataclass(frozen=True)
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
