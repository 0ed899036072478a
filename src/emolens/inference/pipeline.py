"""The one frame pipeline: every source's frames go through :class:`StreamProcessor`.

Video files (:func:`emolens.inference.video.process_video`), the browser's WebSocket
(:mod:`emolens.web.live`) and cameras and streams (``emolens watch``) differ in where frames
come from and where results go, not in what is done to a frame: check for a shot change,
recognise every Nth frame, track and smooth the faces, make the records. That step lives here
once, so a fix to it reaches every caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from emolens.errors import SettingsError
from emolens.inference.cuts import CutDetector
from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.tracker import FaceTracker, TrackedFace
from emolens.results import FaceRecord


@dataclass(frozen=True)
class Frame:
    """One frame from a source.

    Attributes:
        image: (h, w, 3) uint8 BGR, upright.
        time: seconds from the source's start (a file's own timestamps; for a live source
            the seconds since it was started, which keep counting across reconnects).
        index: the frame's number in the source (for a live source, frames decoded so far:
            gaps are frames dropped because the consumer was busy).
        wall_time: when the frame was captured here, Unix epoch seconds (UTC).
        dropped: frames dropped just before this one (live sources keep only the newest).
    """

    image: np.ndarray
    time: float
    index: int
    wall_time: float
    dropped: int = 0


@dataclass(frozen=True)
class FrameResult:
    """What the pipeline made of one frame.

    Attributes:
        frame: the frame itself.
        faces: the tracked faces shown on this frame (an unanalysed frame repeats the last ones).
        analysed: whether faces were recognised on this frame (or ``faces`` are carried over).
        cut: whether this frame starts a new shot (all tracks ended before it).
        shot: the shot's number, from 0.
        records: one :class:`~emolens.results.FaceRecord` per face if analysed, else empty.
        done_time: when the result was ready, Unix epoch seconds (latency = done_time - frame.wall_time).
    """

    frame: Frame
    faces: list[TrackedFace]
    analysed: bool
    cut: bool
    shot: int
    records: list[FaceRecord]
    done_time: float


class StreamProcessor:
    """The per-frame work for one stream of frames, in order: cuts, recognition, tracking.

    Keep one per stream (it holds the tracks, the detector's known faces and the cut
    detector's memory); the recognizer it is given may be shared.

    Args:
        recognizer: detector + classifier; a per-stream copy is made (see ``for_stream``).
        every_nth: recognise every Nth frame it is given (and each shot's first); the others
            reuse the last faces.
        full_every: search the whole frame for faces at least every this many frames.
        smoothing: weight of the past in each track's moving average of scores.
        max_missed: analysed frames a track may go unseen before it ends
            (default: ~10 frames' worth, at least 3).
        wall_time: add each frame's ``wall_time`` to its records (live sources).

    Example:
        >>> processor = StreamProcessor(recognizer, every_nth=2)
        >>> for result in run_stream(FileSource("clip.mp4"), processor):
        ...     print(result.records)
    """

    def __init__(
        self,
        recognizer: EmotionRecognizer,
        *,
        every_nth: int = 1,
        full_every: int = 10,
        smoothing: float = 0.6,
        max_missed: int | None = None,
        wall_time: bool = False,
    ):
        if every_nth < 1:
            raise SettingsError(f"every_nth must be >= 1, got {every_nth}")
        if full_every < 1:
            raise SettingsError(f"full_every must be >= 1, got {full_every}")
        self.every_nth, self.wall_time = every_nth, wall_time
        self.recognizer = recognizer.for_stream(full_every=max(1, full_every // every_nth))
        self.tracker = FaceTracker(
            max_missed=max(3, 10 // every_nth) if max_missed is None else max_missed, smoothing=smoothing
        )
        self.cuts = CutDetector()
        self.reset()

    def reset(self) -> None:
        """Start over as for a new stream: no tracks (ids from 1), no known faces, shot 0."""
        self.tracker.reset()
        self.recognizer.reset()
        self.cuts.reset()
        self.shot, self.frames_seen, self.frames_analysed = 0, 0, 0
        self._faces: list[TrackedFace] = []

    def step(self, frame: Frame) -> FrameResult:
        """Process the next frame.

        Every frame is checked for a shot change (~0.1 ms). At a cut all tracks end, so no
        track id spans two shots, the detector forgets where faces were, and the frame is
        analysed even when it is not an Nth one, so it never shows the last shot's faces.

        An analysed frame gives a :class:`~emolens.results.FaceRecord` per face, with the
        frame's ``wall_time`` if the processor was asked for it.
        """
        cut = self.cuts.update(frame.image)
        if cut:
            self.shot += 1
            self.tracker.end_all()
            self.recognizer.reset()
        analysed = cut or self.frames_seen % self.every_nth == 0
        self.frames_seen += 1
        records = []
        if analysed:
            self._faces = self.tracker.update(self.recognizer(frame.image))
            self.frames_analysed += 1
            wall_time = round(frame.wall_time, 3) if self.wall_time else None
            records = [
                FaceRecord.from_face(
                    tf.face,
                    track_id=tf.track_id,
                    time=round(frame.time, 4),
                    frame=frame.index,
                    shot=self.shot,
                    wall_time=wall_time,
                )
                for tf in self._faces
            ]
        return FrameResult(frame, list(self._faces), analysed, cut, self.shot, records, time.time())


def run_stream(
    frames: Iterable[Frame],
    processor: StreamProcessor,
    *,
    stop: threading.Event | None = None,
    duration: float | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
) -> int:
    """Feed a source's frames through a processor until it ends, ``stop`` is set or ``duration`` passes.

    The loop every source shares. A live source hands over only its newest frame, so a slow
    consumer skips frames instead of falling behind; a file gives every frame.

    Args:
        frames: a frame source (anything that yields :class:`Frame`).
        processor: the per-frame work.
        stop: set it (from any thread) to stop after the current frame.
        duration: stop after this many seconds of wall-clock time.
        on_result: called with each frame's :class:`FrameResult` (write, draw, send...).

    Returns:
        The number of frames processed.
    """
    deadline = None if duration is None else time.monotonic() + duration
    count = 0
    for frame in frames:
        if (stop is not None and stop.is_set()) or (deadline is not None and time.monotonic() >= deadline):
            break
        result = processor.step(frame)
        count += 1
        if on_result is not None:
            on_result(result)
    return count
