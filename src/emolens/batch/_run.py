"""run_batch: expand the inputs, skip what is finished, run the rest, write the tables."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from emolens._machine import usable_cores
from emolens.batch._inputs import InputFile, expand_inputs
from emolens.batch._ledger import ROWS, FileOutcome, Ledger, file_key
from emolens.batch._tables import combine, files_csv, require_pyarrow, write_text
from emolens.batch._worker import BatchSettings
from emolens.errors import ModelLoadError

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """The outcome of a batch: every input's :class:`FileOutcome`, in input order.

    ``analysed``: files analysed successfully by this run; ``skipped``: finished by an
    earlier run and reused; ``failed``: files without results, whichever run found it.
    """

    out: Path
    files: list[FileOutcome]
    seconds: float

    @property
    def analysed(self) -> int:
        return sum(1 for f in self.files if f.status == "ok" and not f.reused)

    @property
    def skipped(self) -> int:
        return sum(1 for f in self.files if f.reused)

    @property
    def failed(self) -> int:
        return sum(1 for f in self.files if f.status == "failed")

    @property
    def faces(self) -> int:
        return sum(f.faces for f in self.files if f.status == "ok")

    def faces_table(self) -> pa.Table:
        """The combined faces table (``OUT/faces.parquet``) as a pyarrow Table; ``.to_pandas()`` for pandas."""
        return load_faces(self.out)

    def summary_line(self) -> str:
        ignored = sum(1 for f in self.files if f.status == "ignored")
        return (
            f"{len(self.files)} file(s): {self.analysed} analysed, {self.skipped} done before, {self.failed} failed,"
            f" {ignored} ignored; {self.faces} face record(s); {self.seconds:.1f} s; tables in {self.out}"
        )


def load_faces(out: str | os.PathLike) -> pa.Table:
    """``OUT/faces.parquet`` of a finished batch as a pyarrow Table (one row per face per frame)."""
    import pyarrow.parquet as pq

    return pq.read_table(Path(out) / "faces.parquet")


def run_batch(
    inputs: list[str],
    out: str | os.PathLike,
    *,
    settings: BatchSettings | None = None,
    workers: int | None = None,
    ray: str | bool | None = None,
    retry_failed: bool = False,
    progress: bool = False,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> BatchReport:
    """Analyse every image and video the inputs name into ``out``; resumable.

    Args:
        inputs: files, folders (recursive), glob patterns, list files (``@list.txt`` or ``*.txt``).
        out: output folder: ``files/<id>/`` per input, ``faces.parquet``, ``faces.csv``, ``files.csv``.
        settings: models and options (default: accurate model, RetinaFace, every frame).
        workers: processes (default: the CPUs); 1 runs in this process. With Ray: actors.
        ray: False/None: no Ray; True or ``"local"``: a local Ray; ``"auto"`` or ``"ray://host:port"``: a cluster.
        retry_failed: analyse again files that failed in an earlier run (by default they are kept).
        progress: show a progress bar over files, with frames analysed.
        on_file: called with each input's outcome once known (reused, analysed, failed or ignored).

    Returns:
        A :class:`BatchReport`; ``report.faces_table()`` is the combined table.

    Raises:
        ModelLoadError: the model file does not exist.
        ModuleNotFoundError: pyarrow (``emolens[batch]``) or Ray (``emolens[ray]``) missing.

    Example:
        >>> report = run_batch(["interviews/"], "out", workers=4)
        >>> df = report.faces_table().to_pandas()
    """
    require_pyarrow()
    if ray:
        from emolens.batch._ray import require_ray

        require_ray()  # before any work, not once the progress bar is up
    started = time.perf_counter()
    settings = settings or BatchSettings()
    from emolens.shipped import resolve_model

    if not resolve_model(settings.model).is_file():
        raise ModelLoadError(f"{settings.model}: no such model file")
    out = Path(out)
    ledger = Ledger(out)
    stale = ledger.clean_partials()
    if stale:
        logger.info("removed %d unfinished folder(s) of an interrupted run", stale)
    items = expand_inputs(inputs, exclude=out)
    fingerprints = {kind: settings.fingerprint(kind) for kind in ("image", "video")}  # once, not per file
    outcomes: dict[str, FileOutcome] = {}
    todo: list[InputFile] = []
    for item in items:
        if item.kind in ("failed", "ignored"):
            key = file_key(item.path) or (None, None)
            outcomes[item.path] = FileOutcome(item.path, "other", item.kind, item.error, size=key[0], mtime_ns=key[1])
            if on_file:
                on_file(outcomes[item.path])
            continue
        earlier = ledger.finished(item.path, fingerprints[item.kind])
        if earlier is not None and not (retry_failed and earlier.status == "failed"):
            outcomes[item.path] = earlier
            if on_file:
                on_file(earlier)
        else:
            todo.append(item)
    for outcome in _execute(todo, ledger, settings, workers, ray, progress):
        outcomes[outcome.source] = outcome
        if on_file:
            on_file(outcome)
    ordered = [outcomes[item.path] for item in items]
    summary = files_csv([_file_row(f, ledger, out) for f in ordered])
    if not _tables_current(out, summary, ordered):
        combine([ledger.final_dir(f.source) / ROWS for f in ordered if f.status == "ok"], out)
        write_text(summary, out / "files.csv")  # last: the tables match it once it is written
    return BatchReport(out, ordered, time.perf_counter() - started)


def _tables_current(out: Path, summary: str, outcomes: list[FileOutcome]) -> bool:
    """Whether the combined tables already hold these results: nothing was analysed now and
    ``files.csv`` (written after the faces tables) lists the same files with the same results.
    Saves reading every file's rows again when a finished batch is run once more."""
    if any(not f.reused for f in outcomes if f.kind in ("image", "video")):
        return False
    try:
        same = (out / "files.csv").read_text() == summary
    except OSError:
        return False
    return same and (out / "faces.parquet").is_file() and (out / "faces.csv").is_file()


def _execute(
    todo: list[InputFile],
    ledger: Ledger,
    settings: BatchSettings,
    workers: int | None,
    ray: str | bool | None,
    progress: bool,
) -> Iterator[FileOutcome]:
    """Run the files on the chosen executor, commit each one, and yield its outcome."""
    from tqdm import tqdm

    from emolens.batch._executors import run_pool, run_serial

    workers = max(1, min(workers or usable_cores(), len(todo) or 1))
    if (workers > 1 or ray) and settings.threads == 0:
        settings = replace(settings, threads=1)  # the workers are the parallelism
    if todo:
        _check_model(settings)
    tasks = [(item, ledger.partial_dir(item.path)) for item in todo]
    bar = tqdm(total=len(tasks), unit="file", disable=not progress, dynamic_ncols=True)
    frames = 0

    def on_frames(n: int) -> None:
        nonlocal frames
        frames += n
        bar.set_postfix_str(f"{frames} frames", refresh=False)

    if ray:
        from emolens.batch._ray import run_ray

        actors = workers if workers > 1 else None  # None: one per CPU of the cluster
        results = run_ray(tasks, settings, address=None if ray is True else ray, workers=actors, on_frames=on_frames)
    elif workers > 1:
        results = run_pool(tasks, settings, workers, on_frames)
    else:
        results = run_serial(tasks, settings, on_frames)
    try:
        for _item, workdir, outcome in results:
            ledger.commit(outcome, workdir)
            bar.update()
            yield outcome
    finally:
        bar.close()


def _check_model(settings: BatchSettings) -> None:
    """Load the classifier once here, before the progress bar, so that a broken model file is
    one clear error rather than every worker dying in its initializer (which the pool would
    take for crashes)."""
    from emolens.inference.classifier import EmotionClassifier
    from emolens.shipped import DEFAULT_MODEL

    EmotionClassifier(settings.model or DEFAULT_MODEL, threads=1)


def _file_row(f: FileOutcome, ledger: Ledger, out: Path) -> dict:
    folder = ledger.final_dir(f.source)
    return {
        "source": f.source,
        "kind": f.kind,
        "status": f.status,
        "error": f.error or "",
        "faces": f.faces,
        "tracks": f.tracks,
        "frames": f.frames,
        "seconds": f.seconds,
        "output": folder.relative_to(out).as_posix() if f.kind in ("image", "video") else "",
    }
