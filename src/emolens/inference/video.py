"""Video files: read (PyAV, any format FFmpeg reads, rotation honoured), recognise, track,
smooth, and write an annotated H.264 MP4 (keeping the audio), CSV/JSON and a timeline plot.

Every output is written under a temporary name and moved into place only when complete,
so a failed or cancelled run never leaves a file that looks finished.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, NamedTuple

import cv2
import numpy as np

from emolens._memory import release_free_heap
from emolens.errors import Cancelled, VideoOpenError
from emolens.inference.annotate import draw_tracked
from emolens.inference.pipeline import Frame, FrameResult, StreamProcessor, run_stream
from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.records import csv_header, csv_row
from emolens.inference.timeline import TrackSeries, plot_timeline, write_series
from emolens.labels import EMOTIONS
from emolens.results import FaceRecord

logger = logging.getLogger(__name__)

_COPYABLE_AUDIO = {"aac", "mp3", "alac", "opus", "flac", "ac3"}
_TRIM_EVERY = 30  # annotated frames between two release_free_heap() calls


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. ``frames`` is the container's count or an estimate."""

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    rotation: int
    has_audio: bool
    format_name: str = ""

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> VideoInfo:
        import av

        with _open(path) as container:
            stream = _video_stream(container, path)
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration
                else (container.duration / 1e6 if container.duration else 0.0)
            )
            frames = stream.frames or int(round(duration * fps))
            rotation = 0
            try:
                first = next(container.decode(stream))
                rotation = int(getattr(first, "rotation", 0) or 0)
            except (StopIteration, av.FFmpegError):
                raise VideoOpenError(f"{path}: the video stream has no decodable frame") from None
            w, h = stream.codec_context.width, stream.codec_context.height
            if rotation % 180:
                w, h = h, w
            fmt = container.format.name
            if fmt == "image2" or fmt.endswith("_pipe"):
                kind = "" if fmt == "image2" else f" ({fmt.removesuffix('_pipe').upper()})"
                raise VideoOpenError(f"{path}: this is a still image{kind}, not a video")
            return cls(w, h, fps, frames, duration, rotation, bool(container.streams.audio), fmt)


def _open(path: str | os.PathLike[str]) -> Any:
    import av

    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        # FFmpeg's own words without its error number and file name ("Invalid data found when
        # processing input"), which most often means a truncated or damaged file
        reason = getattr(exc, "strerror", None) or str(exc)
        hint = "; the file may be truncated or damaged" if isinstance(exc, av.InvalidDataError) else ""
        raise VideoOpenError(f"{path}: not a readable video ({reason}{hint})") from exc


def _video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
    if not container.streams.video:
        raise VideoOpenError(f"{path}: no video stream")
    return container.streams.video[0]


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def iter_frames(path: str | os.PathLike) -> Generator[tuple[float, np.ndarray], None, None]:
    """Yield (time in seconds, upright BGR frame) for every frame; closes the file even if abandoned."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            t = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            yield t, _upright(frame.to_ndarray(format="bgr24"), int(getattr(frame, "rotation", 0) or 0))


# A track seen in fewer processed frames, or over less time, is too short to mean anything
# in a summary: the smoothed scores need ~3 updates to settle (smoothing 0.6), and under half
# a second is mostly a detector's flicker, a face crossing the frame edge, or a shot's last frames.
MIN_TRACK_FRAMES = 3
MIN_TRACK_SECONDS = 0.5


class Cut(NamedTuple):
    """A shot change: the index and time (s) of the new shot's first frame."""

    frame: int
    time: float


@dataclass
class TrackSummary:
    """A track's running totals: its summary without keeping its records.

    Attributes:
        frames: processed frames the face was seen on.
        start, end: the times (s) of its first and last record.
        shot: the shot it belongs to (a track never spans two).
        counts: records per top emotion, in ``EMOTIONS`` order.
        score_sums: the smoothed scores summed over its records, in ``EMOTIONS`` order.
        series: its scores over time, bounded in size, for the timeline plot.
    """

    frames: int
    start: float
    end: float
    shot: int
    counts: list[int]
    score_sums: list[float]
    series: TrackSeries = field(default_factory=TrackSeries, repr=False, compare=False)

    @classmethod
    def of(cls, record: FaceRecord) -> TrackSummary:
        """The totals of a track's first record."""
        counts = [int(e == record.emotion) for e in EMOTIONS]
        track = cls(1, record.time, record.time, record.shot, counts, list(record.probabilities))
        track.series.add(record.time, record.probabilities)
        return track

    def add(self, record: FaceRecord) -> None:
        """Count the track's next record (records come in frame order)."""
        self.frames += 1
        self.end = record.time
        self.counts[EMOTIONS.index(record.emotion)] += 1
        self.score_sums = [total + p for total, p in zip(self.score_sums, record.probabilities)]
        self.series.add(record.time, record.probabilities)

    @property
    def short(self) -> bool:
        """Whether the track is too few frames or too brief to count (see MIN_TRACK_FRAMES)."""
        return self.frames < MIN_TRACK_FRAMES or self.end - self.start < MIN_TRACK_SECONDS

    def to_dict(self) -> dict:
        """Frames seen, first/last time, shot, dominant emotion, share of frames per emotion, mean scores."""
        share = {e: c / self.frames for e, c in zip(EMOTIONS, self.counts)}
        return {
            "frames": self.frames,
            "start": self.start,
            "end": self.end,
            "shot": self.shot,
            "short": self.short,
            "dominant_emotion": max(share, key=lambda e: share[e]),
            "share": share,
            "mean_scores": {e: total / self.frames for e, total in zip(EMOTIONS, self.score_sums)},
        }


def add_to_tracks(tracks: dict[int, TrackSummary], records: Iterable[FaceRecord]) -> None:
    """Count ``records`` (in frame order) into the running totals of their tracks."""
    for record in records:
        if record.track_id in tracks:
            tracks[record.track_id].add(record)
        else:
            tracks[record.track_id] = TrackSummary.of(record)


@dataclass
class VideoResult:
    """Per-frame records, shot cuts and per-track totals of one processed video.

    ``records`` holds every face of every processed frame unless :func:`process_video` was
    told not to keep them (an hour of video is ~300,000 records); ``tracks`` is always there,
    and built from ``records`` when not given.
    """

    info: VideoInfo
    records: list[FaceRecord]  # one per face per processed frame (empty when not kept)
    frames_processed: int
    cuts: list[Cut] = field(default_factory=list)  # each shot change
    tracks: dict[int, TrackSummary] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tracks:
            add_to_tracks(self.tracks, self.records)

    @property
    def face_count(self) -> int:
        """Faces seen, summed over the processed frames (kept or not)."""
        return sum(t.frames for t in self.tracks.values())

    def by_track(self) -> dict[int, list[FaceRecord]]:
        """The kept records of each track, in frame order."""
        tracks: dict[int, list[FaceRecord]] = {}
        for r in self.records:
            tracks.setdefault(r.track_id, []).append(r)
        return tracks

    def summary(self) -> dict:
        """The video (size, fps, duration, frames processed, cuts, faces) and, per track, its
        :meth:`TrackSummary.to_dict`.

        Tracks too short to mean anything are kept but marked ``"short": true``; the video's
        ``faces`` counts only the others. The per-frame records keep every track.
        """
        out = {str(tid): track.to_dict() for tid, track in sorted(self.tracks.items())}
        return {
            "video": {
                "width": self.info.width,
                "height": self.info.height,
                "fps": self.info.fps,
                "duration": self.info.duration,
                "frames_processed": self.frames_processed,
                "cuts": [cut._asdict() for cut in self.cuts],
                "faces": sum(not t["short"] for t in out.values()),
            },
            "tracks": out,
        }


def process_video(
    source: str | os.PathLike,
    recognizer: EmotionRecognizer,
    *,
    target: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    plot_path: str | os.PathLike | None = None,
    series_path: str | os.PathLike | None = None,
    every_nth: int = 1,
    full_every: int = 10,
    smoothing: float = 0.6,
    on_progress: Callable[[int, int], None] | None = None,
    on_records: Callable[[list[FaceRecord]], None] | None = None,
    keep_records: bool = True,
    cancel: threading.Event | None = None,
    show_progress: bool = False,
    max_output_pixels: int | None = None,
) -> VideoResult:
    """Recognise emotions in every (or every Nth) frame of a video, tracking each face.

    Every decoded frame goes through :class:`StreamProcessor` (shot cuts, recognition every
    Nth frame and at each cut, tracking); this function adds the file's outputs around it.
    The CSV and JSON are written as the frames come, so with ``keep_records=False`` memory
    stays flat however long the video.

    Args:
        source: any file FFmpeg reads.
        recognizer: detector + classifier.
        target: annotated H.264 MP4 to write (audio kept when it can be copied).
        csv_path, json_path, plot_path: per-frame CSV, JSON (records + summary), timeline PNG.
        series_path: each track's scores over time as JSON, at most 2,000 samples a track
            (:func:`~emolens.inference.timeline.write_series`): a chart's data without the records.
        every_nth: analyse every Nth frame (and each shot's first); the frames between reuse
            the last faces.
        full_every: search the whole frame for faces at least every this many video frames,
            and between only around the known faces (1: the whole frame every time).
        smoothing: weight of the past in each track's moving average of scores.
        on_progress: called with (frames done, frames expected) after each frame.
        on_records: called with each frame's records (every frame's, in order; may be empty).
        keep_records: return every record in ``VideoResult.records``; False keeps only the
            per-track totals and series (all the summary and the timeline plot need).
        cancel: set it to stop; raises Cancelled and writes nothing.
        max_output_pixels: scale the annotated video down to at most this many pixels a frame
            (e.g. 4K to 1080p: encoding 4K costs several times more than the recognition);
            faces are found and classified in the full-size frames all the same.

    Raises:
        VideoOpenError: unreadable file, no video stream, or no frames.
        Cancelled: when ``cancel`` was set.
    """
    processor = StreamProcessor(recognizer, every_nth=every_nth, full_every=full_every, smoothing=smoothing)
    info = VideoInfo.from_path(source)
    with (
        _PartialFiles() as files,
        _RecordWriters(files, csv_path, json_path) as writers,
        _Progress(source, info, on_progress, show=show_progress) as progress,
    ):

        def frame_records(records: list[FaceRecord]) -> None:
            writers.write(records)
            if on_records:
                on_records(records)

        result = _analyse(
            source,
            info,
            processor,
            annotated=files.temp_for(target) if target else None,
            max_output_pixels=max_output_pixels,
            cancel=cancel,
            keep_records=keep_records,
            frame_records=frame_records,
            frame_done=progress.frame_done,
        )
        writers.finish(result.summary())
        if plot_path:
            plot_timeline(result, files.temp_for(plot_path))
        if series_path:
            write_series(result, files.temp_for(series_path))
        files.commit()
    return result


def _analyse(
    source: str | os.PathLike,
    info: VideoInfo,
    processor: StreamProcessor,
    *,
    annotated: Path | None,
    max_output_pixels: int | None,
    cancel: threading.Event | None,
    keep_records: bool,
    frame_records: Callable[[list[FaceRecord]], None],
    frame_done: Callable[[int], None],
) -> VideoResult:
    """Run every frame of ``source`` through ``processor``, counting records into track totals
    (and keeping them if asked) and noting cuts, and write the annotated frames to
    ``annotated`` if given; ``frame_records`` gets each frame's records, ``frame_done`` its index."""
    records: list[FaceRecord] = []
    tracks: dict[int, TrackSummary] = {}
    cuts: list[Cut] = []
    with ExitStack() as stack:
        writer = (
            stack.enter_context(_AnnotatedWriter(source, annotated, info, max_output_pixels)) if annotated else None
        )

        def on_result(result: FrameResult) -> None:
            if result.cut:
                cuts.append(Cut(result.frame.index, round(result.frame.time, 4)))
            add_to_tracks(tracks, result.records)
            if keep_records:
                records.extend(result.records)
            frame_records(result.records)
            if writer:
                writer.write(draw_tracked(result.frame.image, result.faces))
            frame_done(result.frame.index)

        decoded = writer.frames() if writer else iter_frames(source)
        if run_stream(_frames(source, decoded, cancel), processor, on_result=on_result) == 0:
            raise VideoOpenError(f"{source}: no frames")
    return VideoResult(info, records, processor.frames_analysed, cuts, tracks)


def _frames(
    source: str | os.PathLike, decoded: Iterator[tuple[float, np.ndarray]], cancel: threading.Event | None
) -> Iterator[Frame]:
    """Decoded (time, image) pairs as pipeline frames, stopping with Cancelled once ``cancel`` is set."""
    for index, (t, image) in enumerate(decoded):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{source}: cancelled at frame {index}")
        yield Frame(image, t, index, time.time())


class _PartialFiles:
    """Outputs written under temporary names beside their final ones: :meth:`commit` moves them
    all into place; leaving the block without it (an error, a cancel) removes them."""

    def __init__(self) -> None:
        self._temps: list[tuple[Path, Path]] = []

    def temp_for(self, path: str | os.PathLike[str]) -> Path:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
        self._temps.append((tmp, final))
        return tmp

    def commit(self) -> None:
        for tmp, final in self._temps:
            os.replace(tmp, final)
        self._temps.clear()

    def __enter__(self) -> _PartialFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for tmp, _ in self._temps:
            tmp.unlink(missing_ok=True)


class _RecordWriters:
    """The per-frame CSV and JSON, written a frame's records at a time under their temporary
    names (see :class:`_PartialFiles`).

    The JSON puts the summary, known only at the end, before the records: the records go to
    an unnamed scratch file beside it (gone when closed, even after a crash) and are copied
    in after the summary by :meth:`finish`.
    """

    def __init__(
        self, files: _PartialFiles, csv_path: str | os.PathLike | None, json_path: str | os.PathLike | None
    ) -> None:
        self._stack = ExitStack()
        self._csv: Any = None  # csv.writer
        self._json: Path | None = None
        self._frames: IO[str] | None = None
        self._written = 0
        if csv_path:
            f = self._stack.enter_context(open(files.temp_for(csv_path), "w", newline=""))
            self._csv = csv.writer(f)
            self._csv.writerow(csv_header())
        if json_path:
            self._json = files.temp_for(json_path)
            self._frames = self._stack.enter_context(tempfile.TemporaryFile("w+", dir=self._json.parent))

    def write(self, records: list[FaceRecord]) -> None:
        if self._csv is not None:
            self._csv.writerows(csv_row(r) for r in records)
        if self._frames is not None:
            for record in records:
                self._frames.write((", " if self._written else "") + json.dumps(record.to_dict()))
                self._written += 1

    def finish(self, summary: dict) -> None:
        """Write the JSON, ``{"summary": ..., "frames": [...]}`` (the text ``json.dumps``
        gives), and close both files."""
        if self._json is not None and self._frames is not None:
            self._frames.seek(0)
            with open(self._json, "w") as f:
                f.write('{"summary": ' + json.dumps(summary) + ', "frames": [')
                shutil.copyfileobj(self._frames, f)
                f.write("]}\n")
        self._stack.close()

    def __enter__(self) -> _RecordWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class _Progress:
    """Frames done, reported to ``on_progress`` as (done, expected) and on a tqdm bar if ``show``."""

    def __init__(
        self,
        source: str | os.PathLike,
        info: VideoInfo,
        on_progress: Callable[[int, int], None] | None,
        *,
        show: bool,
    ) -> None:
        self.expected, self.on_progress = info.frames, on_progress
        self.bar: Any = None  # tqdm
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=info.frames or None, unit="frame", desc=Path(source).name)

    def frame_done(self, index: int) -> None:
        if self.bar is not None:
            self.bar.update()
        if self.on_progress:
            self.on_progress(index + 1, max(self.expected, index + 1))

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


class _AnnotatedWriter:
    """Decode a source and encode annotated frames as H.264 MP4, copying the audio packets.

    Encoding and muxing run on a thread of their own, fed through a short queue, so that
    x264 works while the next frame is decoded and recognised (PyAV and ONNX Runtime release
    the GIL in their native code).
    """

    def __init__(
        self, source: str | os.PathLike[str], target: Path, info: VideoInfo, max_pixels: int | None = None
    ) -> None:
        self.source, self.target, self.info = source, target, info
        self.scale = min(1.0, (max_pixels / (info.width * info.height)) ** 0.5) if max_pixels else 1.0

    def __enter__(self) -> _AnnotatedWriter:
        import av

        self.input = _open(self.source)
        self.in_video = _video_stream(self.input, self.source)
        self.in_video.thread_type = "AUTO"
        self.output = av.open(str(self.target), "w", format="mp4")
        rate = self.in_video.average_rate or Fraction(25)
        self.out_video = self.output.add_stream("libx264", rate=rate)
        self.out_video.width = int(self.info.width * self.scale) // 2 * 2  # yuv420p needs even sides
        self.out_video.height = int(self.info.height * self.scale) // 2 * 2
        self.out_video.pix_fmt = "yuv420p"
        # superfast rather than veryfast: after detection, encoding is a video job's largest
        # cost, and the faster preset costs only somewhat larger files (README, Benchmarks)
        self.out_video.options = {"preset": "superfast", "crf": "23", "movflags": "+faststart"}
        self.out_video.codec_context.time_base = self.in_video.time_base
        self.in_audio = self.out_audio = None
        if self.input.streams.audio:
            audio = self.input.streams.audio[0]
            if audio.codec_context.name in _COPYABLE_AUDIO:
                self.in_audio, self.out_audio = audio, self.output.add_stream_from_template(audio)
            else:
                logger.warning(
                    "%s: audio codec %s cannot be copied into MP4; the output has no sound",
                    self.source,
                    audio.codec_context.name,
                )
        self._pts = None
        self._written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._encode_loop, name="emolens-encoder", daemon=True)
        self._thread.start()
        return self

    def _encode_loop(self) -> None:
        """Own the output container: mux audio packets, encode and mux video frames, flush."""
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._failure is not None:
                continue  # drain so that the producer never blocks
            try:
                if isinstance(item, tuple):
                    image, pts = item
                    for packet in self.out_video.encode(self._to_frame(image, pts)):
                        self.output.mux(packet)
                else:
                    self.output.mux(item)
            except BaseException as exc:  # reported to the caller by the next write() or __exit__
                self._failure = exc

    def _put(self, item: object) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.put(item)

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        streams = [s for s in (self.in_video, self.in_audio) if s is not None]
        for packet in self.input.demux(*streams):
            if packet.stream is self.in_audio:
                if packet.dts is not None:
                    packet.stream = self.out_audio
                    self._put(packet)
                continue
            for frame in packet.decode():
                self._pts = frame.pts
                t = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                yield t, _upright(frame.to_ndarray(format="bgr24"), int(getattr(frame, "rotation", 0) or 0))

    def write(self, image: np.ndarray) -> None:
        self._written += 1
        if self._written % _TRIM_EVERY == 0:
            release_free_heap()  # else the heaps keep the frames freed across threads (emolens._memory)
        self._put((image, self._pts))

    def _to_frame(self, image: np.ndarray, pts: int | None) -> Any:
        import av

        h, w = self.out_video.height, self.out_video.width
        if self.scale < 1:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        # OpenCV converts BGR to I420 several times faster than PyAV's swscale path (README, Benchmarks)
        yuv = np.asarray(cv2.cvtColor(np.ascontiguousarray(image[:h, :w]), cv2.COLOR_BGR2YUV_I420), np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts, frame.time_base = pts, self.in_video.time_base
        return frame

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            self._queue.put(None)
            self._thread.join()
            if exc_type is None:
                if self._failure is not None:
                    raise self._failure
                for packet in self.out_video.encode():
                    self.output.mux(packet)
        finally:
            self.output.close()
            self.input.close()
