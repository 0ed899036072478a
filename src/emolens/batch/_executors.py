"""Who runs :func:`analyze_file`: this process, or a pool of worker processes.

Both yield ``(item, workdir, outcome)`` as files finish; the driver commits each one. The
pool's workers each build one recognizer in their initializer and keep it for every file.
Only as many files as there are workers are in flight at once, so that a worker that dies
(a decoder crash, the OOM killer) costs only the files it and its siblings held: those are
retried in a fresh pool, and a file in flight at :data:`MAX_ATTEMPTS` deaths is failed.
"""

from __future__ import annotations

import multiprocessing
import queue
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from emolens.batch._inputs import InputFile
from emolens.batch._ledger import FileOutcome
from emolens.batch._worker import BatchSettings, analyze_file, build_recognizer

Task = tuple[InputFile, Path]
MAX_ATTEMPTS = 3

# A pool worker's own recognizer and progress queue, set once by its initializer: the one
# piece of module state, local to each worker process, never touched in the driver.
_WORKER: dict = {}


def run_serial(
    tasks: list[Task], settings: BatchSettings, on_frames: Callable[[int], None] | None = None
) -> Iterator[tuple[InputFile, Path, FileOutcome]]:
    """One file after another in this process, with one recognizer."""
    if not tasks:
        return
    recognizer = build_recognizer(settings)
    for item, workdir in tasks:
        yield item, workdir, analyze_file(item, settings, recognizer, workdir, on_frames=on_frames)


def run_pool(
    tasks: list[Task],
    settings: BatchSettings,
    workers: int,
    on_frames: Callable[[int], None] | None = None,
) -> Iterator[tuple[InputFile, Path, FileOutcome]]:
    """The files on ``workers`` processes (spawned: no fork of a driver holding ONNX Runtime threads)."""
    ctx = multiprocessing.get_context("spawn")
    frames: multiprocessing.Queue[int] = ctx.Queue()
    pending = list(reversed(tasks))
    retries = Retries(settings)
    while pending:
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(settings, frames)
        ) as pool:
            running: dict[Future[FileOutcome], Task] = {}
            try:
                while pending or running:
                    while pending and len(running) < workers:
                        item, workdir = pending[-1]
                        try:
                            running[pool.submit(_pool_task, item, str(workdir))] = (item, workdir)
                        except BrokenProcessPool:
                            break  # a worker died: collect the others' failures, then a fresh pool
                        pending.pop()
                    if not running:
                        break
                    done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(frames, on_frames)
                    for future in done:
                        item, workdir = running.pop(future)
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:
                            if retries.again(item):
                                shutil.rmtree(workdir, ignore_errors=True)  # the dead attempt's files
                                pending.append((item, workdir))
                                continue
                            outcome = retries.died(item)
                        yield item, workdir, outcome
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    _drain(frames, on_frames)


class Retries:
    """Files whose worker died under them: retried until :data:`MAX_ATTEMPTS`, then failed.

    The failure is recorded with the batch's settings, so that, like any failed file, it is
    not retried by the next run unless asked (``--retry-failed``).
    """

    def __init__(self, settings: BatchSettings):
        self.settings = settings
        self.attempts: dict[str, int] = {}

    def again(self, item: InputFile) -> bool:
        self.attempts[item.path] = self.attempts.get(item.path, 0) + 1
        return self.attempts[item.path] < MAX_ATTEMPTS

    def died(self, item: InputFile) -> FileOutcome:
        from emolens.batch._ledger import file_key

        size, mtime_ns = file_key(item.path) or (None, None)
        error = f"{item.path}: the worker died while analysing it, {MAX_ATTEMPTS} times (a crash, or out of memory)"
        return FileOutcome(
            item.path,
            item.kind,
            "failed",
            error,
            size=size,
            mtime_ns=mtime_ns,
            settings=self.settings.fingerprint(item.kind),
        )


def _drain(frames: multiprocessing.Queue[int], on_frames: Callable[[int], None] | None) -> None:
    while True:
        try:
            n = frames.get_nowait()
        except queue.Empty:
            return
        if on_frames:
            on_frames(n)


def _init_worker(settings: BatchSettings, frames: multiprocessing.Queue[int]) -> None:
    import os
    import signal

    import cv2

    # Ctrl-C reaches the whole process group: the driver reports it, workers just stop (their
    # working folders are deleted by the next run) instead of each printing a traceback.
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    cv2.setNumThreads(1)  # the pool's processes are the parallelism
    _WORKER["settings"], _WORKER["frames"] = settings, frames
    _WORKER["recognizer"] = build_recognizer(settings)


def _pool_task(item: InputFile, workdir: str) -> FileOutcome:
    settings, frames = _WORKER["settings"], _WORKER["frames"]
    return analyze_file(item, settings, _WORKER["recognizer"], Path(workdir), on_frames=frames.put)
