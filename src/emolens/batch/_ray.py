"""The same per-file work on Ray: one actor per worker, each with one recognizer.

An actor analyses a file into a temporary folder of its own node and sends the outputs
back as bytes, so that results land in the driver's ``OUT`` even when the nodes share no
disk; only the inputs must be readable at the same path on every node (shared storage).
Ray is imported here only, and only when ``--ray`` is asked for.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from emolens.batch._executors import Retries, Task
from emolens.batch._inputs import InputFile
from emolens.batch._ledger import FileOutcome
from emolens.batch._worker import BatchSettings, analyze_file, build_recognizer


def require_ray() -> ModuleType:
    try:
        import ray
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("--ray needs Ray; install it with: pip install 'emolens[ray]'", name="ray") from exc
    return ray


class _Analyzer:
    """A Ray actor's state: the settings and one recognizer, built once."""

    def __init__(self, settings: BatchSettings):
        import cv2

        cv2.setNumThreads(1)
        self.settings = settings
        self.recognizer = build_recognizer(settings)

    def analyze(self, item: InputFile) -> tuple[FileOutcome, dict[str, bytes]]:
        with tempfile.TemporaryDirectory(prefix="emolens-batch-") as tmp:
            workdir = Path(tmp) / "outputs"  # analyze_file makes it, as it does in a pool
            outcome = analyze_file(item, self.settings, self.recognizer, workdir)
            files = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} if workdir.is_dir() else {}
            return outcome, files


def run_ray(
    tasks: list[Task],
    settings: BatchSettings,
    *,
    address: str | None = None,
    workers: int | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> Iterator[tuple[InputFile, Path, FileOutcome]]:
    """The files on Ray actors, ``workers`` of them (default: the cluster's CPUs, at most one per file).

    Args:
        address: None or ``"local"`` starts a local Ray; ``"auto"`` or ``"ray://host:port"``
            joins an existing cluster. A Ray already initialised in this process is used as is.
    """
    if not tasks:
        return
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        ray.init(address=None if address in (None, "local") else address, log_to_driver=False)
        started = True
    actors: list = []
    try:
        count = min(workers or max(1, int(ray.cluster_resources().get("CPU", 1))), len(tasks))
        actor_class = ray.remote(num_cpus=1)(_Analyzer)
        actors.extend(actor_class.remote(settings) for _ in range(count))
        idle, pending = list(actors), list(reversed(tasks))
        running: dict[Any, tuple[Any, InputFile, Path]] = {}  # Ray's object ref -> its actor, file, folder
        retries = Retries(settings)
        while pending or running:
            while pending and idle:
                actor, (item, workdir) = idle.pop(), pending.pop()
                running[actor.analyze.remote(item)] = (actor, item, workdir)
            done, _ = ray.wait(list(running), num_returns=1)
            actor, item, workdir = running.pop(done[0])
            try:
                outcome, files = ray.get(done[0])
                idle.append(actor)
            except ray.exceptions.RayActorError:  # its process or node died: a fresh actor
                actors.append(actor_class.remote(settings))
                idle.append(actors[-1])
                if retries.again(item):
                    pending.append((item, workdir))
                    continue
                outcome, files = retries.died(item), {}
            workdir.mkdir(parents=True, exist_ok=True)  # made where the outputs are written, as in a pool
            for name, data in files.items():
                (workdir / name).write_bytes(data)
            if on_frames:
                on_frames(outcome.frames * settings.every_nth if outcome.kind == "video" else outcome.frames)
            yield item, workdir, outcome
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
