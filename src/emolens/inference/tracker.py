"""Face tracking across frames (greedy IoU matching) with per-track score smoothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emolens.errors import SettingsError
from emolens.labels import EMOTIONS
from emolens.results import FaceResult


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (n, 4) x (m, 4) -> (n, m)."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class Track:
    track_id: int
    box: np.ndarray
    scores: np.ndarray  # smoothed probabilities over EMOTIONS
    missed: int = 0


@dataclass(frozen=True)
class TrackedFace:
    """A face in one frame with its track id and smoothed scores."""

    track_id: int
    face: FaceResult  # scores here are the smoothed ones

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, **self.face.to_dict()}


class FaceTracker:
    """Keep a stable id per face and smooth its scores so labels do not flicker.

    Args:
        iou_threshold: minimum IoU between a track's last box and a new box to match.
        max_missed: processed frames a track may go unseen before it ends.
        smoothing: weight of the past in the exponential moving average of scores
            (0 = no smoothing, 0.6 = about the last 2.5 updates).
    """

    def __init__(self, *, iou_threshold: float = 0.3, max_missed: int = 10, smoothing: float = 0.6):
        if not 0 <= smoothing < 1:
            raise SettingsError(f"smoothing must be in [0, 1), got {smoothing}")
        self.iou_threshold, self.max_missed, self.smoothing = iou_threshold, max_missed, smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    def end_all(self) -> None:
        """End every track (at a scene cut): the next faces get new ids, never reused ones.

        Matching is by box overlap, so across a cut it would hand a track to whoever stands
        where its face was, mixing two people's scores under one id.
        """
        self.tracks = []

    def reset(self) -> None:
        """Start over as new (a new stream): no tracks, and ids count from 1 again."""
        self.end_all()
        self._next_id = 1

    def update(self, faces: list[FaceResult]) -> list[TrackedFace]:
        boxes = np.array([f.box.to_list() for f in faces], float).reshape(-1, 4)
        probs = np.array([[f.scores[e] for e in EMOTIONS] for f in faces], float).reshape(-1, len(EMOTIONS))
        matched: dict[int, Track] = {}
        if self.tracks and len(faces):
            overlap = iou(np.stack([t.box for t in self.tracks]), boxes)
            while True:
                t, d = (int(i) for i in np.unravel_index(np.argmax(overlap), overlap.shape))
                if overlap[t, d] < self.iou_threshold:
                    break
                matched[d] = self.tracks[t]
                overlap[t, :] = -1
                overlap[:, d] = -1
        for old in self.tracks:
            old.missed += 1
        out = []
        for d, face in enumerate(faces):
            found = matched.get(d)
            if found is None:
                track = Track(self._next_id, boxes[d], probs[d])
                self._next_id += 1
                self.tracks.append(track)
            else:
                track = found
                track.scores = self.smoothing * track.scores + (1 - self.smoothing) * probs[d]
                track.box = boxes[d]
            track.missed = 0
            out.append(
                TrackedFace(track.track_id, FaceResult.from_probabilities(face.box, track.scores, face.detection_score))
            )
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out
