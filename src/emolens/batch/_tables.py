"""The batch's tables: one row per face per frame (Parquet and CSV) and one row per file (CSV).

pyarrow is imported inside each function: it comes with the ``batch`` extra, and a serving
install never loads it.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from emolens.labels import EMOTIONS
from emolens.results import FaceRecord, FaceResult

if TYPE_CHECKING:
    import pyarrow as pa

FACE_COLUMNS = (
    "source",
    "kind",
    "frame",
    "time",
    "track_id",
    "face",
    "x1",
    "y1",
    "x2",
    "y2",
    "detection_score",
    "emotion",
    "confidence",
    *EMOTIONS,
)
ROW_GROUP = 8_192  # rows converted and written at a time: bounds Arrow's memory on long videos
FILE_COLUMNS = ("source", "kind", "status", "error", "faces", "tracks", "frames", "seconds", "output")


def require_pyarrow() -> ModuleType:
    """pyarrow, or an error that says which extra installs it."""
    try:
        import pyarrow
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "emolens batch writes Parquet with pyarrow; install it with: pip install 'emolens[batch]'", name="pyarrow"
        ) from exc
    return pyarrow


def schema() -> pa.Schema:
    """The Arrow schema of the faces table (time and track_id are null for images)."""
    pa = require_pyarrow()
    types = {"source": pa.string(), "kind": pa.string(), "time": pa.float64(), "detection_score": pa.float64()}
    types.update({name: pa.int64() for name in ("frame", "track_id", "face", "x1", "y1", "x2", "y2")})
    types.update({name: pa.float64() for name in ("confidence", *EMOTIONS)})
    types["emotion"] = pa.string()
    return pa.schema([(name, types[name]) for name in FACE_COLUMNS])


class FaceRows:
    """One file's faces table, written to Parquet as its faces come, :data:`ROW_GROUP` rows at
    a time: a video of any length holds at most one row group in memory. ``face`` numbers the
    faces of each frame from 0 (a frame's faces come together). A file without faces still
    gets the schema. Use it as a context manager (the caller's folder is made atomic as a whole).
    """

    def __init__(self, path: Path, source: str, kind: str) -> None:
        import pyarrow.parquet as pq

        self._path, self._schema = path, schema()
        self._writer = pq.ParquetWriter(path, self._schema)
        self._source, self._kind = source, kind
        self._columns: dict[str, list] = {name: [] for name in FACE_COLUMNS}
        self._frame, self._face = -1, -1
        self.rows = 0

    def add(self, frame: int, time: float | None, track_id: int | None, face: FaceResult) -> None:
        """One face on ``frame`` (seconds ``time`` and ``track_id`` are None for an image)."""
        self._face = self._face + 1 if frame == self._frame else 0
        self._frame = frame
        x1, y1, x2, y2 = face.box.to_list()
        values = {
            "source": self._source,
            "kind": self._kind,
            "frame": frame,
            "time": time,
            "track_id": track_id,
            "face": self._face,
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
            "detection_score": face.detection_score,
            "emotion": face.emotion,
            "confidence": face.confidence,
            **face.scores,
        }
        for name in FACE_COLUMNS:
            self._columns[name].append(values[name])
        self.rows += 1
        if len(self._columns["source"]) >= ROW_GROUP:
            self._flush()

    def add_records(self, records: Iterable[FaceRecord]) -> None:
        """A video's records, in frame order."""
        for r in records:
            self.add(r.frame, r.time, r.track_id, r.face)

    def add_image(self, faces: Iterable[FaceResult]) -> None:
        """An image's faces: frame 0, no time, no track."""
        for face in faces:
            self.add(0, None, None, face)

    def _flush(self) -> None:
        pa = require_pyarrow()
        self._writer.write_table(pa.table(self._columns, schema=self._schema))
        self._columns = {name: [] for name in FACE_COLUMNS}

    def __enter__(self) -> FaceRows:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """Write what is left and close; after an error, remove the file: a failed file's
        folder must not hold a table that looks like its results."""
        try:
            if exc_type is None and (self._columns["source"] or not self.rows):
                self._flush()
        finally:
            self._writer.close()
            if exc_type is not None:
                self._path.unlink(missing_ok=True)


def combine(row_files: list[Path], out: Path) -> int:
    """Concatenate per-file row tables, in the given order, into ``OUT/faces.parquet`` and
    ``OUT/faces.csv`` (each written under a temporary name, then renamed); the row count.

    Both are written a batch of rows at a time, never the whole table at once."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    def batches() -> Iterator[pa.RecordBatch]:  # none for no files: the writers still write the header/schema
        for path in row_files:
            yield from pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP)

    def write(writer_class: Callable, tmp: Path) -> None:
        with writer_class(str(tmp), schema()) as writer:
            for batch in batches():
                writer.write_batch(batch)

    _atomic(out / "faces.parquet", lambda tmp: write(pq.ParquetWriter, tmp))
    _atomic(out / "faces.csv", lambda tmp: write(pacsv.CSVWriter, tmp))
    return sum(pq.ParquetFile(path).metadata.num_rows for path in row_files)


def files_csv(rows: list[dict]) -> str:
    """The per-file summary as CSV text, one row per input (``rows`` keyed by :data:`FILE_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FILE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_text(text: str, path: Path) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text))


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
