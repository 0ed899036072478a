"""Write the faces ``emolens info`` checks the shipped model on (src/emolens/models/selfcheck_faces.npz).

    python scripts/make_selfcheck_faces.py

24 crops of the one face in examples/astronaut.jpg (NASA, public domain), as a user's frames
vary it: other margins and offsets, mirrored, dim, noisy, tilted, blurred, small. They
are not for accuracy: the self-check compares this CPU's kernels with ONNX Runtime's
reference path on them, and saturating int8 kernels change their scores by far more than
rounding does (the shipped model with 8-bit weights on an AVX2 CPU: by up to 0.75, against 0.002 once exact).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emolens.inference.detector import RetinaFaceDetector
from emolens.preprocess import crop_face

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    frame = cv2.imread(str(ROOT / "examples" / "astronaut.jpg"))
    (box,), _ = RetinaFaceDetector().detect(frame)
    x1, y1, x2, y2 = (int(v) for v in box)
    side = x2 - x1
    rng = np.random.default_rng(0)
    faces = []
    for margin in (0.0, 0.1, 0.25):
        for dx, dy in ((0, 0), (side // 10, 0), (0, side // 10), (-side // 10, -side // 10)):
            faces.append(crop_face(frame, (x1 + dx, y1 + dy, x2 + dx, y2 + dy), margin))
    base = faces[1]
    faces += [
        base[:, ::-1],
        np.clip(255 * 0.5 * (base / 255.0) ** 2.2, 0, 255).astype(np.uint8),
        np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8),
        cv2.warpAffine(base, cv2.getRotationMatrix2D((24, 24), 12, 1.0), (48, 48), borderMode=cv2.BORDER_REFLECT),
        cv2.warpAffine(base, cv2.getRotationMatrix2D((24, 24), -12, 1.0), (48, 48), borderMode=cv2.BORDER_REFLECT),
        cv2.GaussianBlur(base, (0, 0), 1.5),
        cv2.resize(cv2.resize(base, (16, 16), interpolation=cv2.INTER_AREA), (48, 48), interpolation=cv2.INTER_CUBIC),
        cv2.equalizeHist(base),
        np.clip(base * 0.6 + 90, 0, 255).astype(np.uint8),
        255 - base,
        cv2.flip(faces[6], 1),
        np.clip(base.astype(np.int16) + 50, 0, 255).astype(np.uint8),
    ]
    out = ROOT / "src" / "emolens" / "models" / "selfcheck_faces.npz"
    np.savez_compressed(out, faces=np.ascontiguousarray(np.stack(faces), dtype=np.uint8))
    print(f"wrote {out}: {len(faces)} faces")


if __name__ == "__main__":
    main()
