"""Helpers the benchmark scripts share. No emolens import here: fer_compare.py's worker
runs in fer's own environment and uses these too."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path


def timeit(fn, repeat: int = 50) -> float:
    """Median milliseconds of ``fn()`` after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def frames_per_s(fn, frames: list, passes: int = 5, rounds: int = 5) -> float:
    """Frames per second of ``fn(frame)`` over ``frames`` in order, whole passes at a time.

    Means over whole passes, not a median of single calls, so that work done on some frames
    only (a stream's periodic whole-frame detection) counts in full. Median of ``rounds``.
    """
    for frame in frames:
        fn(frame)
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(passes):
            for frame in frames:
                fn(frame)
        rates.append(passes * len(frames) / (time.perf_counter() - t))
    return statistics.median(rates)


def emit(result: dict, path: Path | None) -> None:
    """Print the result as JSON, and write it to ``path`` too when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
