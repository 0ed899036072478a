"""How large a face must be to be found in a large photo, per detection size (run by hand).

    python benchmarks/big_photo.py [--detect-sizes 640 1280] [--heads 120 200 300] [--json OUT]

A phone photo is 4000x3000 pixels; the detector sees it downscaled so its longer side is
``--detect-size`` (default 640), and RetinaFace needs a face of roughly 16-20 px there. Twenty
copies of scikit-image's astronaut (her head-and-shoulders square, ``--heads`` pixels across)
are laid out on a 4000x3000 canvas, and each detection size reports how many it finds and
how long one detection takes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from _common import emit

from emolens._machine import describe_machine
from emolens.inference.detector import RetinaFaceDetector

CANVAS = (4000, 3000)
HEADS = 20


def canvas(head_px: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A grey 4000x3000 photo with HEADS astronaut squares of ``head_px`` on a grid, and their centres."""
    from skimage import data

    head = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:260, 130:370]
    head = cv2.resize(head, (head_px, head_px), interpolation=cv2.INTER_AREA)
    w, h = CANVAS
    image = np.full((h, w, 3), 128, np.uint8)
    cols = 5
    rows = -(-HEADS // cols)
    centres = []
    for k in range(HEADS):
        r, c = divmod(k, cols)
        x, y = int((c + 0.5) * w / cols - head_px / 2), int((r + 0.5) * h / rows - head_px / 2)
        image[y : y + head_px, x : x + head_px] = head
        centres.append((x + head_px / 2, y + head_px / 2))
    return image, centres


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detect-sizes", type=int, nargs="+", default=[640, 1280])
    parser.add_argument("--heads", type=int, nargs="+", default=[120, 200, 300])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for size in args.detect_sizes:
        detector = RetinaFaceDetector(max_side=size)
        for head_px in args.heads:
            image, centres = canvas(head_px)
            detector.detect(image)  # warm-up
            start = time.perf_counter()
            boxes = detector.detect(image).boxes
            ms = 1000 * (time.perf_counter() - start)
            found = sum(any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes) for x, y in centres)
            rows.append(
                {
                    "detect_size": size,
                    "head_px": head_px,
                    "found": found,
                    "of": HEADS,
                    "boxes": len(boxes),
                    "ms": round(ms, 1),
                }
            )
    emit({"machine": describe_machine(), "canvas": list(CANVAS), "rows": rows}, args.json)


if __name__ == "__main__":
    main()
