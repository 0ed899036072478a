"""SQLite as the web server's stores use it: WAL, durable commits, versioned migrations.

Several processes may open one database at once (``serve --debug``'s reloader builds the app
twice; an external worker may share the jobs database), so schema changes run inside
``BEGIN IMMEDIATE`` and each records its number in ``PRAGMA user_version``: whichever
process comes second finds the work done and applies nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# A migration is SQL, or a function for the steps SQL cannot say conditionally (for example
# adding a column that an unversioned older release may have added already).
Migration = str | Callable[[sqlite3.Connection], None]


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit: :func:`transaction`)."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA synchronous=FULL")  # a committed state change survives a power cut
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception: the write lock is
    taken at the start, so a read-then-write inside cannot interleave with another writer's."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations the database lacks, each in its own transaction with its version
    number; returns the version reached. Switches the database to WAL first."""
    db.execute("PRAGMA journal_mode=WAL")
    while True:
        with transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version >= len(migrations):
                return int(version)
            step = migrations[version]
            if isinstance(step, str):
                db.execute(step)
            else:
                step(db)
            db.execute(f"PRAGMA user_version = {version + 1}")


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    """The names of a table's columns."""
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
