"""Video jobs: records (:mod:`.repository`), files (:mod:`.files`), execution
(:mod:`.executor`) and the work itself (:mod:`.task`), put together by :class:`VideoJobs`.

The database is the source of truth: a job's row is committed before its work starts and
its status changes only after its files are in place, so a restart (even ``kill -9``)
finds finished results intact and requeues the job that was cut short. None of this
imports Flask: the web server is one user, a worker process sharing the data directory
could be another.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from emolens.inference.recognizer import EmotionRecognizer
from emolens.jobs.executor import JobExecutor, ThreadExecutor
from emolens.jobs.files import OUTPUTS, JobFiles
from emolens.jobs.repository import Job, JobRepository
from emolens.jobs.task import run_video_job

__all__ = ["OUTPUTS", "Job", "JobExecutor", "JobFiles", "JobRepository", "ThreadExecutor", "VideoJobs"]

logger = logging.getLogger(__name__)

PURGE_EVERY_S = 1.0  # how soon a deleted job's files go
EXPIRE_EVERY_S = 600.0


class VideoJobs:
    """Create, query and delete video jobs; run them on a pool of threads.

    Deleting hides a job at once and stops it if it runs; its files are removed by a
    background sweep (a request never waits on a large folder's removal), which also
    deletes jobs older than the retention.

    Args:
        root: data directory; holds ``jobs.sqlite3``, ``jobs/<id>/`` and ``uploads/``.
        recognizer_factory: returns the recogniser a job uses (called once per job).
        max_workers: jobs processed at once; 0 runs none here (another process sharing
            ``root`` runs them).
        retention_days: jobs older than this are deleted with their files.
        max_output_pixels: the annotated copy is scaled down to at most this many pixels a frame.
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
        self.files = JobFiles(root)
        self.repository = JobRepository(Path(root) / "jobs.sqlite3")
        self.retention_s = retention_days * 86400

        def task(job: Job, progress: Callable[[int, int], None], cancel: threading.Event) -> dict:
            return run_video_job(
                self.files.folder(job.id),
                job.input_name,
                recognizer_factory(),
                on_progress=progress,
                cancel=cancel,
                max_output_pixels=max_output_pixels,
            )

        self.executor: JobExecutor | None = None
        if max_workers > 0:
            self.executor = ThreadExecutor(
                self.repository, task, lambda job: self.files.folder(job.id) / job.input_name, max_workers=max_workers
            )
        self._stop = threading.Event()
        self._janitor = threading.Thread(target=self._sweep_files, name="emolens-jobs-janitor", daemon=True)
        self._janitor.start()

    def create(self, upload: Path, filename: str) -> Job:
        """Take ownership of an uploaded file (moved into the job's folder) and queue it."""
        job_id = uuid.uuid4().hex
        job = self.repository.add(job_id, filename, self.files.adopt(job_id, upload))
        if self.executor is not None:
            self.executor.submit(job_id)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.repository.get(job_id)

    def recent(self, limit: int = 100) -> list[Job]:
        return self.repository.recent(limit)

    def delete(self, job_id: str) -> bool:
        """Stop the job if it runs and hide it; its row and files follow in the background."""
        return self.repository.delete(job_id)

    def purge(self) -> int:
        """Remove the files, then the rows, of deleted jobs no worker is running."""
        removed = 0
        for job_id in self.repository.purgeable():
            self.files.remove(job_id)
            removed += self.repository.purge(job_id)
        return removed

    def shutdown(self) -> None:
        """Stop the workers (jobs they were running are requeued for the next start) and the sweep."""
        self._stop.set()
        if self.executor is not None:
            self.executor.shutdown()
        self._janitor.join()

    def _sweep_files(self) -> None:
        next_expiry = 0.0
        while not self._stop.wait(PURGE_EVERY_S if next_expiry else 0):
            try:
                if time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + EXPIRE_EVERY_S
                    if expired := self.repository.expire(time.time() - self.retention_s):
                        logger.info("%d job(s) past the retention deleted", expired)
                self.purge()
            except Exception:  # a file or the database briefly unavailable: try again next round
                logger.exception("jobs janitor")
