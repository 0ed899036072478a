"""Shared fixtures: tiny FER2013 look-alikes in every format, built on the fly."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolens.labels import EMOTIONS


def synthetic_faces(per_class: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """48x48 uint8 images whose class is learnable: a bright bar at a class-specific height."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(EMOTIONS)):
        for _ in range(per_class):
            img = rng.normal(90, 20, (48, 48))
            row = 4 + label * 6
            img[row : row + 5, 6:42] += 120
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def write_csv(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], *, icml: bool = False) -> Path:
    usage = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}
    lines = ["emotion, Usage, pixels" if icml else "emotion,pixels,Usage"]
    for split, (images, labels) in splits.items():
        for img, label in zip(images, labels):
            pixels = " ".join(map(str, img.ravel()))
            lines.append(f"{label},{usage[split]},{pixels}" if icml else f"{label},{pixels},{usage[split]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_folders(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], ext: str = ".png") -> Path:
    for split, (images, labels) in splits.items():
        for i, (img, label) in enumerate(zip(images, labels)):
            folder = root / split / EMOTIONS[label]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:05d}{ext}"), img)
    return root


def zip_tree(root: Path, zip_path: Path, *, top: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, (top + "/" if top else "") + p.relative_to(root).as_posix())
    return zip_path


@pytest.fixture
def tiny_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": synthetic_faces(6, seed=1), "test": synthetic_faces(2, seed=2)}


@pytest.fixture
def tiny_folder(tmp_path, tiny_splits) -> Path:
    return write_folders(tmp_path / "fer", tiny_splits)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own data cache, so none reads another's arrays."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A small untrained emolens ONNX model (random weights, real metadata)."""
    import torch

    from emolens.training.export import export_onnx
    from emolens.training.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(create_model("vggface48_tiny").eval(), path, arch="vggface48_tiny", tta=True)
    return path


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """A real photo with one clearly visible frontal face (scikit-image, public domain)."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def phone_photo(astronaut_bgr) -> np.ndarray:
    """A phone's 4000x3000 photo of three astronaut heads, faces ~80 px wide: detected at 1280 px
    they are found, at the 640 px of video frames they are lost (benchmarks/big_photo.py)."""
    head = cv2.resize(astronaut_bgr[20:260, 130:370], (200, 200), interpolation=cv2.INTER_AREA)
    photo = np.full((3000, 4000, 3), 128, np.uint8)
    for x in (600, 1900, 3200):
        photo[1400:1600, x : x + 200] = head
    return photo


@pytest.fixture
def retinaface_input_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The (height, width) of every input RetinaFace is given while the test runs, in order."""
    from emolens.inference.detector import RetinaFaceDetector

    prepare, sizes = RetinaFaceDetector._prepare, []

    def spy(self, frame, **kwargs):
        blob, scale = prepare(self, frame, **kwargs)
        sizes.append(blob.shape[2:])
        return blob, scale

    monkeypatch.setattr(RetinaFaceDetector, "_prepare", spy)
    return sizes


@pytest.fixture
def app(tmp_path, tiny_onnx):
    from emolens.web import create_app

    app = create_app(
        {
            "TESTING": True,
            "DATA_DIR": str(tmp_path / "data"),
            "IMAGE_MODEL": str(tiny_onnx),
            "STREAM_MODEL": str(tiny_onnx),
            "DETECTOR": "haar",
        }
    )
    yield app
    app.extensions["emolens_jobs"].shutdown()


@pytest.fixture
def client(app):
    return app.test_client()


def interruptible() -> None:
    """``preexec_fn`` for a child that must get Ctrl-C: a shell's background job (``cmd &``, as
    a CI runner may start the suite) ignores SIGINT, its children inherit that, and Python then
    installs no KeyboardInterrupt handler; restoring the default lets the child's Python do so."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def jpeg_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def fer2013_zip() -> Path | None:
    """The FER2013 image-folder zip in ../shared (or $EMOLENS_FER2013_ZIP); None when absent."""
    import os

    path = Path(
        os.environ.get("EMOLENS_FER2013_ZIP")
        or Path(__file__).resolve().parents[2] / "shared/datasets/fer2013/fer2013-images.zip"
    )
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def public_test():
    """FER2013 PublicTest (3,589 faces): skipped, not passed, where the zip is absent."""
    path = fer2013_zip()
    if path is None:
        pytest.skip("FER2013 zip not found (../shared/datasets/fer2013/fer2013-images.zip or $EMOLENS_FER2013_ZIP)")
    from emolens.training.data import load_split

    return load_split(path, "test")


class RolledScores:
    """A session whose scores are shifted by one emotion: kernels that disagree with the reference path."""

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)

    def run(self, names, feed):
        return [np.roll(self._session.run(names, feed)[0], 1, axis=1)]


# Live streams: a real FFmpeg server (tests/test_sources.py, tests/test_watch.py).
# Not skipped when missing: a skipped stream test would hide a broken CI set-up.
FFMPEG = shutil.which("ffmpeg")


def closed_by_server(ws, timeout: float = 15.0) -> bool:
    """Read a ``simple_websocket`` client's messages until the server closes it (False: not within ``timeout``)."""
    from simple_websocket import ConnectionClosed

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.receive(timeout=0.5)
    except ConnectionClosed:
        return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something listens on the port, without connecting (ffmpeg -listen 1 serves one client only)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return any(r[1].endswith(f":{port:04X}") and r[3] == "0A" for r in rows)


class StreamServer:
    """Debian's ffmpeg serving a clip in a loop, live, over HTTP (one client at a time).

    ``kind`` "mpegts": the clip's H.264 in MPEG-TS, as IP cameras and encoders send it;
    "mjpeg": multipart JPEGs, as webcam servers (motion, mjpg-streamer, ESP32 cameras) do.
    """

    _OUTPUT = {"mpegts": ["-c:v", "copy", "-f", "mpegts"], "mjpeg": ["-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg"]}

    def __init__(self, clip, *, kind: str = "mpegts"):
        self.clip, self.kind, self.port = clip, kind, free_port()
        self.url = f"http://127.0.0.1:{self.port}/live." + ("ts" if kind == "mpegts" else "mjpg")
        self.proc: subprocess.Popen | None = None
        self.started = 0.0  # when it was last started, Unix epoch seconds

    def start(self) -> StreamServer:
        if FFMPEG is None:
            pytest.fail(
                "the stream tests serve with Debian's ffmpeg: apt-get install ffmpeg (the README's test command does)"
            )
        cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.clip)]
        cmd += [*self._OUTPUT[self.kind], "-listen", "1", self.url]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.started = time.time()
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ffmpeg did not start serving: {self.proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.proc.stderr.close()

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


@pytest.fixture(scope="session")
def stream_clip(tmp_path_factory, astronaut_bgr):
    """2 s of the astronaut's face moving, to be served in a loop at 15 fps."""
    from test_video import make_clip

    return make_clip(tmp_path_factory.mktemp("stream") / "loop.mp4", astronaut_bgr, frames=30, fps=15, audio=False)


@pytest.fixture
def server(stream_clip):
    server = StreamServer(stream_clip).start()
    yield server
    server.kill()
