"""Batch analysis of whole archives of photos and videos: resumable, on processes or Ray.

Example:
    >>> from emolens.batch import BatchSettings, run_batch
    >>> report = run_batch(["archive/", "@more.txt"], "out", settings=BatchSettings(model="compact"))
    >>> report.faces_table().to_pandas()  # one row per face per frame
"""

from __future__ import annotations

from emolens.batch._inputs import InputFile as InputFile
from emolens.batch._inputs import expand_inputs as expand_inputs
from emolens.batch._ledger import FileOutcome as FileOutcome
from emolens.batch._run import BatchReport as BatchReport
from emolens.batch._run import load_faces as load_faces
from emolens.batch._run import run_batch as run_batch
from emolens.batch._worker import BatchSettings as BatchSettings
from emolens.batch._worker import analyze_file as analyze_file

__all__ = [
    "BatchReport",
    "BatchSettings",
    "FileOutcome",
    "InputFile",
    "analyze_file",
    "expand_inputs",
    "load_faces",
    "run_batch",
]
