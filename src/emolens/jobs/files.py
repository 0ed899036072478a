"""Where a video job's files live: ``<root>/jobs/<id>/`` holds its input and its outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

# What a finished job offers for download, by kind.
OUTPUTS = {
    "video": "annotated.mp4",
    "csv": "frames.csv",
    "json": "frames.json",
    "plot": "timeline.png",
    "series": "timeline.json",  # each face's scores over time, bounded: the page's chart
}


class JobFiles:
    """The folder of each job under ``root``.

    Args:
        root: data directory; jobs live in ``root/jobs/<id>/`` and uploads wait in ``root/uploads/``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root) / "jobs"
        self.uploads = Path(root) / "uploads"
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def adopt(self, job_id: str, upload: Path) -> str:
        """Move an uploaded file into the job's new folder; the input's name within it."""
        folder = self.folder(job_id)
        folder.mkdir(parents=True)
        name = "input" + upload.suffix.lower()
        shutil.move(str(upload), folder / name)
        return name

    def output(self, job_id: str, kind: str) -> Path:
        """One of a job's :data:`OUTPUTS` (it may not exist: the job has not finished)."""
        return self.folder(job_id) / OUTPUTS[kind]

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
