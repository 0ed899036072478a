"""Record a live source's annotated frames as an H.264 MP4 that stays playable if the process dies.

A plain MP4 is unreadable until its index is written at the end; a fragmented one
(``frag_keyframe+empty_moov``) is playable up to its last fragment, so a crash or a kill
after hours of recording loses seconds, not the file. Frames are stamped with their
capture times, so a stream that dropped for a while plays with the gap, not sped up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from emolens.inference.pipeline import FrameResult

_MS = Fraction(1, 1000)


class LiveRecorder:
    """Annotated frames of a live source to a fragmented H.264 MP4, at the frames' own times.

    The size is the first frame's; later frames of another size (the camera changed mode
    after a reconnect) are scaled to it.

    Args:
        path: the ``.mp4`` to write (replaced if it exists).
        keyframe_s: seconds between keyframes, so between fragments: what a crash may lose.
    """

    def __init__(self, path: str | os.PathLike, *, keyframe_s: float = 1.0):
        self.path, self.keyframe_s = str(path), keyframe_s
        self._output: Any = None  # av.container.OutputContainer once the first frame came
        self._stream: Any = None
        self._last_pts = -1
        self._next_key = 0
        self.frames = 0

    def write(self, image: np.ndarray, result: FrameResult) -> None:
        """Encode one annotated BGR image, shown at ``result.frame.time``."""
        import av
        from av.video.frame import PictureType

        if self._output is None:
            self._open(image.shape[1] // 2 * 2, image.shape[0] // 2 * 2)
        w, h = self._stream.width, self._stream.height
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        pts = max(self._last_pts + 1, round(result.frame.time * 1000))  # strictly increasing
        yuv = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts, frame.time_base = pts, _MS
        if pts >= self._next_key:  # keyframes by time, not frame count: a camera's rate varies
            frame.pict_type = PictureType.I
            self._next_key = pts + round(1000 * self.keyframe_s)
        self._mux(self._stream.encode(frame))
        self._last_pts = pts
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        import av

        self._output = av.open(
            self.path,
            "w",
            format="mp4",
            # a fragment per keyframe, each written through at once (no 32 KiB buffer held back)
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
        )
        stream = self._output.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = _MS
        # zerolatency: no frame look-ahead, so a kill loses only the frames since the last fragment
        stream.options = {"preset": "superfast", "crf": "23", "tune": "zerolatency"}
        stream.codec_context.gop_size = 1000  # keyframes are forced by time in write()
        self._stream = stream

    def _mux(self, packets: Iterable[Any]) -> None:
        for packet in packets:
            self._output.mux(packet)

    def close(self) -> None:
        """Flush the encoder and close the file (safe twice; nothing is written if no frame came)."""
        if self._output is None:
            return
        try:
            self._mux(self._stream.encode())
        finally:
            self._output.close()
            self._output = None
