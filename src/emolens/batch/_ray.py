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
from typing import Any, NamedTuple

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


# Calls queued on each actor: it starts its next file while the driver stores the last one's
# outputs and sends more work, instead of idling through that round trip.
QUEUED_PER_ACTOR = 2


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
    pool = _ActorPool(ray, settings, min(workers or max(1, int(ray.cluster_resources().get("CPU", 1))), len(tasks)))
    try:
        pending, retries = list(reversed(tasks)), Retries(settings)
        while pending or pool.running:
            while pending and pool.free:
                pool.submit(*pending.pop())
            item, workdir, result = pool.next_done()
            if isinstance(result, _ActorDied):
                if not result.culprit:  # queued behind the file that killed the actor
                    pending.append((item, workdir))
                    continue
                if retries.again(item):
                    pending.append((item, workdir))
                    continue
                outcome, files = retries.died(item), dict[str, bytes]()
            else:
                outcome, files = result
            workdir.mkdir(parents=True, exist_ok=True)  # made where the outputs are written, as in a pool
            for name, data in files.items():
                (workdir / name).write_bytes(data)
            if on_frames:
                on_frames(outcome.frames * settings.every_nth if outcome.kind == "video" else outcome.frames)
            yield item, workdir, outcome
    finally:
        pool.close()
        if started:
            ray.shutdown()


class _ActorDied(NamedTuple):
    culprit: bool  # the call it was running (not one queued behind it)


class _ActorPool:
    """Actors with :data:`QUEUED_PER_ACTOR` call slots each; a dead actor is replaced once."""

    def __init__(self, ray: ModuleType, settings: BatchSettings, count: int):
        self.ray, self.settings = ray, settings
        self.actor_class = ray.remote(num_cpus=1)(_Analyzer)
        self.actors: list = []
        self.free: list = []  # one entry per free call slot
        self.running: dict[Any, tuple[Any, InputFile, Path]] = {}  # object ref -> its actor, file, folder
        self.queued: dict[Any, list] = {}  # actor -> its refs in the order they run
        self.dead: set = set()
        for _ in range(count):
            self._add()

    def _add(self) -> None:
        actor = self.actor_class.remote(self.settings)
        self.actors.append(actor)
        self.queued[actor] = []
        self.free.extend([actor] * QUEUED_PER_ACTOR)

    def submit(self, item: InputFile, workdir: Path) -> None:
        actor = self.free.pop()
        ref = actor.analyze.remote(item)
        self.running[ref] = (actor, item, workdir)
        self.queued[actor].append(ref)

    def next_done(self) -> tuple[InputFile, Path, tuple[FileOutcome, dict[str, bytes]] | _ActorDied]:
        """The next finished call, taken as its actor's oldest: an actor runs its calls in order,
        so when any of them is ready, so is that one (done, or failed with the actor)."""
        (ready,), _ = self.ray.wait(list(self.running), num_returns=1)
        actor = self.running[ready][0]
        ref = self.queued[actor].pop(0)
        _, item, workdir = self.running.pop(ref)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:  # its process or node died: a fresh actor, once
            culprit = actor not in self.dead  # the first of its calls to fail is the one it ran
            if culprit:
                self.dead.add(actor)
                self.free = [a for a in self.free if a is not actor]
                self._add()
            return item, workdir, _ActorDied(culprit)
        self.free.append(actor)
        return item, workdir, result

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
