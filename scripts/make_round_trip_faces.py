"""FER2013's training faces plus each face as the pipeline crops it, as an image-folder tree.

    python scripts/make_round_trip_faces.py --data fer2013-images.zip --out runs/round_trip_faces

At inference every face is cut out of a photo or frame around RetinaFace's box with the
detector's measured framing (``RetinaFaceDetector.framing``); FER2013's faces were cut by
another detector, and how the two frames differ varies from face to face (see
``benchmarks/framing.py``). Fine-tuning on both forms teaches the model the crops it will be
given. Each training face is written as it is (``o<index>.png``) and, where RetinaFace finds
it, round-tripped (``r<index>.png``; with ``--rounds N``, N times, ``r<index>_<k>.png``):
upscaled to one of ``--stages`` sizes at random (seeded), padded with mid-grey, detected,
cropped our way. ``test/`` (PublicTest) is copied unchanged, so models are still selected on
the original faces. About 5-12 minutes a round on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from framing import central_box, parse_stages, staged  # noqa: E402  (the benchmark's own staging, shared)

from emolens.inference.detector import create_detector  # noqa: E402
from emolens.labels import EMOTIONS  # noqa: E402
from emolens.preprocess import crop_face  # noqa: E402
from emolens.training.data import load_split  # noqa: E402

# (face size, padding) in pixels; this order with seed 1 and one round made the faces the
# accurate model was first fine-tuned on
STAGES = "192:96,96:48,288:96"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the FER2013 image-folder zip (its test/ is copied as is)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="round trips per face, each at a random stage")
    parser.add_argument("--stages", type=parse_stages, default=STAGES, help="SIZE:PAD,... (default %(default)s)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more, got {args.rounds}")
    detector = create_detector("retinaface")
    train = load_split(args.data, "train")
    rng = np.random.default_rng(args.seed)
    missed = 0
    for i, (face, label) in enumerate(tqdm(list(zip(train.images, train.labels)), unit="face")):
        folder = args.out / "train" / EMOTIONS[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"o{i:05d}.png"), face)
        for k in range(args.rounds):
            size, pad = args.stages[rng.integers(len(args.stages))]
            frame = staged(face, size, pad)
            box = central_box(detector, frame)
            if box is None:
                missed += 1
                continue
            crop = crop_face(frame, tuple(int(v) for v in box), framing=detector.framing)
            name = f"r{i:05d}.png" if args.rounds == 1 else f"r{i:05d}_{k}.png"
            cv2.imwrite(str(folder / name), crop)
    with zipfile.ZipFile(args.data) as archive:
        for name in archive.namelist():
            if name.startswith("test/") and not name.endswith("/"):
                target = args.out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    trips = len(train) * args.rounds
    print(f"{len(train)} training faces, {trips - missed} of {trips} round trips found ({missed} not); test/ copied")


if __name__ == "__main__":
    main()
