"""Turn the command line's INPUTs (files, folders, globs, list files) into a sorted list of files.

Nothing is decoded here: the kind comes from the extension, and the worker's decoder is the
content check (a ``.jpg`` that does not decode fails there, with the decoder's message).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts"}
)
LIST_EXTENSION = ".txt"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class InputFile:
    """One file of a batch.

    ``kind`` is ``image`` or ``video`` for files to analyse; ``ignored`` for a file of another
    type found inside a folder (listed, not analysed, not a failure); ``failed`` for an input
    that cannot be analysed at all (missing, unsupported type, empty glob), with ``error``.
    """

    path: str
    kind: str
    error: str | None = None


def kind_of(path: str | os.PathLike) -> str | None:
    """``image``, ``video`` or None, from the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def expand_inputs(inputs: list[str], *, exclude: str | os.PathLike | None = None) -> list[InputFile]:
    """Every file the inputs name, each once, sorted by absolute path.

    Args:
        inputs: files; folders (searched recursively, hidden entries skipped); glob patterns
            (``**`` recursive); list files, given as ``@list.txt`` or any ``.txt`` path, with one
            input per line (blank lines and ``#`` comments skipped; relative paths are relative
            to the list file's folder, so a list travels with its archive).
        exclude: a folder whose files are never inputs: the batch's own output, which may
            sit inside an input folder (``emolens batch . --out results``).

    Returns:
        One :class:`InputFile` per file. Missing inputs, unsupported types and globs that
        match nothing come back as ``kind="failed"`` so that the batch can record them.
    """
    found: dict[str, InputFile] = {}
    skip = Path(exclude).resolve() if exclude is not None else None
    for item in inputs:
        for entry in _expand_one(item, explicit=True, lists=True):
            if skip is not None and Path(entry.path).is_relative_to(skip):
                continue
            if entry.path not in found or found[entry.path].kind == "ignored":
                found[entry.path] = entry
    return [found[p] for p in sorted(found)]


def _expand_one(item: str, *, explicit: bool, lists: bool) -> list[InputFile]:
    """``explicit``: the user named this file (an unknown type is an error, not ignored);
    ``lists``: a ``.txt`` is a list of inputs (not inside a list: lists do not nest)."""
    if lists and item.startswith("@"):
        return _read_list(Path(item[1:]))
    if _GLOB_CHARS & set(item) and not Path(item).exists():
        matches = sorted(glob.glob(item, recursive=True))
        if not matches:
            return [InputFile(item, "failed", f"{item}: no file matches this pattern")]
        return [e for m in matches for e in _expand_one(m, explicit=False, lists=False)]
    path = Path(item).expanduser()
    if path.is_dir():
        return [_classify(p, explicit=False) for p in _walk(path)]
    if not path.exists():
        return [InputFile(str(path.absolute()), "failed", f"{item}: no such file or folder")]
    if lists and path.suffix.lower() == LIST_EXTENSION:
        return _read_list(path)
    return [_classify(path, explicit=explicit)]


def _read_list(path: Path) -> list[InputFile]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        return [InputFile(str(path.absolute()), "failed", f"{path}: cannot read the list ({exc.strerror or exc})")]
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            entry = line if os.path.isabs(os.path.expanduser(line)) else str(path.parent / line)
            out.extend(_expand_one(entry, explicit=True, lists=False))
    return out


def _walk(folder: Path) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(Path(root) / n for n in names if not n.startswith("."))
    return files


def _classify(path: Path, *, explicit: bool) -> InputFile:
    resolved = str(path.resolve())
    kind = kind_of(path)
    if kind is not None:
        return InputFile(resolved, kind)
    if not explicit:
        return InputFile(resolved, "ignored", f"{path}: not an image or video type emolens reads")
    known = ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
    return InputFile(resolved, "failed", f"{path}: unsupported file type; emolens reads {known}")
