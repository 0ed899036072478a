"""Detection, recognition and video speed on this machine (run by hand; figures go in the README).

    python benchmarks/pipeline.py

Frames are built from scikit-image's astronaut photo (a real face): 640x480 and 1280x720
frames with 1 or 3 faces; end to end runs over a camera-like sequence of such frames whose
faces slide 3 px a frame; the video is a 10 s 720p 30 fps clip of moving faces.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _common import frames_per_s, timeit

from emolens._machine import describe_machine
from emolens.inference.annotate import draw_results
from emolens.inference.detector import create_detector
from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.video import process_video


def face_frame(width: int, height: int, faces: int) -> np.ndarray:
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:200, 140:310]
    side = height // 3
    face = cv2.resize(face, (int(side * 170 / 180), side))
    frame = np.full((height, width, 3), 120, np.uint8)
    for i in range(faces):
        x = 20 + i * (width - face.shape[1] - 40) // max(1, faces - 1) if faces > 1 else (width - face.shape[1]) // 2
        y = (height - side) // 2
        frame[y : y + side, x : x + face.shape[1]] = face
    return frame


def moving_frames(width: int, height: int, faces: int, n: int = 20) -> list[np.ndarray]:
    """A camera-like sequence: the faces slide 3 px a frame, right by 15 px and back, no jumps."""
    base = face_frame(width, height, faces)
    return [np.roll(base, 3 * min(i, n - i) - 15, axis=1) for i in range(n)]


def make_clip(path: Path, seconds: int = 10, fps: int = 30) -> Path:
    import av

    base = face_frame(1280, 720, 2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for i in range(seconds * fps):
            frame = np.roll(base, (i * 3) % 200 - 100, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# name -> (detector, its options, stream, model); "--detect-size 320" is the CLI's name for
# max_side=320; a stream setup is ``recognizer.for_stream()``, as videos and the live camera
# use; the default model is the accurate one, the compact one is chosen by name.
STREAM = "retinaface, stream (whole frame every 10th)"
STREAM_COMPACT = "retinaface, stream, compact model"
SETUPS = {
    "haar": ("haar", {}, False, "accurate"),
    "retinaface": ("retinaface", {}, False, "accurate"),
    "retinaface --detect-size 320": ("retinaface", {"max_side": 320}, False, "accurate"),
    STREAM: ("retinaface", {}, True, "accurate"),
    STREAM_COMPACT: ("retinaface", {}, True, "compact"),
}


def recognizer_for(setup: str, model: str | None = None, *, spinning: bool = True) -> EmotionRecognizer:
    name, options, stream, default_model = SETUPS[setup]
    detector = create_detector(name, spinning=spinning, **options)
    recognizer = EmotionRecognizer(model or default_model, detector=detector, spinning=spinning)
    return recognizer.for_stream() if stream else recognizer


def main() -> None:
    result: dict = {"machine": describe_machine()}
    frames = {f"{w}x{h}": face_frame(w, h, 1) for w, h in ((640, 480), (1280, 720))}
    result["detector_ms"] = {}
    for setup in (s for s in SETUPS if s != STREAM):
        detector = recognizer_for(setup).detector
        result["detector_ms"][setup] = {
            size: round(timeit(lambda d=detector, f=f: d.detect(f)), 2) for size, f in frames.items()
        }
    result["end_to_end_fps_640x480"] = {}
    for setup in SETUPS:
        for n in (1, 3):
            recognizer = recognizer_for(setup)
            frames = moving_frames(640, 480, n)
            found = min(len(recognizer(f)) for f in frames)
            fps = frames_per_s(lambda f, r=recognizer: draw_results(f, r(f)), frames)
            result["end_to_end_fps_640x480"][f"{setup}, {n} face(s), found {found}"] = round(fps, 1)
    crops = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    result["classify_ms_per_face"] = {}
    for model in ("compact", "accurate"):
        recognizer = EmotionRecognizer(model)
        result["classify_ms_per_face"][model] = round(timeit(lambda r=recognizer: r.classify(crops), 200), 3)
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip720.mp4")
        result["video_720p30_10s"] = {}
        for setup in (s for s in SETUPS if not SETUPS[s][2]):  # videos always run as a stream
            for every, full_every in ((1, 1), (1, 10), (2, 10), (3, 10)):
                t = time.perf_counter()
                # no spinning, as `emolens video`: the decoder and encoder need the cores between runs
                recognizer = recognizer_for(setup, spinning=False)
                process_video(clip, recognizer, target=Path(tmp) / "out.mp4", every_nth=every, full_every=full_every)
                elapsed = time.perf_counter() - t
                key = f"{setup}, --every {every} --full-every {full_every}"
                result["video_720p30_10s"][key] = f"{10 / elapsed:.2f}x real time"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
