"""Video jobs: SQLite-backed records, files under the data dir, a bounded worker pool.

The database is the source of truth: a job's row is committed before its work starts and
its status changes only after its files are in place, so a restart (even ``kill -9``)
finds finished results intact. At start-up, jobs left ``running`` are requeued once, then
marked failed with a reason; expired jobs are removed with their files.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

from flask import Flask

from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.video import Cancelled, process_video

logger = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed", "cancelled")
OUTPUTS = {"video": "annotated.mp4", "csv": "frames.csv", "json": "frames.json", "plot": "timeline.png"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    filename TEXT,
    input_name TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
)
"""
# Columns added after the first release, with their types: _migrate adds any a database lacks,
# so a database from before them opens with its rows intact (their values NULL: not recorded).
_ADDED_COLUMNS = {"started": "REAL", "finished": "REAL"}


class JobStore:
    """Create, run, query and delete video jobs.

    Args:
        root: data directory; holds ``jobs.sqlite3`` and ``jobs/<id>/``.
        recognizer_factory: returns the EmotionRecognizer the workers use.
        max_workers: jobs processed at once; the rest wait in the queue.
        retention_days: jobs older than this are deleted with their files.
    """

    def __init__(
        self,
        root: str | Path,
        recognizer_factory: Callable[[], EmotionRecognizer],
        *,
        max_workers: int = 1,
        retention_days: float = 7,
        max_output_pixels: int | None = None,
    ):
        self.root = Path(root)
        self.files = self.root / "jobs"
        self.files.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "jobs.sqlite3"
        self._recognizer_factory = recognizer_factory
        self._max_output_pixels = max_output_pixels
        self.retention_s = retention_days * 86400
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="emolens-job")
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopping = False
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            _migrate(db)
        self.expire()
        self._recover()

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _update(self, job_id: str, **fields: object) -> None:
        fields["updated"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with closing(self._db()) as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*fields.values(), job_id))

    def job_dir(self, job_id: str) -> Path:
        return self.files / job_id

    def create(self, upload: Path, filename: str) -> str:
        """Take ownership of an uploaded file (moved into the job's folder) and queue it."""
        self.expire()
        job_id = uuid.uuid4().hex
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True)
        input_name = "input" + upload.suffix.lower()
        shutil.move(str(upload), folder / input_name)
        now = time.time()
        with closing(self._db()) as db:
            db.execute(
                "INSERT INTO jobs (id, status, filename, input_name, created, updated)"
                " VALUES (?, 'queued', ?, ?, ?, ?)",
                (job_id, filename[:200], input_name, now, now),
            )
        self._submit(job_id)
        return job_id

    def get(self, job_id: str) -> dict | None:
        with closing(self._db()) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        job = dict(row)
        job["summary"] = json.loads(job["summary"]) if job["summary"] else None
        return job

    def list(self, limit: int = 100) -> list[dict]:
        with closing(self._db()) as db:
            rows = db.execute(
                "SELECT id, status, progress, error, filename, created, started, finished"
                " FROM jobs ORDER BY created DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(r) for r in rows]

    def delete(self, job_id: str) -> bool:
        """Cancel the job if it runs, then remove its row and files."""
        job = self.get(job_id)
        if job is None:
            return False
        event = self._cancel.get(job_id)
        if event is not None:
            event.set()
        with closing(self._db()) as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        return True

    def expire(self) -> int:
        cutoff = time.time() - self.retention_s
        with closing(self._db()) as db:
            old = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE created < ?", (cutoff,)).fetchall()]
        for job_id in old:
            self.delete(job_id)
        return len(old)

    def _recover(self) -> None:
        with closing(self._db()) as db:
            rows = db.execute("SELECT id, status, attempts FROM jobs WHERE status IN ('queued', 'running')").fetchall()
        for row in sorted(rows, key=lambda r: r["id"]):
            if row["status"] == "running" and row["attempts"] >= 2:
                self._update(row["id"], status="failed", error="interrupted twice by a server restart")
                continue
            if row["status"] == "running":
                logger.info("requeueing job %s interrupted by a restart", row["id"])
                self._update(row["id"], status="queued", progress=0.0)
            self._submit(row["id"])

    def _submit(self, job_id: str) -> None:
        with self._lock:
            self._cancel[job_id] = threading.Event()
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        cancel = self._cancel.get(job_id)
        job = self.get(job_id)
        if job is None or job["status"] != "queued" or cancel is None or cancel.is_set():
            return
        started = time.time()
        attempts = job["attempts"] + 1
        self._update(job_id, status="running", attempts=attempts, progress=0.0, started=started, finished=None)
        folder = self.job_dir(job_id)
        logger.info("job %s started (attempt %d)", job_id, attempts)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.5:  # don't hammer SQLite
                last[0] = now
                self._update(job_id, progress=min(0.99, done / max(total, 1)))

        try:
            result = process_video(
                folder / job["input_name"],
                self._recognizer_factory(),
                target=folder / OUTPUTS["video"],
                csv_path=folder / OUTPUTS["csv"],
                json_path=folder / OUTPUTS["json"],
                plot_path=folder / OUTPUTS["plot"],
                on_progress=progress,
                cancel=cancel,
                max_output_pixels=self._max_output_pixels,
            )
            if self.get(job_id) is not None:
                self._update(
                    job_id, status="done", progress=1.0, summary=json.dumps(result.summary()), finished=time.time()
                )
            logger.info("job %s done in %.1f s", job_id, time.time() - started)
        except Cancelled:
            if self._stopping:  # left 'running': the next start requeues it
                logger.info("job %s stopped by the server's shutdown after %.1f s", job_id, time.time() - started)
                return
            logger.info("job %s cancelled after %.1f s", job_id, time.time() - started)
            if self.get(job_id) is not None:
                self._update(job_id, status="cancelled", finished=time.time())
        except Exception as exc:  # a job's failure is recorded, never raised into the pool
            logger.exception("job %s failed after %.1f s", job_id, time.time() - started)
            if self.get(job_id) is not None:
                message = str(exc).replace(str(folder / job["input_name"]), "the uploaded video")  # no server paths
                self._update(job_id, status="failed", error=message[:500], finished=time.time())
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
            if self.get(job_id) is None:  # deleted while running: remove what the worker re-created
                shutil.rmtree(folder, ignore_errors=True)

    def shutdown(self) -> None:
        """Stop the workers; jobs they were running stay 'running' and are requeued on the next start."""
        self._stopping = True
        for event in list(self._cancel.values()):
            event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns of :data:`_ADDED_COLUMNS` that the jobs table lacks (SQLite has no
    ``ADD COLUMN IF NOT EXISTS``); existing rows keep their values and get NULL in the new ones."""
    present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in present:
            try:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it in the meantime
                if "duplicate column" not in str(exc):
                    raise


def init_app(app: Flask) -> None:
    def factory() -> EmotionRecognizer:
        with app.app_context():
            from emolens.web.extensions import get_stream_recognizer

            return get_stream_recognizer()

    app.extensions["emolens_jobs"] = JobStore(
        app.config["DATA_DIR"],
        factory,
        max_workers=app.config["MAX_WORKERS"],
        retention_days=app.config["JOB_RETENTION_DAYS"],
        max_output_pixels=app.config["MAX_OUTPUT_PIXELS"],
    )


def get_jobs() -> JobStore:
    from flask import current_app

    return current_app.extensions["emolens_jobs"]
