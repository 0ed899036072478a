"""Cameras and network streams as frame sources that stay live for hours.

A reader thread decodes the stream as fast as it arrives and keeps only the newest frame
(a one-slot holder), so a consumer slower than the camera skips frames instead of falling
behind: latency stays one frame's processing, and memory one frame, however long it runs.
When the stream drops (camera rebooted, network gone, server restarted), the thread opens
it again with exponential backoff, and the consumer just waits for the next frame.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from emolens.errors import SourceError
from emolens.inference.pipeline import Frame
from emolens.inference.urls import mask_credentials

logger = logging.getLogger(__name__)


class SourceState(enum.Enum):
    """Where a live source stands."""

    CONNECTING = "connecting"  # opening for the first time
    LIVE = "live"  # frames are arriving
    RECONNECTING = "reconnecting"  # the stream dropped; opening it again with backoff
    STOPPED = "stopped"  # stopped by its owner
    FAILED = "failed"  # gave up; ``reason`` says why


@dataclass(frozen=True)
class SourceStatus:
    """A state, why it was entered (an error's words, or ""), and when (Unix epoch seconds)."""

    state: SourceState
    reason: str = ""
    since: float = 0.0

    def __str__(self) -> str:
        return f"{self.state.value}: {self.reason}" if self.reason else self.state.value


class LiveSource:
    """A stream read on a thread of its own, newest frame only.

    Iterating yields each new frame once (``Frame.dropped`` says how many were skipped
    before it) until the source is stopped or fails. Use it as a context manager, or call
    :meth:`start` and :meth:`stop`.

    Args:
        url: what FFmpeg opens: ``rtsp://``, ``http(s)://`` (MPEG-TS, HLS, MJPEG...); cameras
            are :class:`~emolens.inference.sources.DeviceSource`, which reads them another way.
        format: FFmpeg input format when it cannot be guessed (``"mpegts"``).
        options: FFmpeg options for the input (``{"rtsp_transport": "tcp"}``).
        open_timeout: seconds to wait for the stream to open.
        read_timeout: seconds without data before the stream counts as dropped.
        backoff: first and longest wait between reconnection attempts (doubling).
        retry_first: keep trying when the very first open fails; if False (the default), the
            source fails at once, so that a mistyped address is reported rather than retried.
        on_status: called with each new :class:`SourceStatus`, in order, from the thread that
            changed it (the reader's, or the one that called :meth:`stop`); keep it short.

    Example:
        >>> with LiveSource("rtsp://camera.local/stream") as source:
        ...     for frame in source:
        ...         print(frame.index, source.status)
    """

    def __init__(
        self,
        url: str,
        *,
        format: str | None = None,
        options: dict[str, str] | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        backoff: tuple[float, float] = (0.5, 8.0),
        retry_first: bool = False,
        on_status: Callable[[SourceStatus], None] | None = None,
    ):
        self.url, self.format, self.options = url, format, dict(options or {})
        self.open_timeout, self.read_timeout, self.backoff = open_timeout, read_timeout, backoff
        self.retry_first, self.on_status = retry_first, on_status
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._decoded = 0  # frames decoded so far (the next frame's index)
        self._taken = -1  # index of the last frame handed out
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self.reconnects = 0
        self.status = SourceStatus(SourceState.CONNECTING, "", time.time())

    @property
    def state(self) -> SourceState:
        return self.status.state

    def start(self) -> LiveSource:
        """Start the reader thread (once)."""
        if self._thread is None:
            self._start = time.monotonic()
            self._thread = threading.Thread(
                target=self._run, name=f"emolens-source {mask_credentials(self.url)}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading; iteration ends after the frame in hand. Safe from any thread, and twice."""
        self._stopping.set()
        self._set(SourceState.STOPPED)

    def close(self, wait: float = 2.0) -> None:
        """Stop, and wait up to ``wait`` s for the reader thread to let go of the stream.

        A thread blocked in FFmpeg (opening an address that does not answer) notices the stop
        only when FFmpeg's own timeout ends; Ctrl-C should not wait that long, so it is left to
        finish on its own (it is a daemon thread and holds nothing but the connection).
        """
        self.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)

    def __enter__(self) -> LiveSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet handed out, waiting up to ``timeout`` s; None if none came or it ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._fresh() or self._ended(), timeout)
            frame = self._newest
            if frame is None or not self._fresh():
                return None
            dropped = frame.index - self._taken - 1
            self._taken = frame.index
        return Frame(frame.image, frame.time, frame.index, frame.wall_time, dropped)

    def __iter__(self) -> Iterator[Frame]:
        """Each new frame once, until stopped; raises :class:`SourceError` if the source fails."""
        self.start()
        while True:
            frame = self.read(timeout=0.5)  # wakes now and then so that Ctrl-C is seen
            if frame is not None:
                yield frame
            elif self.state is SourceState.FAILED:
                raise SourceError(f"{mask_credentials(self.url)}: {self.status.reason}")
            elif self._stopping.is_set():
                return

    def _fresh(self) -> bool:
        return self._newest is not None and self._newest.index > self._taken

    def _ended(self) -> bool:
        return self._stopping.is_set() or self.state is SourceState.FAILED

    def _set(self, state: SourceState, reason: str = "") -> None:
        """Move to a state, under the lock: stopped and failed are final, and once stopping,
        the reader thread (which may be mid-frame) cannot make the source live again."""
        with self._cond:
            current = self.status
            if current.state in (SourceState.STOPPED, SourceState.FAILED):
                return
            if (self._stopping.is_set() and state is not SourceState.STOPPED) or (
                state is current.state and reason == current.reason
            ):
                return
            self.status = SourceStatus(state, reason, time.time())
            logger.debug("%s: %s", mask_credentials(self.url), self.status)
            if self.on_status is not None:  # under the lock, so that callbacks come in order
                self.on_status(self.status)
            self._cond.notify_all()

    def _run(self) -> None:
        """Open, read until the stream drops, wait, open again; until stopped."""
        import av

        wait = self.backoff[0]
        ever_live = False
        while not self._stopping.is_set():
            try:
                for image in self._decode():
                    self._put(image)
                    if self.state is not SourceState.LIVE:
                        self._set(SourceState.LIVE)
                        ever_live, wait = True, self.backoff[0]
                reason = "the stream ended"
            except (av.FFmpegError, OSError, SourceError) as exc:
                reason = describe_error(exc)
            if self._stopping.is_set():
                break
            if not ever_live and not self.retry_first:
                self._set(SourceState.FAILED, reason)
                return
            self._set(SourceState.RECONNECTING, f"{reason}; retrying in {wait:g} s")
            self.reconnects += 1
            if self._stopping.wait(wait):
                break
            wait = min(wait * 2, self.backoff[1])

    def _decode(self) -> Iterator:
        """Decoded BGR images of one connection, until it ends or fails."""
        import av

        container = av.open(
            self.url, format=self.format, options=self.options, timeout=(self.open_timeout, self.read_timeout)
        )
        try:
            if not container.streams.video:
                raise SourceError("no video in this stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if self._stopping.is_set():
                    return
                yield frame.to_ndarray(format="bgr24")
        finally:
            container.close()

    def _put(self, image: np.ndarray) -> None:
        frame = Frame(image, time.monotonic() - self._start, self._decoded, time.time())
        with self._cond:
            self._newest = frame  # the one slot: an unread older frame is dropped here
            self._decoded += 1
            self._cond.notify_all()


def describe_error(exc: BaseException) -> str:
    """An FFmpeg or socket error in plain words, without its error number or the URL."""
    reason = getattr(exc, "strerror", None) or str(exc)
    if type(exc).__name__ in ("ExitError",) or "Immediate exit" in reason:
        return "timed out"
    return reason[:1].lower() + reason[1:] if reason else type(exc).__name__
