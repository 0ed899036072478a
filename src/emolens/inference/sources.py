"""Where frames come from: :func:`open_source` turns what a user typed into a frame source.

Every source is an iterable of :class:`~emolens.inference.pipeline.Frame` with an ``info``
(:class:`SourceInfo`) and a ``close()``: a video file (every frame, at the speed it can be
decoded), a stream URL or a capture device (:class:`~emolens.inference.live_source.LiveSource`:
newest frame only, reconnecting). The browser's frames are a source too (``web/live.py``).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emolens.errors import SourceError
from emolens.inference.live_source import LiveSource
from emolens.inference.pipeline import Frame
from emolens.inference.urls import mask_credentials

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class SourceInfo:
    """What a source is: ``kind`` "file", "stream" or "device"; ``location`` as opened; ``live``
    if it runs in real time (frames are dropped when processing is slower, never queued)."""

    kind: str
    location: str
    live: bool


class FrameSource(Protocol):
    """Frames in order, plus what the source is; ``close()`` releases it (safe twice)."""

    info: SourceInfo

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class FileSource:
    """Every frame of a video file, as fast as it decodes (nothing dropped)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.info = SourceInfo("file", str(path), live=False)
        self._frames: Generator | None = None

    def __iter__(self) -> Iterator[Frame]:
        from emolens.inference.video import iter_frames

        self._frames = iter_frames(self.path)
        for index, (t, image) in enumerate(self._frames):
            yield Frame(image, t, index, time.time())

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()  # closes the file

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamSource(LiveSource):
    """A :class:`LiveSource` that says what it is (``info``), as every frame source does."""

    def __init__(self, url: str, *, kind: str = "stream", **options: Any):
        super().__init__(url, **options)
        self.info = SourceInfo(kind, url, live=True)


def open_source(spec: str | int, **live_options: Any) -> FileSource | StreamSource:
    """The frame source for a file path, a stream URL, a capture device path or a camera index.

    Args:
        spec: ``clip.mp4``; ``rtsp://``, ``rtsps://``, ``http(s)://`` URLs; ``/dev/videoN`` or ``N``.
        live_options: passed to :class:`LiveSource` for streams and devices (timeouts, backoff,
            ``on_status``...); a file has no connection, so they do not apply to it.

    Raises:
        SourceError: an unsupported URL scheme, or a device or file that does not exist.
    """
    text = _normalise(spec)
    name = _stream_scheme(text)
    if name:
        options = {"rtsp_transport": "tcp"} if name.startswith("rtsp") else {}
        options.update(live_options.pop("options", None) or {})
        return StreamSource(text, options=options, **live_options)
    if text.startswith("/dev/video"):
        return _device(text, live_options)
    path = Path(text)
    if path.is_dir():
        raise SourceError(f"{text} is a folder; give a video file, a stream URL or a camera")
    if not path.is_file():
        raise SourceError(f"{text}: no such file (and not a stream URL or a camera)")
    return FileSource(path)


def check_live_spec(spec: str | int) -> str:
    """What :func:`open_source` would open for a stream URL or a camera, checked without opening it.

    For callers that open the source later, elsewhere (a web request adding a camera that a
    worker reads): the same rules, so that a mistake is refused at once, with the same words.
    Files are refused: a live source runs for hours, and a web client may not name server paths.

    Returns:
        The spec as it will be opened (``"0"`` becomes ``"/dev/video0"``).

    Raises:
        SourceError: an unsupported scheme, a missing or unreadable device, or not a URL or device;
            the message shows the address with its credentials masked.
    """
    text = _normalise(spec)
    if _stream_scheme(text):
        return text
    if text.startswith("/dev/video"):
        _check_device(text)
        return text
    raise SourceError(
        f"{mask_credentials(text)}: not a stream or a camera; give an "
        f"{', '.join(s + '://' for s in STREAM_SCHEMES)} address or /dev/videoN (or its index N)"
    )


def _normalise(spec: str | int) -> str:
    text = str(spec).strip()
    return f"/dev/video{text}" if text.isdigit() else text


def _stream_scheme(text: str) -> str | None:
    """The URL's scheme, lower case, if it is one emolens streams; None if ``text`` is no URL.

    Raises:
        SourceError: a URL with a scheme emolens does not read.
    """
    scheme = _SCHEME.match(text)
    if not scheme:
        return None
    name = scheme.group(1).lower()
    if name not in STREAM_SCHEMES:
        raise SourceError(
            f"{mask_credentials(text)}: unsupported address; emolens reads "
            f"{', '.join(s + '://' for s in STREAM_SCHEMES)} streams, /dev/videoN cameras (or an index) and video files"
        )
    return name


def _check_device(path: str) -> None:
    if not re.fullmatch(r"/dev/video\d+", path):
        raise SourceError(f"{path}: capture devices are named /dev/videoN")
    if not sys.platform.startswith("linux"):
        raise SourceError(f"{path}: capture devices are read through Linux's V4L2; give a stream URL instead")
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such camera (no device at that path; `ls /dev/video*` lists them)")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: permission denied (add the user to the 'video' group)")


def _device(path: str, live_options: dict) -> DeviceSource:
    _check_device(path)
    return DeviceSource(path, **live_options)


class DeviceSource(StreamSource):
    """A V4L2 camera (``/dev/videoN``), read through OpenCV: PyAV's wheels are built without
    FFmpeg's capture devices. Live like a stream: newest frame only, reopened if it drops."""

    def __init__(self, path: str, **live_options: Any):
        super().__init__(path, kind="device", **live_options)
        self.index = int(path.removeprefix("/dev/video"))

    def _decode(self) -> Iterator:
        import cv2

        capture = cv2.VideoCapture(self.index, cv2.CAP_V4L2)
        try:
            if not capture.isOpened():
                raise SourceError("the camera could not be opened (in use by another program, or not a camera)")
            while not self._stopping.is_set():
                ok, image = capture.read()
                if not ok:
                    raise SourceError("the camera stopped sending frames")
                yield image
        finally:
            capture.release()
