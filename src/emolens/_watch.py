"""``emolens watch``: a camera, stream or file through the frame pipeline, reported as it goes.

The command's moving parts, kept out of ``cli.py``: open the source, run the pipeline until
the source ends, ``--duration`` passes or Ctrl-C, append records per frame, record the
annotated frames, and print one line a second. Ctrl-C is how a watch is normally ended, so
it finishes the outputs and exits 0 like ``--duration`` does.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

import numpy as np

from emolens.errors import EmolensError
from emolens.inference.pipeline import FrameResult

if TYPE_CHECKING:
    from emolens.inference.live_source import SourceStatus
    from emolens.inference.recognizer import EmotionRecognizer


@dataclass
class SecondReport:
    """What one second of results looked like, for the status line."""

    frames: int = 0
    analysed: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, capture to result, analysed frames
    dropped: int = 0

    def line(self, elapsed: float, last: FrameResult | None) -> str:
        """``12:00:01  15.0 fps  p95 48 ms  2 faces: #1 happy 81%, #2 neutral 64%``."""
        clock = time.strftime("%H:%M:%S")
        fps = self.frames / elapsed if elapsed > 0 else 0.0
        latency = f"  p95 {1000 * np.percentile(self.latencies, 95):.0f} ms" if self.latencies else ""
        dropped = f"  {self.dropped} dropped" if self.dropped else ""
        faces = last.faces if last is not None else []
        shown = ", ".join(
            f"#{tf.track_id} {tf.face.emotion} {tf.face.confidence:.0%}{'?' if tf.face.uncertain else ''}"
            for tf in faces
        )
        count = f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
        return f"{clock}  {fps:5.1f} fps{latency}{dropped}  {count}" + (f": {shown}" if shown else "")


class _Reporter:
    """Collect results and print :class:`SecondReport` lines, at most one a second."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out, self.report, self.started = out, SecondReport(), time.monotonic()
        self.last: FrameResult | None = None
        self.total_frames = 0

    def add(self, result: FrameResult) -> None:
        if self.last is None:  # the first second starts with the first frame, not with connecting
            self.started = time.monotonic()
        self.report.frames += 1
        self.report.dropped += result.frame.dropped
        self.total_frames += 1
        if result.analysed:
            self.report.analysed += 1
            self.report.latencies.append(result.done_time - result.frame.wall_time)
        self.last = result
        elapsed = time.monotonic() - self.started
        if elapsed >= 1.0:
            print(self.report.line(elapsed, result), file=self.out, flush=True)
            self.report, self.started = SecondReport(), time.monotonic()


def _print_status(status: SourceStatus) -> None:
    """A live source's state changes, as lines among the per-second ones (a failure is the error line)."""
    from emolens.inference.live_source import SourceState

    if status.state in (SourceState.LIVE, SourceState.RECONNECTING):
        print(f"{time.strftime('%H:%M:%S')}  {status}", flush=True)


def _check(args: argparse.Namespace) -> None:
    """Refuse bad flags before anything is opened, naming the flag."""
    if args.every < 1 or args.full_every < 1:
        raise EmolensError(f"--every and --full-every must be 1 or more, got {args.every} and {args.full_every}")
    if args.duration is not None and args.duration <= 0:
        raise EmolensError(f"--duration must be more than 0 seconds, got {args.duration:g}")
    if args.timeout <= 0:
        raise EmolensError(f"--timeout must be more than 0 seconds, got {args.timeout:g}")
    if args.record and not args.record.lower().endswith(".mp4"):
        raise EmolensError(f"--record {args.record}: emolens records H.264 MP4 files; name it .mp4")


def run_watch(args: argparse.Namespace, recognizer: EmotionRecognizer) -> int:
    """Run ``emolens watch`` with parsed arguments and a recognizer; the exit status."""
    from emolens.inference.annotate import draw_tracked
    from emolens.inference.live_source import LiveSource
    from emolens.inference.pipeline import StreamProcessor, run_stream
    from emolens.inference.recorder import LiveRecorder
    from emolens.inference.records import RecordLog
    from emolens.inference.sources import open_source

    _check(args)
    source = open_source(
        args.source,
        open_timeout=args.timeout,
        read_timeout=args.timeout,
        on_status=_print_status,
    )
    processor = StreamProcessor(recognizer, every_nth=args.every, full_every=args.full_every, wall_time=True)
    reporter, stop = _Reporter(), threading.Event()
    started = time.monotonic()
    with ExitStack() as stack:
        stack.callback(source.close)
        log = stack.enter_context(RecordLog(jsonl=args.jsonl, csv_path=args.csv))
        recorder = LiveRecorder(args.record) if args.record else None
        if recorder is not None:
            stack.callback(recorder.close)

        def on_result(result: FrameResult) -> None:
            log.write(result.records)
            if recorder is not None:
                recorder.write(draw_tracked(result.frame.image, result.faces), result)
            reporter.add(result)

        def time_is_up() -> None:  # also ends a wait for a stream that is reconnecting
            stop.set()
            if isinstance(source, LiveSource):
                source.stop()

        if args.duration is not None:
            timer = threading.Timer(args.duration, time_is_up)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
        how = "ended"
        try:
            run_stream(source, processor, stop=stop, on_result=on_result)
            how = "stopped by --duration" if stop.is_set() else "the source ended"
        except KeyboardInterrupt:
            how = "stopped (Ctrl-C)"
    print(
        f"{how} after {time.monotonic() - started:.1f} s: {reporter.total_frames} frames, "
        f"{processor.frames_analysed} analysed, {log.written} records"
        + (f"; recorded {args.record}" if recorder is not None and recorder.frames else ""),
        flush=True,
    )
    return 0
