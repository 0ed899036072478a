"""Cameras the server watches: SQLite rows that outlive restarts, one worker per running camera.

The row is the operator's intent (``desired`` running or stopped) and the last state seen;
the worker is the reading itself. At start-up every camera whose intent is running gets a
worker again (once per process: not in the reloader's watcher of ``serve --debug``, nor under
``TESTING`` unless asked). The source is stored as given, since reconnecting needs it, and
shown, everywhere, through :func:`~emolens.inference.urls.mask_credentials`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from flask import Flask

from emolens._db import connect, migrate
from emolens.inference.live_source import SourceState, SourceStatus
from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.urls import mask_credentials
from emolens.web.camera_worker import CameraWorker

logger = logging.getLogger(__name__)

# Schema versions, in order: the database's ``user_version`` says how many it has applied.
MIGRATIONS = (
    """CREATE TABLE cameras (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        model TEXT,
        every_nth INTEGER NOT NULL DEFAULT 1,
        created REAL NOT NULL,
        desired TEXT NOT NULL DEFAULT 'running',
        state TEXT NOT NULL DEFAULT 'stopped',
        reason TEXT NOT NULL DEFAULT '',
        since REAL NOT NULL DEFAULT 0
    )""",
)


class CameraStore:
    """Add, list, start, stop and delete cameras; each running one has a :class:`CameraWorker`.

    Args:
        root: data directory; holds ``cameras.sqlite3``.
        recognizer_factory: the recognizer for a model name (None: the server's stream model).
        worker_options: passed to each :class:`CameraWorker` (timeouts, record bounds).
    """

    def __init__(
        self,
        root: str | Path,
        recognizer_factory: Callable[[str | None], EmotionRecognizer],
        **worker_options: float,
    ):
        self.db_path = Path(root) / "cameras.sqlite3"
        self._recognizer_factory = recognizer_factory
        self._worker_options = worker_options
        self._workers: dict[str, CameraWorker] = {}
        self._lock = threading.Lock()
        with closing(self._db()) as db:
            migrate(db, MIGRATIONS)

    def _db(self) -> sqlite3.Connection:
        return connect(self.db_path)

    def _update(self, camera_id: str, **fields: object) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with closing(self._db()) as db:
            db.execute(f"UPDATE cameras SET {sets} WHERE id = ?", (*fields.values(), camera_id))

    def add(self, name: str, source: str, *, model: str | None = None, every_nth: int = 1) -> dict:
        """Record a camera (checked by the caller) and start reading it; its public dict."""
        camera_id = uuid.uuid4().hex
        with closing(self._db()) as db:
            db.execute(
                "INSERT INTO cameras (id, name, source, model, every_nth, created, desired, state, since)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', 'connecting', ?)",
                (camera_id, name, source, model, every_nth, time.time(), time.time()),
            )
        logger.info("camera %s (%s) added: %s", camera_id, name, mask_credentials(source))
        self._start_worker(camera_id, retry_first=False)
        return self.get(camera_id) or {}

    def _row(self, camera_id: str) -> dict | None:
        with closing(self._db()) as db:
            row = db.execute("SELECT * FROM cameras WHERE id = ?", (camera_id,)).fetchone()
        return dict(row) if row is not None else None

    def get(self, camera_id: str) -> dict | None:
        """The camera as the API shows it (source masked), or None."""
        row = self._row(camera_id)
        return self._public(row) if row is not None else None

    def list(self) -> list[dict]:
        with closing(self._db()) as db:
            rows = db.execute("SELECT * FROM cameras ORDER BY created").fetchall()
        return [self._public(dict(r)) for r in rows]

    def worker(self, camera_id: str) -> CameraWorker | None:
        return self._workers.get(camera_id)

    def start(self, camera_id: str) -> dict | None:
        """Start reading again (a no-op if it runs); None for an unknown camera."""
        if self._row(camera_id) is None:
            return None
        self._update(camera_id, desired="running")
        self._start_worker(camera_id, retry_first=False)
        return self.get(camera_id)

    def stop(self, camera_id: str) -> dict | None:
        """Stop reading and remember it (it stays stopped after a restart); None for an unknown camera."""
        if self._row(camera_id) is None:
            return None
        self._update(camera_id, desired="stopped")
        self._stop_worker(camera_id)
        self._update(camera_id, state="stopped", reason="", since=time.time())
        return self.get(camera_id)

    def delete(self, camera_id: str) -> bool:
        if self._row(camera_id) is None:
            return False
        self._stop_worker(camera_id)
        with closing(self._db()) as db:
            db.execute("DELETE FROM cameras WHERE id = ?", (camera_id,))
        logger.info("camera %s deleted", camera_id)
        return True

    def resume(self) -> int:
        """Start every camera whose operator left it running (at boot); how many."""
        with closing(self._db()) as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM cameras WHERE desired = 'running' ORDER BY created")]
        for camera_id in ids:
            logger.info("camera %s resumed after a restart", camera_id)
            self._start_worker(camera_id, retry_first=True)
        return len(ids)

    def shutdown(self) -> None:
        """Stop every worker; the rows keep ``desired`` so the next start resumes them."""
        with self._lock:
            workers = dict(self._workers)
            self._workers.clear()
        for camera_id, worker in workers.items():
            worker.on_status = None  # not the operator's stop: ``desired`` stays as it was
            worker.stop()
            self._update(camera_id, state="stopped", reason="the server stopped", since=time.time())

    def _start_worker(self, camera_id: str, *, retry_first: bool) -> None:
        row = self._row(camera_id)
        if row is None:
            return
        try:
            recognizer = self._recognizer_factory(row["model"])
        except Exception as exc:  # e.g. a model a later version no longer ships: this camera fails, not the server
            logger.exception("camera %s: its model %r could not be loaded", camera_id, row["model"])
            reason = f"its model could not be loaded ({type(exc).__name__}); delete it and add it again"
            self._record_status(camera_id, SourceStatus(SourceState.FAILED, reason, time.time()))
            return
        with self._lock:
            current = self._workers.get(camera_id)
            if current is not None and current.running and current.status.state is not SourceState.FAILED:
                return
            if current is not None:  # failed, or ended: its thread is done or about to be
                current.on_status = None
                current.stop(wait=0)
            worker = CameraWorker(
                row["source"],
                recognizer,
                every_nth=row["every_nth"],
                retry_first=retry_first,
                on_status=lambda status: self._record_status(camera_id, status),
                **self._worker_options,  # type: ignore[arg-type]
            )
            self._workers[camera_id] = worker
        self._record_status(camera_id, worker.status)
        worker.start()

    def _stop_worker(self, camera_id: str) -> None:
        with self._lock:
            worker = self._workers.pop(camera_id, None)
        if worker is not None:
            worker.on_status = None
            worker.stop()

    def _record_status(self, camera_id: str, status: SourceStatus) -> None:
        self._update(camera_id, state=status.state.value, reason=status.reason, since=status.since)
        if status.state in (SourceState.FAILED, SourceState.RECONNECTING):
            logger.info("camera %s: %s", camera_id, status)

    def _public(self, row: dict) -> dict:
        """The camera for the API: the source masked, the live state if a worker runs."""
        worker = self._workers.get(row["id"])
        state, reason, since = row["state"], row["reason"], row["since"]
        fps = 0.0
        if worker is not None:
            state, reason, since = worker.status.state.value, worker.status.reason, worker.status.since
            fps = worker.snapshot.fps if state == "live" else 0.0
        return {
            "id": row["id"],
            "name": row["name"],
            "source": mask_credentials(row["source"]),
            "model": row["model"],
            "every": row["every_nth"],
            "created": row["created"],
            "desired": row["desired"],
            "state": state,
            "reason": reason,
            "since": since,
            "fps": fps,
        }


def init_app(app: Flask) -> None:
    """Open the store; resume cameras unless ``CAMERAS_AUTOSTART`` is off (default: off under TESTING)."""
    import atexit

    def factory(model: str | None) -> EmotionRecognizer:
        with app.app_context():
            from emolens.web.extensions import get_recognizer

            return get_recognizer(model or app.config["STREAM_MODEL"])

    store = CameraStore(
        app.config["DATA_DIR"],
        factory,
        open_timeout=app.config["CAMERA_TIMEOUT_S"],
        read_timeout=app.config["CAMERA_TIMEOUT_S"],
    )
    app.extensions["emolens_cameras"] = store
    autostart = app.config.get("CAMERAS_AUTOSTART")
    if autostart if autostart is not None else not app.testing:
        store.resume()
        atexit.register(store.shutdown)


def get_cameras() -> CameraStore:
    from flask import current_app

    return current_app.extensions["emolens_cameras"]
