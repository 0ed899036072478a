"""Video jobs without Flask (emolens.jobs): the repository's state changes, recovery after a
crash, cancels seen through the database, the background removal of files, and databases
written by older releases."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from emolens.errors import Cancelled
from emolens.jobs import JobRepository, ThreadExecutor, VideoJobs
from emolens.jobs.repository import LEASE_S, MIGRATIONS, new_owner

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


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def repo(tmp_path):
    return JobRepository(tmp_path / "jobs.sqlite3")


def _dead_owner() -> str:
    """An owner on this host whose process has ended."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, _, _ = new_owner().partition(":")
    return f"{host}:{int(child.stdout)}:deadbeef"


def test_importing_jobs_needs_no_flask():
    code = "import sys, emolens.jobs; assert 'flask' not in sys.modules, 'flask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_queued_job_is_claimed_once_even_by_racing_workers(repo):
    repo.add("a" * 32, "talk.mp4", "input.mp4")
    winners = []
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        if repo.claim("a" * 32, f"host:1:{i}") is not None:
            winners.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    job = repo.get("a" * 32)
    assert job.status == "running" and job.attempts == 1 and job.started is not None


def test_only_the_owner_records_progress_and_the_outcome(repo):
    repo.add("a" * 32, "talk.mp4", "input.mp4")
    repo.claim("a" * 32, "me")
    assert not repo.progress("a" * 32, "someone-else", 0.5)
    assert repo.progress("a" * 32, "me", 0.5) and repo.get("a" * 32).progress == 0.5
    assert not repo.finish("a" * 32, "someone-else", "done", summary={"x": 1})
    assert repo.finish("a" * 32, "me", "done", summary={"x": 1})
    job = repo.get("a" * 32)
    assert (job.status, job.progress, job.summary) == ("done", 1.0, {"x": 1})
    assert job.processing_s is not None and job.processing_s >= 0
    assert not repo.finish("a" * 32, "me", "failed", error="twice")  # ended jobs stay ended


def test_recovery_requeues_a_dead_owners_job_once_and_leaves_a_live_owners_alone(repo):
    for job_id in ("a" * 32, "b" * 32, "c" * 32):
        repo.add(job_id, "talk.mp4", "input.mp4")
    repo.claim("a" * 32, _dead_owner())  # its process ended: a crash
    repo.claim("b" * 32, new_owner())  # this process, beating: alive
    repo.claim("c" * 32, "elsewhere:1:cafe")  # another host, beating: alive
    assert repo.recover() == ["a" * 32]
    assert repo.recover() == []  # a second recovery (a second process starting) changes nothing
    assert [repo.get(j).status for j in ("a" * 32, "b" * 32, "c" * 32)] == ["queued", "running", "running"]
    assert repo.get("a" * 32).attempts == 1 and repo.queued() == ["a" * 32]


def test_a_silent_owner_loses_its_job_after_the_lease_and_a_twice_interrupted_job_fails(repo):
    repo.add("a" * 32, "talk.mp4", "input.mp4")
    repo.claim("a" * 32, "elsewhere:1:cafe")
    with sqlite3.connect(repo.path) as db:
        db.execute("UPDATE jobs SET heartbeat = ?", (time.time() - LEASE_S - 1,))
    assert repo.recover() == ["a" * 32] and repo.get("a" * 32).status == "queued"
    repo.claim("a" * 32, _dead_owner())  # second attempt, interrupted too
    assert repo.recover() == ["a" * 32]
    job = repo.get("a" * 32)
    assert (job.status, job.error, job.attempts) == ("failed", "interrupted twice by a server restart", 2)
    assert job.finished is not None and job.processing_s is not None


def test_a_clean_shutdown_requeues_without_counting_an_attempt(repo):
    repo.add("a" * 32, "talk.mp4", "input.mp4")
    repo.claim("a" * 32, "me")
    assert repo.release("me") == 1
    job = repo.get("a" * 32)
    assert (job.status, job.attempts, job.progress) == ("queued", 0, 0.0)


def test_a_deleted_job_is_hidden_at_once_never_claimed_and_purged_after(repo):
    repo.add("a" * 32, "talk.mp4", "input.mp4")
    assert repo.delete("a" * 32) and not repo.delete("a" * 32)
    assert repo.get("a" * 32) is None and repo.recent() == [] and repo.queued() == []
    assert repo.claim("a" * 32, "me") is None
    assert repo.purgeable() == ["a" * 32] and repo.purge("a" * 32) and repo.purgeable() == []


def test_a_running_job_deleted_is_not_purged_until_its_worker_lets_go(repo):
    repo.add("a" * 32, "talk.mp4", "input.mp4")
    repo.claim("a" * 32, "me")
    repo.delete("a" * 32)
    assert repo.cancel_requested(["a" * 32]) == {"a" * 32}
    assert repo.purgeable() == [] and not repo.purge("a" * 32)
    repo.finish("a" * 32, "me", "cancelled")
    assert repo.purgeable() == ["a" * 32]


def test_a_delete_through_the_database_stops_a_running_task(repo):
    """The cancel reaches the worker through the repository, as it would from another process."""
    started = threading.Event()

    def task(job, progress, cancel):
        started.set()
        while not cancel.wait(0.05):
            progress(1, 10)
        raise Cancelled("stopped")

    repo.add("a" * 32, "talk.mp4", "input.mp4")
    executor = ThreadExecutor(repo, task, lambda job: job.input_name)
    try:
        executor.submit("a" * 32)
        assert started.wait(10)
        other = JobRepository(repo.path)  # e.g. the web server in another process
        other.delete("a" * 32)
        _wait(lambda: other.purgeable() == ["a" * 32], timeout=5)
    finally:
        executor.shutdown()
    with sqlite3.connect(repo.path) as db:
        assert db.execute("SELECT status FROM jobs").fetchone()[0] == "cancelled"


def test_a_failing_task_is_recorded_without_server_paths(repo, tmp_path):
    source = tmp_path / "jobs" / ("a" * 32) / "input.mp4"

    def task(job, progress, cancel):
        raise ValueError(f"cannot decode {source}: truncated")

    repo.add("a" * 32, "talk.mp4", "input.mp4")
    executor = ThreadExecutor(repo, task, lambda job: source)
    try:
        executor.submit("a" * 32)
        _wait(lambda: repo.get("a" * 32).status == "failed")
    finally:
        executor.shutdown()
    assert repo.get("a" * 32).error == "cannot decode the uploaded video: truncated"


def test_an_executor_picks_up_jobs_queued_by_a_process_that_runs_none(tmp_path):
    """``max_workers=0``: a web server that only queues; a worker sharing the data dir runs the jobs."""
    ran = []

    def task(job, progress, cancel):
        ran.append(job.id)
        return {"frames": 3}

    front = VideoJobs(tmp_path, _no_recognizer, max_workers=0)
    upload = tmp_path / "upload.mp4"
    upload.write_bytes(b"not really a video")
    job = front.create(upload, "talk.mp4")
    assert (tmp_path / "jobs" / job.id / "input.mp4").read_bytes() == b"not really a video"
    time.sleep(0.3)
    assert front.get(job.id).status == "queued"
    worker = ThreadExecutor(JobRepository(tmp_path / "jobs.sqlite3"), task, lambda job: job.input_name)
    try:
        _wait(lambda: front.get(job.id).status == "done")
    finally:
        worker.shutdown()
        front.shutdown()
    assert ran == [job.id] and front.get(job.id).summary == {"frames": 3}


def test_deleting_removes_the_files_in_the_background(tmp_path):
    jobs = VideoJobs(tmp_path, _no_recognizer, max_workers=0)
    upload = tmp_path / "upload.mp4"
    upload.write_bytes(b"x")
    job = jobs.create(upload, "talk.mp4")
    try:
        assert jobs.delete(job.id) and jobs.get(job.id) is None
        _wait(lambda: not (tmp_path / "jobs" / job.id).exists(), timeout=5)
    finally:
        jobs.shutdown()
    assert jobs.repository.purgeable() == []


def test_migrations_apply_once(tmp_path):
    repo = JobRepository(tmp_path / "jobs.sqlite3")
    repo.add("a" * 32, "talk.mp4", "input.mp4")
    JobRepository(tmp_path / "jobs.sqlite3")  # a second open applies nothing and keeps the row
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


@pytest.mark.parametrize("with_times", [False, True], ids=["before-started-finished", "unversioned-with-them"])
def test_a_database_from_an_older_release_opens_and_lists_its_jobs(tmp_path, with_times):
    now = time.time()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute(OLD_SCHEMA)
        if with_times:  # the release that added them without a schema version
            db.execute("ALTER TABLE jobs ADD COLUMN started REAL")
            db.execute("ALTER TABLE jobs ADD COLUMN finished REAL")
        db.execute(
            "INSERT INTO jobs (id, status, progress, filename, input_name, attempts, summary, created, updated)"
            " VALUES (?, 'done', 1.0, 'old talk.mp4', 'input.mp4', 1, '{\"tracks\": {}}', ?, ?)",
            ("a" * 32, now - 60, now - 50),
        )
    (tmp_path / "jobs" / ("a" * 32)).mkdir(parents=True)
    for _ in range(2):  # a second start finds the columns there already
        jobs = VideoJobs(tmp_path, _no_recognizer)
        try:
            listed = jobs.recent()
            assert [(j.id, j.filename, j.status) for j in listed] == [("a" * 32, "old talk.mp4", "done")]
            assert listed[0].started is None and listed[0].finished is None  # not recorded then: unknown
            assert jobs.get("a" * 32).summary == {"tracks": {}}
        finally:
            jobs.shutdown()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        names = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert names[10:12] == ["started", "finished"] and len(names) == len(set(names))
    assert (tmp_path / "jobs" / ("a" * 32)).is_dir()  # nothing already stored is lost


def test_jobs_past_the_retention_are_deleted_with_their_files(tmp_path):
    repo = JobRepository(tmp_path / "jobs.sqlite3")
    repo.add("a" * 32, "old.mp4", "input.mp4")
    with sqlite3.connect(repo.path) as db:
        db.execute("UPDATE jobs SET created = ?", (time.time() - 8 * 86400,))
    (tmp_path / "jobs" / ("a" * 32)).mkdir(parents=True)
    jobs = VideoJobs(tmp_path, _no_recognizer, max_workers=0, retention_days=7)
    try:
        _wait(lambda: not (tmp_path / "jobs" / ("a" * 32)).exists(), timeout=5)
        assert jobs.recent() == []
    finally:
        jobs.shutdown()
    assert os.listdir(tmp_path / "jobs") == []
