"""The batch's ledger: one folder per finished file under ``OUT/files/``, made atomically.

A worker writes a file's outputs into ``OUT/files/.partial-<id>-<pid>/`` (pid: the driver's); the driver adds
``status.json`` and renames the folder to ``OUT/files/<id>/`` in one step. So a folder
named ``<id>`` is always complete, a ``kill -9`` at any moment leaves at most ``.partial-``
folders (deleted by the next run), and the next run redoes exactly the files without one.

A finished file is skipped when its ``status.json`` matches the file as it is now: same
resolved path, size and modification time (ns), and the same settings that shape results
(model, detector, detection size, frame step, annotation). Anything else is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILES_DIR = "files"
STATUS = "status.json"
ROWS = "faces.parquet"
_PARTIAL = ".partial-"


@dataclass
class FileOutcome:
    """What happened to one input file.

    ``status``: ``ok`` (analysed; ``faces`` may be 0), ``failed`` (``error`` says why) or
    ``ignored`` (a file of another type inside a folder). ``faces``: face records (one per
    face per analysed frame); ``tracks``: faces followed through a video (0 for an image);
    ``frames``: frames analysed (1 for an image). ``seconds``: time spent on it. ``reused``: finished by an earlier run.
    """

    source: str
    kind: str
    status: str
    error: str | None = None
    faces: int = 0
    tracks: int = 0
    frames: int = 0
    seconds: float = 0.0
    size: int | None = None
    mtime_ns: int | None = None
    settings: dict = field(default_factory=dict)
    reused: bool = False

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("reused")
        return out


def file_id(source: str) -> str:
    """A folder name for a source: readable stem plus a hash of the full path (unique per path)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).stem)[:40]
    return f"{stem}-{hashlib.sha1(source.encode()).hexdigest()[:12]}"


def file_key(source: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a source, None when it cannot be read."""
    try:
        st = os.stat(source)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class Ledger:
    """The ``OUT/files/`` folder: which files are finished, and committing new ones."""

    def __init__(self, out: str | os.PathLike):
        self.root = Path(out) / FILES_DIR
        self.root.mkdir(parents=True, exist_ok=True)

    def final_dir(self, source: str) -> Path:
        return self.root / file_id(source)

    def partial_dir(self, source: str) -> Path:
        """The working folder for ``source`` (named, not made: whoever writes the outputs makes it,
        so that after a ``kill -9`` the ``.partial-`` folders are exactly the files in flight)."""
        return self.root / f"{_PARTIAL}{file_id(source)}-{os.getpid()}"

    def clean_partials(self) -> int:
        """Delete the working folders an interrupted run left; how many there were."""
        stale = [p for p in self.root.iterdir() if p.name.startswith(_PARTIAL)]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return len(stale)

    def finished(self, source: str, settings: dict) -> FileOutcome | None:
        """The earlier outcome for ``source`` if it still holds (same file, same settings), else None."""
        folder = self.final_dir(source)
        try:
            saved = json.loads((folder / STATUS).read_text())
        except (OSError, ValueError):
            return None
        key = file_key(source)
        if key is None or (saved.get("size"), saved.get("mtime_ns")) != key or saved.get("settings") != settings:
            return None
        if saved.get("status") == "ok" and not (folder / ROWS).is_file():
            return None  # its results were deleted: redo
        return FileOutcome(**saved, reused=True)

    def commit(self, outcome: FileOutcome, workdir: Path) -> Path:
        """Write ``status.json`` into ``workdir`` and make it the file's folder, replacing an older one."""
        workdir.mkdir(parents=True, exist_ok=True)  # a file whose worker died before making it
        tmp = workdir / (STATUS + ".tmp")
        tmp.write_text(json.dumps(outcome.to_dict(), indent=1) + "\n")
        os.replace(tmp, workdir / STATUS)
        final = self.final_dir(outcome.source)
        if final.exists():
            # Rename the old folder aside first: a crash in between leaves no folder (redone), never a mix.
            old = final.with_name(f"{_PARTIAL}old-{final.name}-{os.getpid()}")
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(workdir, final)
        return final
