"""emolens against the `fer` package on the same frames and faces (run by hand).

    python3 -m venv .venv-fer && .venv-fer/bin/pip install torch==2.13.0
    .venv-fer/bin/pip install --no-deps fer==25.10.3
    .venv-fer/bin/pip install tensorflow-cpu "opencv-contrib-python<5" pandas requests tqdm Pillow \
        matplotlib "moviepy<2" "setuptools<81"
    python benchmarks/fer_compare.py [--fer-python .venv-fer/bin/python] [--data fer2013-images.zip] \
        [--video clip.mp4 [--video-frames 60]]

fer needs TensorFlow, hence its own virtual environment (its declared dependencies pull
OpenCV 5, which has no Haar cascades, and facenet-pytorch pins torch<2.3, hence the steps
above; without facenet-pytorch, fer's MTCNN mode is reported unavailable). This
script times emolens in-process, then runs itself in that environment as a worker on the same
frames, saved to a temporary file. Both sides get the machine alone, one after the other, with
all cores. End to end is detect + classify + draw boxes and labels on a copy of the frame.

With ``--data``, both classifiers also label the FER2013 PublicTest faces; fer's model sees
them through its own preprocessing (64x64, scaled to [-1, 1]) and is its default, the
quantised TFLite mini-Xception. fer does not say which FER2013 rows that model was trained
on; if PublicTest was among them, its accuracy here is flattered, not understated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import emit, frames_per_s

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def draw_like_emolens(frame: np.ndarray, boxes_labels) -> np.ndarray:
    """What an annotating caller of fer would do: a box and a label per face."""
    import cv2

    out = frame.copy()
    for (x, y, w, h), label in boxes_labels:
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 200, 0), 2)
        cv2.putText(out, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 0), 2)
    return out


def fer_worker(frames_path: Path) -> dict:
    """Runs inside fer's environment: no emolens import here."""
    from fer.fer import FER  # fer 25.x no longer re-exports FER from the package

    saved = np.load(frames_path)
    result: dict = {"fer_version": __import__("fer").__version__}
    for label, kwargs in (("fer (Haar, its default)", {}), ("fer (MTCNN)", {"mtcnn": True})):
        try:
            detector = FER(**kwargs)
        except Exception as exc:  # MTCNN needs a torchvision built for the installed torch
            result[f"{label}: unavailable"] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        for key in (k for k in saved.files if k != "faces"):
            frames = list(saved[key])
            found = min(len(detector.detect_emotions(frame)) for frame in frames)

            def run(frame, detector=detector):
                faces = detector.detect_emotions(frame)
                return draw_like_emolens(frame, [(f["box"], max(f["emotions"], key=f["emotions"].get)) for f in faces])

            result[f"{label}, {key}, found {found}"] = round(frames_per_s(run, frames, passes=2), 1)
    if "faces" in saved:
        result["publictest"] = fer_classify(FER(), saved["faces"])
    return result


def fer_classify(detector, faces: np.ndarray) -> list[int]:
    """fer's own classifier (its default, the quantised TFLite model) on 48x48 faces,
    preprocessed as its detect_emotions does: resized to 64x64, scaled to [-1, 1].
    Returns the predicted class of each face in FER2013's order."""
    import cv2

    x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)
    x = (x / 255.0 - 0.5) * 2.0
    probs = np.asarray(detector._classify_emotions(x))
    names = detector._get_labels()
    return [EMOTIONS.index(names[i]) for i in probs.argmax(1)]


def summarise(predicted, labels: np.ndarray) -> dict:
    from emolens.metrics import classification_report

    report = classification_report(labels, np.asarray(predicted))
    return {"accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4)}


def emolens_side(frames: dict[str, list[np.ndarray]], faces, labels) -> dict:
    from pipeline import SETUPS, recognizer_for

    from emolens import EmotionRecognizer
    from emolens.inference.annotate import draw_results

    result: dict = {}
    for setup in SETUPS:
        for key, sequence in frames.items():
            recognizer = recognizer_for(setup)
            found = min(len(recognizer(f)) for f in sequence)
            fps = frames_per_s(lambda f, r=recognizer: draw_results(f, r(f)), sequence)
            result[f"emolens ({setup}), {key}, found {found}"] = round(fps, 1)
    if faces is not None:
        result["publictest"] = {
            model: summarise(EmotionRecognizer(model).classify(faces).argmax(1), labels)
            for model in ("compact", "accurate")
        }
    return result


def read_frames(path: Path, limit: int) -> list[np.ndarray]:
    """The first ``limit`` frames of a video as BGR arrays, in order (a stream's frames follow each other)."""
    import av

    with av.open(str(path)) as clip:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(limit), clip.decode(video=0))]
    if not frames:
        raise SystemExit(f"{path}: no video frames")
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-python", default=".venv-fer/bin/python", help="python of the environment with fer")
    parser.add_argument("--data", help="FER2013 (any form emolens reads): also compare accuracy on PublicTest")
    parser.add_argument("--video", type=Path, help="also time both on this clip's frames (a real one, several faces)")
    parser.add_argument("--video-frames", type=int, default=60, help="how many of its first frames (default 60)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(fer_worker(args.worker)))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from pipeline import STREAM, STREAM_COMPACT, moving_frames

    from emolens._machine import describe_machine

    frames = {"1 face": moving_frames(640, 480, 1), "3 faces": moving_frames(640, 480, 3)}
    if args.video and not args.video.is_file():
        parser.error(f"--video: no such file {args.video}")
    clip = f"clip {args.video.name}" if args.video else None
    if clip:
        frames[clip] = read_frames(args.video, args.video_frames)
    faces = labels = None
    if args.data:
        from emolens.training.data import load_split

        split = load_split(args.data, "test")
        faces, labels = split.images, split.labels
    result: dict = {
        "machine": describe_machine(),
        "frames": "640x480, scikit-image's astronaut face, 1 or 3 times, sliding 3 px a frame (20-frame sequence)"
        + (f"; and the first {len(frames[clip])} frames of {args.video}" if clip else ""),
    }
    result["frames_per_s"] = {}
    ours = emolens_side(frames, faces, labels)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "frames.npz"
        extra = {"faces": faces} if faces is not None else {}
        np.savez(saved, **{key: np.stack(seq) for key, seq in frames.items()}, **extra)
        run = subprocess.run(
            [args.fer_python, __file__, "--worker", str(saved)], capture_output=True, text=True, check=False
        )
    if run.returncode != 0:
        raise SystemExit(f"fer worker failed:\n{run.stderr[-3000:]}")
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    result["fer_version"] = theirs.pop("fer_version")
    if "publictest" in theirs:
        result["publictest"] = {**ours.pop("publictest"), "fer": summarise(theirs.pop("publictest"), labels)}
    for side in (ours, theirs):
        result["frames_per_s"].update(side)
    fps = result["frames_per_s"]
    for key in frames:
        fer_default = next(v for k, v in fps.items() if k.startswith("fer (Haar") and f", {key}," in k)
        for label in ("retinaface", "retinaface --detect-size 320", STREAM, STREAM_COMPACT):
            ours_fps = next(v for k, v in fps.items() if k.startswith(f"emolens ({label})") and f", {key}," in k)
            result[f"ratio emolens {label} / fer default, {key}"] = round(ours_fps / fer_default, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
