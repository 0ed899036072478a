"""Per-frame records on disk: CSV rows (video files and live sources) and append-as-you-go logs.

A record is a :class:`~emolens.results.FaceRecord`, one face on one analysed frame; these
are its file forms (its JSON form is ``to_dict()``).

A live source runs for hours and may be killed at any moment, so its records are appended
and flushed frame by frame (:class:`RecordLog`) rather than kept in memory and written at
the end: a crash loses nothing already reported, and memory does not grow with time.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from emolens.errors import SettingsError
from emolens.labels import EMOTIONS
from emolens.results import FaceRecord

CSV_COLUMNS = ["time", "frame", "track_id", "shot", "x1", "y1", "x2", "y2", "detection_score", "emotion", "confidence"]


def csv_header(*, wall_time: bool = False) -> list[str]:
    """The CSV columns: ``wall_time`` first for live sources, then the record, then one score per emotion."""
    return [*(["wall_time"] if wall_time else []), *CSV_COLUMNS, *EMOTIONS]


def csv_row(r: FaceRecord, *, wall_time: bool = False) -> list:
    """One record as a CSV row under :func:`csv_header`."""
    return [
        *([r.wall_time] if wall_time else []),
        r.time,
        r.frame,
        r.track_id,
        r.shot,
        *r.box.to_list(),
        "" if r.detection_score is None else r.detection_score,
        r.emotion,
        f"{r.confidence:.4f}",
        *(f"{p:.4f}" for p in r.probabilities),
    ]


class RecordLog:
    """Append records to JSON Lines and/or CSV files, flushed after every frame.

    Existing files are appended to (a restarted watch continues its log); a new or empty CSV
    gets the header first. Files are opened at the first record, so a source that never
    delivers leaves none behind. Records carry ``wall_time`` (Unix epoch seconds, UTC).

    Args:
        jsonl: JSON Lines file, one record per line.
        csv_path: CSV file with :func:`csv_header` ``(wall_time=True)``.
    """

    def __init__(self, *, jsonl: str | os.PathLike | None = None, csv_path: str | os.PathLike | None = None):
        self.paths = [_writable(p) if p else None for p in (jsonl, csv_path)]
        self._jsonl: IO[str] | None = None
        self._csv_file: IO[str] | None = None
        self._csv: Any = None  # csv.writer
        self.written = 0

    def _open(self) -> None:
        jsonl, csv_path = self.paths
        self._jsonl = open(jsonl, "a") if jsonl else None
        if csv_path:
            self._csv_file = open(csv_path, "a", newline="")
            self._csv = csv.writer(self._csv_file)
            if self._csv_file.tell() == 0:
                self._csv.writerow(csv_header(wall_time=True))

    def write(self, records: Sequence[FaceRecord]) -> None:
        """Append one frame's records and flush them to the operating system."""
        if not records:
            return
        if self.written == 0 and self._jsonl is None and self._csv_file is None:
            self._open()
        for r in records:
            if self._jsonl is not None:
                self._jsonl.write(json.dumps(r.to_dict()) + "\n")
            if self._csv is not None:
                self._csv.writerow(csv_row(r, wall_time=True))
        self.written += len(records)
        for f in (self._jsonl, self._csv_file):
            if f is not None:
                f.flush()

    def close(self) -> None:
        for f in (self._jsonl, self._csv_file):
            if f is not None:
                f.close()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _writable(path: str | os.PathLike) -> Path:
    """The path, refused at once if it is a folder (not at the first record, minutes later)."""
    path = Path(path)
    if path.is_dir():
        raise SettingsError(f"{path} is a folder; give a file to append records to")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
