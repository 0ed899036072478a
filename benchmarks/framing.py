"""How our detector's boxes sit on FER2013's faces, and what cropping by them costs (run by hand).

    python benchmarks/framing.py --data fer2013-images.zip [--fit-faces 4000] [--enlarge-below PX]
        [--crop-scales 0.9,1,1.1] [--json out.json]

FER2013's faces were found by a detector and registered so each fills its 48x48 image the
same way; at inference our crops come from RetinaFace boxes. Each FER2013 face is upscaled
(default 192 px) and padded with mid-grey (default 96 px a side), run through RetinaFace,
and the box found (the one nearest the centre) is expressed in the 48 px frame's units. The
mapping from a box to the FER2013 crop (the crop's side in box heights and its centre's
offset from the box's, in box heights) is fitted as medians on training faces, then PublicTest
faces are round-tripped: detected, cropped by the old rule (``square_box`` with its margin)
and by the fitted one, and classified by each shipped model, against the same faces
classified directly. Two more crops split the fitted crop's loss into its parts: the exact
FER2013 square cut from the staged photo (what resampling alone costs) and the fitted centre
with the face's true scale (what the box's scale error costs). The fit also reports, per
emotion, how far FER2013's own framing sits from the median (a label-dependent framing that
no crop made from the face alone can reproduce). With ``--crop-scales``, one more rule
crops each face at those multiples of the fitted crop's side and averages the model's
probabilities over them, as the library does for photos.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from _common import emit

from emolens._machine import describe_machine
from emolens.inference.classifier import EmotionClassifier
from emolens.inference.detector import create_detector
from emolens.labels import EMOTIONS
from emolens.preprocess import Framing, crop_face
from emolens.training.data import load_split

# (face size, padding) in pixels of the round trips reported in the README
STAGES = "192:96,96:48,384:96"


def staged(face: np.ndarray, size: int, pad: int) -> np.ndarray:
    """A FER2013 face as a photo: upscaled, padded with mid-grey, BGR."""
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def parse_stages(text: str) -> tuple[tuple[int, int], ...]:
    """``"192:96,96:48"`` -> ((192, 96), (96, 48)): face size and padding in pixels."""
    try:
        stages = tuple(tuple(int(v) for v in item.split(":")) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"stages must look like 192:96,96:48, got {text!r}") from None
    if not stages or any(len(s) != 2 or s[0] < 48 or s[1] < 0 for s in stages):
        raise argparse.ArgumentTypeError(f"each stage is SIZE:PADDING with SIZE >= 48, got {text!r}")
    return stages  # type: ignore[return-value]


def parse_scales(text: str) -> tuple[float, ...]:
    """``"0.9,1,1.1"`` -> (0.9, 1.0, 1.1): crop sizes relative to the fitted crop."""
    try:
        scales = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"crop scales must look like 0.9,1,1.1, got {text!r}") from None
    if not all(s > 0 for s in scales):
        raise argparse.ArgumentTypeError(f"crop scales must be positive, got {text!r}")
    return scales


def central_box(detector, frame: np.ndarray) -> np.ndarray | None:
    boxes, _ = detector.detect(frame)
    if len(boxes) == 0:
        return None
    centre = np.array(frame.shape[1::-1]) / 2
    mids = (boxes[:, :2] + boxes[:, 2:]) / 2
    return boxes[np.argmin(np.linalg.norm(mids - centre, axis=1))]


def boxes_in_frame_units(detector, faces: np.ndarray, size: int, pad: int) -> np.ndarray:
    """(n, 4) boxes in units of the 48 px frame (0-1 spans it); NaN where no face was found."""
    out = np.full((len(faces), 4), np.nan)
    for i, face in enumerate(faces):
        box = central_box(detector, staged(face, size, pad))
        if box is not None:
            out[i] = (box - pad) / size
    return out


def fit_mapping(boxes: np.ndarray, labels: np.ndarray) -> dict:
    """The FER2013 crop (the unit square) in box units: side and centre offset, in box heights.

    Also the spread around those medians and, per emotion, the mean of log(side / median side):
    how much larger (>0) or tighter (<0) FER2013 framed that emotion's faces than the median.
    """
    found = ~np.isnan(boxes).any(1)
    boxes, labels = boxes[found], labels[found]
    h = boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    log_side = np.log(1 / h)
    return {
        "side_per_box_height": float(np.median(1 / h)),
        "centre_dx_per_box_height": float(np.median((0.5 - cx) / h)),
        "centre_dy_per_box_height": float(np.median((0.5 - cy) / h)),
        "box_median_in_frame": [float(v) for v in np.median(boxes, 0)],
        "std_log_side": float(np.std(log_side)),
        "std_centre_per_box_height": [float(np.std((0.5 - cx) / h)), float(np.std((0.5 - cy) / h))],
        "mean_log_side_vs_median_per_emotion": {
            name: round(float(np.mean(log_side[labels == k]) - np.median(log_side)), 3)
            for k, name in enumerate(EMOTIONS)
            if np.any(labels == k)
        },
        "faces": int(len(boxes)),
    }


UNIT = Framing(side=1.0)  # crops exactly the box given (a square box)


def square_around(cx: float, cy: float, side: float) -> tuple[int, int, int, int]:
    """The square box of ``side`` centred on (cx, cy), to crop with :data:`UNIT`."""
    return tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--fit-faces", type=int, default=4000, help="training faces to fit the mapping on")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--models", nargs="+", default=["compact", "accurate"], help="shipped names or ONNX files")
    parser.add_argument(
        "--stages", type=parse_stages, default=STAGES, help="faces staged as SIZE:PAD,... (default %(default)s)"
    )
    parser.add_argument(
        "--shipped-framing", action="store_true", help="crop with the detector's shipped mapping instead of fitting one"
    )
    parser.add_argument(
        "--crop-scales", type=parse_scales, help="also score crops at these sizes averaged (e.g. 0.9,1,1.1)"
    )
    parser.add_argument(
        "--enlarge-below", type=int, default=320, metavar="PX", help="enlarge smaller pictures to this (0: never)"
    )
    args = parser.parse_args()
    detector = create_detector("retinaface", enlarge_below=args.enlarge_below)
    train, test = load_split(args.data, "train"), load_split(args.data, "test")
    result: dict = {"machine": describe_machine(), "enlarge_below": args.enlarge_below}
    if args.shipped_framing:
        framing = detector.framing
        result["mapping"] = "shipped: " + repr(framing)
    else:
        pick = np.random.default_rng(0).permutation(len(train))[: args.fit_faces]
        t0 = time.perf_counter()
        mapping = fit_mapping(boxes_in_frame_units(detector, train.images[pick], 192, 96), train.labels[pick])
        result |= {"mapping_fitted_on_train": mapping, "fit_s": round(time.perf_counter() - t0)}
        framing = Framing(
            mapping["side_per_box_height"], mapping["centre_dx_per_box_height"], mapping["centre_dy_per_box_height"]
        )
    models = {name: EmotionClassifier(name) for name in args.models}
    direct = {name: clf.classify(test.images).argmax(1) for name, clf in models.items()}
    result["direct_accuracy"] = {n: float(np.mean(p == test.labels)) for n, p in direct.items()}
    result["round_trip"] = {}
    averaged = f"fitted at {args.crop_scales} averaged" if args.crop_scales else None
    for size, pad in args.stages:
        crops: dict[str, list] = {"old": [], "fitted": [], "exact FER2013 square": [], "fitted centre, true scale": []}
        if averaged:
            crops[averaged] = []
        found = []
        for i, face in enumerate(test.images):
            frame = staged(face, size, pad)
            box = central_box(detector, frame)
            if box is None:
                continue
            found.append(i)
            box_int = tuple(int(v) for v in box)
            crops["old"].append(crop_face(frame, box_int))
            crops["fitted"].append(crop_face(frame, box_int, framing=framing))
            exact = square_around(pad + size / 2, pad + size / 2, size)
            crops["exact FER2013 square"].append(crop_face(frame, exact, framing=UNIT))
            cx, cy, _ = framing.square(box_int)
            crops["fitted centre, true scale"].append(crop_face(frame, square_around(cx, cy, size), framing=UNIT))
            if averaged:
                crops[averaged] += [crop_face(frame, box_int, framing=framing.scaled(s)) for s in args.crop_scales]
        found = np.array(found)
        row = {"found": len(found), "of": len(test)}
        for rule, faces in crops.items():
            for name, clf in models.items():
                predicted = clf.classify(np.stack(faces)).reshape(len(found), -1, len(EMOTIONS)).mean(1).argmax(1)
                row[f"{rule} crop, {name}"] = float(np.mean(predicted == test.labels[found]))
                row[f"direct on the same faces, {name}"] = float(np.mean(direct[name][found] == test.labels[found]))
        result["round_trip"][f"{size} px + {pad} px padding"] = row
    emit(result, args.json)


if __name__ == "__main__":
    main()
