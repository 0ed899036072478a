"""FER2013 in every form users download it, decoded once into a compact uint8 cache.

Sources understood by :func:`load_split`:

* the Kaggle challenge CSV ``fer2013.csv`` (columns ``emotion,pixels,Usage``) and its
  variant ``icml_face_data.csv`` (header names with a leading space);
* the image-folder edition ``train/<emotion>/*``, ``test/<emotion>/*`` (PNG or JPEG); a
  folder holding only ``test/<emotion>/`` works too;
* a ``.zip`` of either, read without extracting (one top-level folder is allowed).

Split names are ``train`` (CSV usage ``Training``), ``test`` (``PublicTest``) and
``private`` (``PrivateTest``, CSV only). Labels are mapped *by name* to
:data:`emolens.labels.EMOTIONS`, never by folder sort order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolens.errors import DatasetError
from emolens.labels import EMOTIONS, emotion_index
from emolens.preprocess import INPUT_SIZE, to_gray48

logger = logging.getLogger(__name__)

SPLITS = ("train", "test", "private")
_CSV_USAGE = {"training": "train", "publictest": "test", "privatetest": "private"}
_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
_CACHE_VERSION = "1"
_N_PIXELS = INPUT_SIZE * INPUT_SIZE


@dataclass(frozen=True)
class FerSplit:
    """One split of FER2013 in memory.

    Attributes:
        images: (n, 48, 48) uint8 gray faces.
        labels: (n,) int64 indices into EMOTIONS.
        converted: how many source images were not 48x48 gray and were converted.
        source: where the split was read from.
    """

    images: np.ndarray
    labels: np.ndarray
    converted: int = 0
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(EMOTIONS))
        return {name: int(c) for name, c in zip(EMOTIONS, counts)}


def load_split(
    path: str | os.PathLike, split: str = "train", *, cache_dir: str | os.PathLike | None = None, use_cache: bool = True
) -> FerSplit:
    """Load one split of FER2013 from a CSV, an image-folder tree or a zip of either.

    The decoded arrays are cached (keyed by the source's path, size and mtime) so later
    loads take about a second.

    Args:
        path: ``fer2013.csv``, a folder with ``train/`` and/or ``test/``, or a ``.zip``.
        split: ``train``, ``test`` (PublicTest) or ``private`` (PrivateTest, CSV only).
        cache_dir: where to keep decoded arrays; default ``$XDG_CACHE_HOME/emolens``.
        use_cache: read and write the cache.

    Raises:
        DatasetError: naming the file, row or member that is wrong, or an empty split.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"data set not found: {path}")
    cache_file = _cache_file(path, split, cache_dir) if use_cache else None
    if cache_file is not None and cache_file.exists():
        with np.load(cache_file) as data:
            return FerSplit(data["images"], data["labels"], int(data["converted"]), str(path))
    result = _read(path, split)
    if len(result) == 0:
        raise DatasetError(f"split {split!r} of {path} is empty")
    if result.converted:
        logger.info("%d images of %s/%s were not 48x48 gray and were converted", result.converted, path, split)
    if cache_file is not None:
        _write_cache(cache_file, result)
    return result


def _read(path: Path, split: str) -> FerSplit:
    if path.is_dir():
        csv_files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        if not (path / split).is_dir() and len(csv_files) == 1:
            return _read_csv_file(csv_files[0], split)
        return _read_folder(path, split)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv_file(path, split)
    if suffix == ".zip" or zipfile.is_zipfile(path):
        return _read_zip(path, split)
    raise DatasetError(f"{path}: not a FER2013 CSV, image folder or zip")


# ---------------------------------------------------------------- CSV


def _read_csv_file(path: Path, split: str) -> FerSplit:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return _parse_csv(f, split, str(path))


def _parse_csv(lines: Iterable[str], split: str, name: str) -> FerSplit:
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise DatasetError(f"{name}: empty CSV file") from None
    missing = {"emotion", "pixels", "usage"} - set(header)
    if missing:
        raise DatasetError(f"{name}: missing column(s) {', '.join(sorted(missing))}; header is {header}")
    i_emotion, i_pixels, i_usage = header.index("emotion"), header.index("pixels"), header.index("usage")
    images, labels = [], []
    for row_number, row in enumerate(reader, start=2):
        if not row:
            continue
        where = f"{name}, row {row_number}"
        if len(row) != len(header):
            raise DatasetError(f"{where}: expected {len(header)} fields, got {len(row)}")
        usage = _CSV_USAGE.get(row[i_usage].strip().lower())
        if usage is None:
            raise DatasetError(f"{where}: unknown Usage {row[i_usage]!r}; expected Training, PublicTest or PrivateTest")
        if usage != split:
            continue
        try:
            code = int(row[i_emotion])
        except ValueError:
            raise DatasetError(f"{where}: emotion {row[i_emotion]!r} is not an integer code") from None
        if not 0 <= code < len(EMOTIONS):
            raise DatasetError(f"{where}: unknown emotion code {code}; expected 0-{len(EMOTIONS) - 1}")
        try:
            pixels = np.array(row[i_pixels].split(), dtype=np.int64)
        except ValueError:
            raise DatasetError(f"{where}: pixels contain a non-numeric value") from None
        if pixels.size != _N_PIXELS:
            raise DatasetError(f"{where}: pixel count is {pixels.size}, expected {_N_PIXELS} (48x48)")
        if pixels.min() < 0 or pixels.max() > 255:
            raise DatasetError(f"{where}: pixel values must be 0-255")
        images.append(pixels.astype(np.uint8).reshape(INPUT_SIZE, INPUT_SIZE))
        labels.append(code)
    return _stack(images, labels, 0, name)


# ---------------------------------------------------------------- image folders and zips


def _read_folder(root: Path, split: str) -> FerSplit:
    split_dir = root / split
    if not split_dir.is_dir():
        raise DatasetError(f"{root}: no {split}/ folder (expected {split}/<emotion>/ images)")
    members = ((p.relative_to(split_dir).as_posix(), p.read_bytes) for p in sorted(split_dir.rglob("*")) if p.is_file())
    return _decode_members(members, f"{split_dir}")


def _read_zip(path: Path, split: str) -> FerSplit:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{path}: not a readable zip file ({exc})") from exc
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/") and not _is_junk(n)]
        csvs = [n for n in names if n.lower().endswith(".csv")]
        prefix = _find_split_prefix(names, split)
        if prefix is None and csvs:
            if len(csvs) > 1:
                raise DatasetError(f"{path}: several CSV files ({', '.join(csvs)}); extract the one to use")
            with archive.open(csvs[0]) as raw:
                return _parse_csv(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), split, f"{path}:{csvs[0]}")
        if prefix is None:
            raise DatasetError(f"{path}: no {split}/<emotion>/ folder and no CSV inside the zip")
        members = ((n[len(prefix) :], _reader(archive, n)) for n in names if n.startswith(prefix))
        try:
            return _decode_members(members, f"{path}:{prefix.rstrip('/')}")
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{path}: corrupt zip member ({exc})") from exc


def _reader(archive: zipfile.ZipFile, name: str) -> Callable[[], bytes]:
    return lambda: archive.read(name)


def _find_split_prefix(names: list[str], split: str) -> str | None:
    """Return ``'<top>/split/'`` or ``'split/'`` if the zip holds that split's folders."""
    for name in names:
        parts = name.split("/")
        for depth in (0, 1):
            if len(parts) > depth + 2 and parts[depth] == split:
                return "/".join(parts[: depth + 1]) + "/"
    return None


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in {"thumbs.db", "desktop.ini"}


def _decode_members(members: Iterator, where: str) -> FerSplit:
    images, labels, converted = [], [], 0
    for relative, read in members:
        if _is_junk(relative):
            continue
        parts = relative.split("/")
        if Path(parts[-1]).suffix.lower() not in _IMAGE_EXTENSIONS:
            logger.debug("skipping non-image file %s/%s", where, relative)
            continue
        if len(parts) != 2:
            raise DatasetError(f"{where}/{relative}: expected <emotion>/<image>, found a file at another depth")
        try:
            label = emotion_index(parts[0])
        except ValueError as exc:
            raise DatasetError(f"{where}/{parts[0]}/: unknown emotion folder ({exc})") from None
        data = np.frombuffer(read(), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if image is None:
            raise DatasetError(f"{where}/{relative}: cannot decode image")
        if image.dtype != np.uint8:  # 16-bit PNG/TIFF
            image = cv2.convertScaleAbs(image, alpha=255.0 / max(int(image.max()), 1))
        if image.shape[:2] != (INPUT_SIZE, INPUT_SIZE) or image.ndim == 3:
            converted += 1
        images.append(to_gray48(image))
        labels.append(label)
    return _stack(images, labels, converted, where)


def _stack(images: list[np.ndarray], labels: list[int], converted: int, source: str) -> FerSplit:
    if not images:
        return FerSplit(np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8), np.zeros(0, np.int64), 0, source)
    return FerSplit(np.stack(images), np.asarray(labels, dtype=np.int64), converted, source)


# ---------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "emolens"


def _cache_file(path: Path, split: str, cache_dir: str | os.PathLike | None) -> Path:
    stat = path.stat()
    key = f"{_CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{split}"
    if path.is_dir():  # a folder's mtime misses edits deeper down: fold in its children
        key += "|" + "|".join(f"{p}:{p.stat().st_mtime_ns}" for p in sorted(path.glob("*/*")))
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / "fer2013" / f"{split}-{digest}.npz"


def _write_cache(cache_file: Path, split: FerSplit) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=split.images, labels=split.labels, converted=split.converted)
        os.replace(tmp, cache_file)
    except OSError as exc:  # a read-only cache is not fatal
        logger.warning("could not write data cache %s: %s", cache_file, exc)
