"""JobStore (emolens.web.jobs): the SQLite records, and databases written by older versions."""

from __future__ import annotations

import sqlite3
import time

from emolens.web.jobs import JobStore

# The jobs table as releases before started/finished wrote it (kept verbatim: do not update).
OLD_SCHEMA = """
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


def _no_recognizer():
    raise AssertionError("no job should run in this test")


def test_a_database_from_before_started_and_finished_opens_and_lists_its_jobs(tmp_path):
    now = time.time()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute(OLD_SCHEMA)
        db.execute(
            "INSERT INTO jobs (id, status, progress, filename, input_name, attempts, summary, created, updated)"
            " VALUES (?, 'done', 1.0, 'old talk.mp4', 'input.mp4', 1, '{\"tracks\": {}}', ?, ?)",
            ("a" * 32, now - 60, now - 50),
        )
    (tmp_path / "jobs" / ("a" * 32)).mkdir(parents=True)
    store = JobStore(tmp_path, _no_recognizer)
    try:
        listed = store.list()
        assert [(j["id"], j["filename"], j["status"]) for j in listed] == [("a" * 32, "old talk.mp4", "done")]
        assert listed[0]["started"] is None and listed[0]["finished"] is None  # not recorded then: unknown
        assert store.get("a" * 32)["summary"] == {"tracks": {}}
    finally:
        store.shutdown()
    store = JobStore(tmp_path, _no_recognizer)  # a second start finds the columns there already
    try:
        assert [j["id"] for j in store.list()] == ["a" * 32]
    finally:
        store.shutdown()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert columns[-2:] == ["started", "finished"] and len(columns) == len(set(columns))
