"""PublicTest faces pasted into real scenes, through the whole photo path (run by hand).

    python benchmarks/framing_scenes.py --data fer2013-images.zip [--sizes 120,280] [--crop-scales 0.9,1,1.1]
        [--models accurate compact] [--json out.json]

A check of the photo crop beside ``framing.py``'s stagings on mid-grey, which chose the crop
sizes: each face, upscaled to SIZE px, is pasted at a random place into one of three
scikit-image photos (coffee, chelsea, rocket) at 640x480, saved as JPEG at quality 75 and
given to ``EmotionRecognizer`` as a photo, once cropping each face once and once at the crop
sizes given (averaged). A face counts when a detection overlaps its square (IoU >= 0.3, as
``wild_check.py`` matches faces); accuracy is over those faces, beside the same faces
classified directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from _common import emit
from framing import parse_scales
from skimage import data
from wild_check import predict

from emolens._machine import describe_machine
from emolens.inference.detector import create_detector
from emolens.inference.recognizer import PHOTO_CROP_SCALES, EmotionRecognizer
from emolens.labels import EMOTIONS
from emolens.training.data import load_split

SCENES = ("coffee", "chelsea", "rocket")
JPEG_QUALITY = 75


def pasted(face: np.ndarray, scene: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``face`` upscaled to ``size`` px at a random place in ``scene``, as a JPEG would give it back; and its square."""
    frame = scene.copy()
    x, y = int(rng.integers(0, frame.shape[1] - size)), int(rng.integers(0, frame.shape[0] - size))
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    frame[y : y + size, x : x + size] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR), np.array([x, y, x + size, y + size], float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sizes", default="120,280", help="face sizes in px (default %(default)s)")
    parser.add_argument("--crop-scales", type=parse_scales, default=PHOTO_CROP_SCALES)
    parser.add_argument("--models", nargs="+", default=["accurate", "compact"], help="shipped names or ONNX files")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    test = load_split(args.data, "test")
    scenes = [cv2.resize(cv2.cvtColor(getattr(data, n)(), cv2.COLOR_RGB2BGR), (640, 480)) for n in SCENES]
    result: dict = {"machine": describe_machine(), "faces": len(test), "scenes": SCENES, "jpeg_quality": JPEG_QUALITY}
    detector = create_detector("retinaface")
    for model in args.models:
        crops = {"one crop": (1.0,), f"crops at {args.crop_scales} averaged": args.crop_scales}
        recognizers = {k: EmotionRecognizer(model, detector=detector, photo_crop_scales=s) for k, s in crops.items()}
        direct = next(iter(recognizers.values())).classify(test.images).argmax(1)
        for size in (int(v) for v in args.sizes.split(",")):
            rng = np.random.default_rng(size)
            photos = [pasted(face, scenes[i % len(scenes)], size, rng) for i, face in enumerate(test.images)]
            got = {k: [predict(r, frame, square) for frame, square in photos] for k, r in recognizers.items()}
            found = np.array([all(g[i] is not None for g in got.values()) for i in range(len(test))])
            truth = test.labels[found]
            row = {"found": int(found.sum()), "direct on the same faces": float(np.mean(direct[found] == truth))}
            for k, labels in got.items():
                row[k] = float(np.mean(np.array([EMOTIONS.index(v) for v, f in zip(labels, found) if f]) == truth))
            result[f"{model}, {size} px faces"] = row
            print(model, size, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
