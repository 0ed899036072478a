"""How strong a teacher the models at hand make, on PublicTest (run by hand).

    python benchmarks/teacher_strength.py --data fer2013-images.zip --models accurate compact a.onnx ...
        [--views-of accurate] [--json out.json]

A distilled student lands below its teacher (the compact recipe's first step 2.3 points under
the accurate model, and its robust step and int8 cost up to 1.3 more), so the compact model's
71% target needs a teacher near 74%. This scores the
teachers a student could be distilled from without training another network: each model
alone, the average of the probabilities of every set of two or more models, and one model
averaged over test-time views of each face (zoomed 0.9-1.1x about its centre, shifted 2 px),
as a teacher's targets could be made. Accuracy with each model's own graph (mirror included).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import cv2
import numpy as np
from _common import emit

from emolens._machine import describe_machine
from emolens.evaluation import predict_probabilities
from emolens.shipped import resolve_model
from emolens.training.data import load_split

ZOOMS = (0.9, 0.95, 1.0, 1.05, 1.1)
SHIFTS = ((2, 0), (-2, 0), (0, 2), (0, -2))


def warped(faces: np.ndarray, zoom: float, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """``faces`` (n, 48, 48) zoomed about their centre and shifted by (dx, dy) px, edges repeated."""
    centre = (faces.shape[-1] - 1) / 2
    matrix = np.array([[zoom, 0, centre * (1 - zoom) + dx], [0, zoom, centre * (1 - zoom) + dy]], np.float32)
    size = faces.shape[:0:-1]
    return np.stack([cv2.warpAffine(f, matrix, size, borderMode=cv2.BORDER_REPLICATE) for f in faces])


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return round(100 * float((probs.argmax(1) == labels).mean()), 2)


def ensembles(probs: dict[str, np.ndarray], labels: np.ndarray) -> list[dict]:
    """Accuracy of the mean probabilities of every set of two or more models, best first."""
    rows = [
        {"models": list(names), "accuracy": accuracy(sum(probs[n] for n in names) / len(names), labels)}
        for r in range(2, len(probs) + 1)
        for names in itertools.combinations(probs, r)
    ]
    return sorted(rows, key=lambda row: -row["accuracy"])


def test_time_views(model: str, faces: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of ``model`` on each zoom and shift of the faces, and on their averages."""
    views = {f"zoom {z}": predict_probabilities(model, warped(faces, z) if z != 1 else faces) for z in ZOOMS}
    views |= {f"shift {dx},{dy}": predict_probabilities(model, warped(faces, 1.0, dx, dy)) for dx, dy in SHIFTS}
    sets = {
        "zooms 0.9, 1, 1.1": ["zoom 0.9", "zoom 1.0", "zoom 1.1"],
        "five zooms": [f"zoom {z}" for z in ZOOMS],
        "face and four shifts": ["zoom 1.0"] + [f"shift {dx},{dy}" for dx, dy in SHIFTS],
        "all nine": list(views),
    }
    return {
        "views": {name: accuracy(p, labels) for name, p in views.items()},
        "averaged": {name: accuracy(sum(views[v] for v in names), labels) for name, names in sets.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", required=True, help="shipped names or ONNX files")
    parser.add_argument("--views-of", default="accurate", help="the model scored on test-time views")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    test = load_split(args.data, "test")
    probs = {m: predict_probabilities(resolve_model(m), test.images) for m in args.models}
    result = {
        "machine": describe_machine(),
        "faces": len(test.labels),
        "alone": {m: accuracy(p, test.labels) for m, p in probs.items()},
        "ensembles (best first)": ensembles(probs, test.labels),
        f"test-time views of {args.views_of}": test_time_views(
            str(resolve_model(args.views_of)), test.images, test.labels
        ),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
