"""One camera read in the background: source -> pipeline -> the newest annotated JPEG for viewers.

Recognition runs once per camera, however many browsers watch it: the worker keeps the
newest result (one JPEG, encoded once per frame, with its faces and state) behind a
condition, and each viewer takes the newest one whenever it is ready for another. A slow
viewer therefore skips frames and never queues them, and costs no more than its sends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2

from emolens.errors import SourceError
from emolens.inference.live_source import LiveSource, SourceState, SourceStatus
from emolens.inference.pipeline import FrameResult, StreamProcessor, run_stream
from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.urls import mask_credentials
from emolens.results import FaceRecord

logger = logging.getLogger(__name__)

JPEG_QUALITY = 80


@dataclass(frozen=True)
class Snapshot:
    """What viewers are shown: the newest annotated frame and what was found on it.

    Attributes:
        seq: the frame's number among this worker's results, from 1 (0: no frame yet).
        jpeg: the annotated frame, JPEG bytes ("" before the first frame).
        width, height: the frame's size in pixels.
        faces: the tracked faces' ``to_dict()``.
        wall_time: when the frame was captured, Unix epoch seconds.
        fps: frames per second through the pipeline, over the last few seconds.
    """

    seq: int = 0
    jpeg: bytes = b""
    width: int = 0
    height: int = 0
    faces: list[dict] = field(default_factory=list)
    wall_time: float = 0.0
    fps: float = 0.0


class CameraWorker:
    """Read ``spec`` on a thread, recognise faces, keep the newest snapshot and recent records.

    Args:
        spec: a stream URL or device path (already checked with ``check_live_spec``).
        recognizer: shared; the worker makes its own per-stream processor.
        every_nth: recognise every Nth frame.
        retry_first: keep trying if the first connection fails (a camera resumed at boot may
            still be starting); a camera just added fails at once so that a typo is reported.
        on_status: called with each state change (the store records it).
        max_records, max_age_s: recent records kept for ``/records``: whichever bound is hit first.
    """

    def __init__(
        self,
        spec: str,
        recognizer: EmotionRecognizer,
        *,
        every_nth: int = 1,
        retry_first: bool = False,
        on_status: Callable[[SourceStatus], None] | None = None,
        max_records: int = 20_000,
        max_age_s: float = 600.0,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
    ):
        self.spec, self.every_nth, self.retry_first = spec, every_nth, retry_first
        self.recognizer, self.on_status = recognizer, on_status
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.max_age_s = max_age_s
        self.status = SourceStatus(SourceState.CONNECTING, "", time.time())
        self.snapshot = Snapshot()
        self.steps = 0  # frames through the pipeline: once per frame, whatever the viewers
        self._records: deque[FaceRecord] = deque(maxlen=max_records)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._source: LiveSource | None = None
        self._times: deque[float] = deque(maxlen=30)
        self._thread: threading.Thread | None = None

    def start(self) -> CameraWorker:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="emolens-camera", daemon=True)
            self._thread.start()
        return self

    def stop(self, wait: float = 3.0) -> None:
        """Stop reading and wait up to ``wait`` s for the thread; the state becomes stopped."""
        self._stop.set()
        source = self._source
        if source is not None:  # stop, not close: its thread may be starting (close joins it); _run closes
            source.stop()
        self._set_status(SourceStatus(SourceState.STOPPED, "", time.time()))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_newer(self, seq: int, state: tuple[str, str], timeout: float) -> tuple[Snapshot, tuple[str, str]]:
        """The newest snapshot and (state, reason) once the snapshot is newer than ``seq`` or the
        state differs from ``state``, or after ``timeout`` s (then they may be unchanged)."""

        def shown() -> tuple[str, str]:
            return self.status.state.value, self.status.reason

        with self._cond:
            self._cond.wait_for(lambda: self.snapshot.seq > seq or shown() != state, timeout)
            return self.snapshot, shown()

    def records(self, since: float | None = None, limit: int = 5000) -> list[FaceRecord]:
        """Recent records (newest last) with ``wall_time`` after ``since``; at most the last ``limit``."""
        with self._cond:
            kept = list(self._records)
        if since is not None:
            kept = [r for r in kept if _captured(r) > since]
        return kept[-limit:]

    def _run(self) -> None:
        from emolens.inference.sources import open_source

        source = open_source(
            self.spec,
            open_timeout=self.open_timeout,
            read_timeout=self.read_timeout,
            retry_first=self.retry_first,
            backoff=(0.5, 15.0),
            on_status=self._set_status,
        )
        if not isinstance(source, LiveSource):  # check_live_spec refuses files; this is its invariant
            raise SourceError(f"{mask_credentials(self.spec)} is not a live source")
        self._source = source
        if self._stop.is_set():  # stopped while opening
            source.close(wait=0)
            return
        processor = StreamProcessor(self.recognizer, every_nth=self.every_nth, wall_time=True)
        try:
            run_stream(source, processor, stop=self._stop, on_result=self._publish)
        except SourceError:  # the state (failed: reason) says it; the message would repeat it
            pass
        except Exception as exc:  # a camera's failure is shown in its state, never raised into nothing
            logger.exception("camera %s failed", mask_credentials(self.spec))
            self._set_status(SourceStatus(SourceState.FAILED, f"internal error: {type(exc).__name__}", time.time()))
        finally:
            source.close(wait=0)

    def _set_status(self, status: SourceStatus) -> None:
        with self._cond:
            if (
                self.status.state in (SourceState.STOPPED, SourceState.FAILED)
                and status.state is not SourceState.STOPPED
            ):
                return
            if status.state is self.status.state and status.reason == self.status.reason:
                return
            self.status = status
            self._cond.notify_all()
        if self.on_status is not None:
            self.on_status(status)

    def _publish(self, result: FrameResult) -> None:
        """Annotate and encode the frame once, and hand it to every viewer at once."""
        from emolens.inference.annotate import draw_tracked

        image = result.frame.image
        ok, jpeg = cv2.imencode(".jpg", draw_tracked(image, result.faces), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        now = time.monotonic()
        self._times.append(now)
        span = now - self._times[0]
        fps = (len(self._times) - 1) / span if span > 0 else 0.0
        cutoff = time.time() - self.max_age_s
        with self._cond:
            self.steps += 1
            self._records.extend(result.records)
            while self._records and _captured(self._records[0]) < cutoff:
                self._records.popleft()
            if ok:
                self.snapshot = Snapshot(
                    self.snapshot.seq + 1,
                    jpeg.tobytes(),
                    image.shape[1],
                    image.shape[0],
                    [f.to_dict() for f in result.faces],
                    result.frame.wall_time,
                    round(fps, 1),
                )
            self._cond.notify_all()


def _captured(record: FaceRecord) -> float:
    """When the record's frame was captured: the worker's processor stamps every record (wall_time=True)."""
    assert record.wall_time is not None
    return record.wall_time
