"""The work of one video job, as a plain function: any executor (a thread here, a worker
process elsewhere) runs it with the job's folder and a recogniser, and needs no Flask."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.video import process_video
from emolens.jobs.files import OUTPUTS


def run_video_job(
    folder: Path,
    input_name: str,
    recognizer: EmotionRecognizer,
    *,
    on_progress: Callable[[int, int], None],
    cancel: threading.Event,
    max_output_pixels: int | None = None,
) -> dict[str, Any]:
    """Analyse ``folder/input_name`` into the job's :data:`OUTPUTS`; the video's summary.

    Raises:
        Cancelled: ``cancel`` was set (nothing that looks finished is left behind).
        VideoOpenError, ValueError: the video cannot be read or written.
    """
    result = process_video(
        folder / input_name,
        recognizer,
        target=folder / OUTPUTS["video"],
        csv_path=folder / OUTPUTS["csv"],
        json_path=folder / OUTPUTS["json"],
        plot_path=folder / OUTPUTS["plot"],
        series_path=folder / OUTPUTS["series"],
        on_progress=on_progress,
        cancel=cancel,
        max_output_pixels=max_output_pixels,
        keep_records=False,  # the files get every record; summary and plot need only per-track totals
    )
    return result.summary()
