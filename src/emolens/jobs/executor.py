"""Who runs video jobs: the executor interface, and a pool of threads in this process.

An executor takes job ids, claims each through the repository (so a job another process
claimed is skipped), runs the task, and records the outcome. It learns of cancels from the
repository too: a delete made in any process that shares the database stops the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from emolens.errors import Cancelled
from emolens.jobs.repository import Job, JobRepository, new_owner

logger = logging.getLogger(__name__)

# The work of one job: the job, a progress callback (frames done, total) and its cancel flag;
# returns the summary to store.
JobTask = Callable[[Job, Callable[[int, int], None], threading.Event], dict[str, Any]]

CANCEL_POLL_S = 0.5  # how soon a cancel made elsewhere stops a running job
SWEEP_S = 5.0  # heartbeat, orphan recovery and queue pickup
PROGRESS_EVERY_S = 0.5  # progress writes per job (SQLite is not a counter)


class JobExecutor(Protocol):
    """Runs queued jobs. ``submit`` may be called for a job another executor took: it is skipped."""

    def submit(self, job_id: str) -> None: ...

    def shutdown(self) -> None: ...


class ThreadExecutor:
    """Run jobs on ``max_workers`` threads of this process.

    Besides the jobs it is handed, it sweeps the repository every :data:`SWEEP_S`: beats
    for its running jobs, requeues jobs whose owner died, and picks up queued jobs (from a
    restart, or queued by a process that runs no workers).

    Args:
        repository: the jobs' records.
        task: runs one job (see :data:`JobTask`).
        input_path: where a job's input lies (for error messages that hide server paths).
        max_workers: jobs run at once; the rest wait.
    """

    def __init__(
        self,
        repository: JobRepository,
        task: JobTask,
        input_path: Callable[[Job], Path],
        *,
        max_workers: int = 1,
    ):
        self.repository = repository
        self.owner = new_owner()
        self._task = task
        self._input_path = input_path
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="emolens-job")
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # submitted, not yet finished
        self._running: dict[str, threading.Event] = {}
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="emolens-jobs-monitor", daemon=True)
        self._monitor.start()

    def submit(self, job_id: str) -> None:
        with self._lock:
            if self._stop.is_set() or job_id in self._pending:
                return
            self._pending.add(job_id)
        self._pool.submit(self._run, job_id)

    def shutdown(self) -> None:
        """Stop the workers; the jobs they were running go back to the queue for the next start."""
        self._stop.set()
        with self._lock:
            for event in self._running.values():
                event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._monitor.join()
        released = self.repository.release(self.owner)
        if released:
            logger.info("%d running job(s) requeued for the next start", released)

    def _sweep(self) -> None:
        self.repository.beat(self.owner)
        for job_id in self.repository.recover():
            logger.info("job %s: its worker is gone; requeued or failed", job_id)
        for job_id in self.repository.queued():
            self.submit(job_id)

    def _watch(self) -> None:
        next_sweep = 0.0
        while not self._stop.wait(CANCEL_POLL_S if next_sweep else 0):
            try:
                with self._lock:
                    running = dict(self._running)
                for job_id in self.repository.cancel_requested(list(running)):
                    running[job_id].set()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_S
                    self._sweep()
            except Exception:  # the database is briefly unavailable: try again next round
                logger.exception("jobs monitor")

    def _run(self, job_id: str) -> None:
        try:
            job = None if self._stop.is_set() else self.repository.claim(job_id, self.owner)
            if job is not None:
                self._execute(job)
        finally:
            with self._lock:
                self._pending.discard(job_id)

    def _execute(self, job: Job) -> None:
        cancel = threading.Event()
        with self._lock:
            self._running[job.id] = cancel
        started = time.monotonic()
        logger.info("job %s started (attempt %d)", job.id, job.attempts)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > PROGRESS_EVERY_S:
                last[0] = now
                if not self.repository.progress(job.id, self.owner, min(0.99, done / max(total, 1))):
                    cancel.set()  # taken from us (deleted, or requeued by a sweep elsewhere)

        try:
            summary = self._task(job, progress, cancel)
            self.repository.finish(job.id, self.owner, "done", summary=summary)
            logger.info("job %s done in %.1f s", job.id, time.monotonic() - started)
        except Cancelled:
            if self._stop.is_set():  # released by shutdown() for the next start
                logger.info("job %s stopped by the shutdown after %.1f s", job.id, time.monotonic() - started)
            else:
                self.repository.finish(job.id, self.owner, "cancelled")
                logger.info("job %s cancelled after %.1f s", job.id, time.monotonic() - started)
        except Exception as exc:  # a job's failure is recorded, never raised into the pool
            logger.exception("job %s failed after %.1f s", job.id, time.monotonic() - started)
            message = str(exc).replace(str(self._input_path(job)), "the uploaded video")  # no server paths
            self.repository.finish(job.id, self.owner, "failed", error=message)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
