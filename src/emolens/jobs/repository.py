"""Video jobs' records in SQLite: the one place their state lives and changes.

Every state change is one conditional ``UPDATE`` (``... WHERE status = 'queued'``) whose row
count says whether it happened, never a read followed by a write: two workers cannot both
claim a job, a worker cannot finish a job that was taken from it, and a cancel or delete
is seen by a worker in any process that shares the database.

A running job names its owner (the executor running it: host, process id and a token) and
the owner refreshes a heartbeat. At start-up :meth:`JobRepository.recover` requeues only the
jobs whose owner is gone (its process ended, or its heartbeat is older than
:data:`LEASE_S`), so running recovery twice, or in two processes, requeues nothing twice.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from emolens._db import Migration, columns, connect, migrate, transaction

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
LEASE_S = 60.0  # a running job whose owner has not beaten for this long is taken as orphaned
MAX_ATTEMPTS = 2  # runs interrupted by a crash before the job is failed rather than retried


def _add_missing(table: str, added: dict[str, str]) -> Migration:
    """A migration adding columns, skipping those a database from before versioning has."""

    def step(db: sqlite3.Connection) -> None:
        present = columns(db, table)
        for name, kind in added.items():
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    return step


# Schema versions, in order; ``PRAGMA user_version`` counts those applied. The first two
# match releases from before versioning (their databases have version 0 and may hold the
# second's columns already), hence IF NOT EXISTS and _add_missing.
MIGRATIONS: tuple[Migration, ...] = (
    """CREATE TABLE IF NOT EXISTS jobs (
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
    )""",
    _add_missing("jobs", {"started": "REAL", "finished": "REAL"}),
    _add_missing(
        "jobs",
        {
            "owner": "TEXT",
            "heartbeat": "REAL",
            "cancel_requested": "INTEGER NOT NULL DEFAULT 0",
            "deleted": "INTEGER NOT NULL DEFAULT 0",
        },
    ),
)


@dataclass(frozen=True)
class Job:
    """One video job as stored. ``summary`` is the finished video's summary (None before)."""

    id: str
    status: JobStatus
    progress: float
    filename: str
    input_name: str
    attempts: int
    created: float
    updated: float
    error: str | None = None
    summary: dict[str, Any] | None = None
    started: float | None = None
    finished: float | None = None

    @property
    def processing_s(self) -> float | None:
        """Seconds from the worker's start to the job's end; None while it runs or when not recorded."""
        if self.started is None or self.finished is None:
            return None
        return round(self.finished - self.started, 2)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            status=row["status"],
            progress=row["progress"],
            filename=row["filename"] or "",
            input_name=row["input_name"],
            attempts=row["attempts"],
            created=row["created"],
            updated=row["updated"],
            error=row["error"],
            summary=json.loads(row["summary"]) if row["summary"] else None,
            started=row["started"],
            finished=row["finished"],
        )


def new_owner() -> str:
    """An executor's identity: ``host:pid:token`` (the token tells two executors of one process apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_gone(owner: str | None, heartbeat: float | None, now: float) -> bool:
    """Whether a running job's owner can no longer be running it.

    Its heartbeat stopped over :data:`LEASE_S` ago, or it was a process on this host that
    has ended (found at once, so a restart right after a crash requeues without waiting).
    """
    if owner is None or heartbeat is None or now - heartbeat > LEASE_S:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a live process of another user
        return False
    return False


class JobRepository:
    """The jobs table: create, read, and change state atomically.

    Args:
        path: the SQLite file; created and migrated to the current schema when opened.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        migrate(self._db(), MIGRATIONS)

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections must stay in the thread that made them)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path)
        return db

    def _change(self, sql: str, *args: object) -> int:
        """Run one UPDATE/DELETE; the number of rows it changed."""
        return self._db().execute(sql, args).rowcount

    # --- reading ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """The job, or None when there is none (or it was deleted)."""
        row = self._db().execute("SELECT * FROM jobs WHERE id = ? AND deleted = 0", (job_id,)).fetchone()
        return None if row is None else Job.from_row(row)

    def recent(self, limit: int = 100) -> list[Job]:
        """The newest jobs first."""
        rows = (
            self._db()
            .execute("SELECT * FROM jobs WHERE deleted = 0 ORDER BY created DESC LIMIT ?", (limit,))
            .fetchall()
        )
        return [Job.from_row(r) for r in rows]

    def queued(self) -> list[str]:
        """Ids of the jobs waiting for a worker, oldest first."""
        rows = (
            self._db()
            .execute("SELECT id FROM jobs WHERE status = 'queued' AND deleted = 0 ORDER BY created, id")
            .fetchall()
        )
        return [r["id"] for r in rows]

    def cancel_requested(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs were cancelled or deleted since they started."""
        if not job_ids:
            return set()
        marks = ", ".join("?" * len(job_ids))
        rows = (
            self._db()
            .execute(f"SELECT id FROM jobs WHERE id IN ({marks}) AND (cancel_requested = 1 OR deleted = 1)", job_ids)
            .fetchall()
        )
        return {r["id"] for r in rows}

    # --- state changes ---------------------------------------------------------------------

    def add(self, job_id: str, filename: str, input_name: str) -> Job:
        """Record a new queued job (its input already in place)."""
        now = time.time()
        self._db().execute(
            "INSERT INTO jobs (id, status, filename, input_name, created, updated) VALUES (?, 'queued', ?, ?, ?, ?)",
            (job_id, filename[:200], input_name, now, now),
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def claim(self, job_id: str, owner: str) -> Job | None:
        """Start the job for ``owner`` if it is still queued; None when another got it first,
        or it was cancelled or deleted meanwhile."""
        now = time.time()
        changed = self._change(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, progress = 0, started = ?,"
            " finished = NULL, owner = ?, heartbeat = ?, updated = ?"
            " WHERE id = ? AND status = 'queued' AND deleted = 0 AND cancel_requested = 0",
            now,
            owner,
            now,
            now,
            job_id,
        )
        return self.get(job_id) if changed else None

    def progress(self, job_id: str, owner: str, fraction: float) -> bool:
        """Record a running job's progress; False when it is no longer this owner's to run."""
        now = time.time()
        return bool(
            self._change(
                "UPDATE jobs SET progress = ?, heartbeat = ?, updated = ?"
                " WHERE id = ? AND status = 'running' AND owner = ?",
                fraction,
                now,
                now,
                job_id,
                owner,
            )
        )

    def beat(self, owner: str) -> None:
        """Tell other processes that ``owner`` is still running its jobs."""
        self._change("UPDATE jobs SET heartbeat = ? WHERE owner = ? AND status = 'running'", time.time(), owner)

    def finish(
        self,
        job_id: str,
        owner: str,
        status: JobStatus,
        *,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> bool:
        """End a running job as done, failed or cancelled; False when it was not this owner's."""
        now = time.time()
        return bool(
            self._change(
                "UPDATE jobs SET status = ?, error = ?, summary = ?, progress = CASE WHEN ? = 'done' THEN 1.0"
                " ELSE progress END, finished = ?, owner = NULL, updated = ?"
                " WHERE id = ? AND status = 'running' AND owner = ?",
                status,
                None if error is None else error[:500],
                None if summary is None else json.dumps(summary),
                status,
                now,
                now,
                job_id,
                owner,
            )
        )

    def release(self, owner: str) -> int:
        """Put ``owner``'s running jobs back in the queue (a clean shutdown, not a failed attempt)."""
        return self._change(
            "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), progress = 0, owner = NULL,"
            " updated = ? WHERE owner = ? AND status = 'running'",
            time.time(),
            owner,
        )

    def delete(self, job_id: str) -> bool:
        """Hide the job at once and stop it if it runs; its row and files go in :meth:`purgeable`'s sweep."""
        return bool(self._mark_deleted("id = ?", job_id))

    def expire(self, older_than: float) -> int:
        """Delete (as :meth:`delete`) every job created before this Unix time."""
        return self._mark_deleted("created < ?", older_than)

    def _mark_deleted(self, where: str, value: object) -> int:
        return self._change(
            f"UPDATE jobs SET deleted = 1, cancel_requested = 1, updated = ? WHERE {where} AND deleted = 0",
            time.time(),
            value,
        )

    def purgeable(self) -> list[str]:
        """Deleted jobs no worker is running: their files can go, then their rows (:meth:`purge`)."""
        rows = self._db().execute("SELECT id FROM jobs WHERE deleted = 1 AND status != 'running'").fetchall()
        return [r["id"] for r in rows]

    def purge(self, job_id: str) -> bool:
        """Remove a deleted job's row (after its files)."""
        return bool(self._change("DELETE FROM jobs WHERE id = ? AND deleted = 1 AND status != 'running'", job_id))

    def recover(self) -> list[str]:
        """Requeue running jobs whose owner is gone (failed instead after :data:`MAX_ATTEMPTS`
        interrupted runs: a video that crashes the server must not crash it forever); returns
        the ids of the jobs this changed. Safe to run in any number of processes at once."""
        now = time.time()
        changed = []
        with transaction(self._db()) as db:
            rows = db.execute(
                "SELECT id, attempts, owner, heartbeat, deleted FROM jobs WHERE status = 'running' ORDER BY id"
            ).fetchall()
            for row in rows:
                if not owner_is_gone(row["owner"], row["heartbeat"], now):
                    continue
                if row["deleted"]:
                    status, error = "cancelled", None
                elif row["attempts"] >= MAX_ATTEMPTS:
                    status, error = "failed", "interrupted twice by a server restart"
                else:
                    status, error = "queued", None
                requeued = status == "queued"
                db.execute(
                    "UPDATE jobs SET status = ?, error = ?, progress = CASE WHEN ? THEN 0 ELSE progress END,"
                    " finished = CASE WHEN ? THEN NULL ELSE ? END, owner = NULL, updated = ?"
                    " WHERE id = ? AND status = 'running'",
                    (status, error, requeued, requeued, now, now, row["id"]),
                )
                changed.append(row["id"])
        return changed
