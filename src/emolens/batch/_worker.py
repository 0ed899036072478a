"""The work on one file, the same whichever executor runs it (in-process, process pool, Ray).

:func:`analyze_file` reads one image or video, writes its outputs into a working folder and
returns a :class:`FileOutcome`; it never raises for a bad file, so that the batch goes on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emolens.batch._inputs import InputFile
from emolens.batch._ledger import ROWS, FileOutcome, file_key
from emolens.batch._tables import FaceRows
from emolens.errors import EmolensError, SettingsError

if TYPE_CHECKING:
    from emolens.inference.recognizer import EmotionRecognizer

logger = logging.getLogger(__name__)

# Frames between two progress reports of a video: often enough for a live bar, rarely
# enough that reporting costs nothing next to recognition.
PROGRESS_EVERY = 25


@dataclass(frozen=True)
class BatchSettings:
    """How every file of a batch is analysed; picklable, so that workers can build their models.

    Args:
        model: a shipped model's name (``compact``, ``accurate``) or an ONNX file; None: accurate.
        detector: ``retinaface`` or ``haar``.
        detect_size: detect on video frames shrunk to this longer side (None: the detector's 640).
        photo_detect_size: detect on images shrunk to this longer side (None: ``detect_size``
            if set, else 1280; see :func:`~emolens.inference.detector.photo_detect_side`).
        every_nth: analyse every Nth frame of a video.
        annotate: also write annotated copies (PNG for images, H.264 MP4 for videos).
        threads: ONNX Runtime threads per model (0: all cores; workers use 1 each).
    """

    model: str | None = None
    detector: str = "retinaface"
    detect_size: int | None = None
    photo_detect_size: int | None = None
    every_nth: int = 1
    annotate: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        if self.every_nth < 1:
            raise SettingsError(f"every_nth must be 1 or more, got {self.every_nth}")
        from emolens.inference.detector import check_detector

        for side in (self.detect_size, self.photo_detect_size):
            check_detector(self.detector, {} if side is None else {"max_side": side})

    def fingerprint(self, kind: str) -> dict:
        """The settings that shape the results of a file of ``kind`` (``image`` or ``video``):
        a finished file is reused only under the same ones. An image's hold the detection size
        it was analysed at and no frame step; a video's hold its frames' size, not the images'."""
        from emolens.inference.detector import photo_detect_side
        from emolens.shipped import resolve_model

        out = asdict(self)
        out.pop("threads")
        out.pop("photo_detect_size")
        out["model"] = str(resolve_model(self.model).resolve())
        if kind == "image":
            out["detect_size"] = photo_detect_side(self.photo_detect_size, self.detect_size)
            out.pop("every_nth")
        return out


def build_recognizer(settings: BatchSettings) -> EmotionRecognizer:
    """The recognizer a worker keeps for all its files (one model load per worker)."""
    from emolens.inference.detector import create_detector, photo_detect_side
    from emolens.inference.recognizer import EmotionRecognizer
    from emolens.shipped import DEFAULT_MODEL

    options: dict = {}
    if settings.detect_size is not None:
        options["max_side"] = settings.detect_size
    if settings.detector == "retinaface" and settings.threads:
        options["threads"] = settings.threads
    detector = create_detector(settings.detector, **options)
    return EmotionRecognizer(
        settings.model or DEFAULT_MODEL,
        detector=detector,
        threads=settings.threads,
        photo_detect_size=photo_detect_side(settings.photo_detect_size, settings.detect_size),
    )


def analyze_file(
    item: InputFile,
    settings: BatchSettings,
    recognizer: EmotionRecognizer,
    workdir: Path,
    *,
    on_frames: Callable[[int], None] | None = None,
) -> FileOutcome:
    """Analyse one file into ``workdir``: ``faces.parquet`` always, plus ``faces.json`` for an
    image or ``frames.csv`` and ``video.json`` (records, tracks, summary) for a video, and the
    annotated copy when asked. A file that cannot be analysed gives a ``failed`` outcome.
    ``workdir`` is made if missing; nothing already in it is deleted.

    Args:
        on_frames: called with the number of frames analysed since its last call.
    """
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    key = file_key(item.path)
    outcome = FileOutcome(item.path, item.kind, "ok", settings=settings.fingerprint(item.kind))
    if key is not None:
        outcome.size, outcome.mtime_ns = key
    try:
        if key is None:
            raise FileNotFoundError(f"{item.path}: no such file (moved or deleted during the batch)")
        analyse = _analyze_image if item.kind == "image" else _analyze_video
        outcome.faces, outcome.tracks, outcome.frames = analyse(item, settings, recognizer, workdir, on_frames)
    except (EmolensError, OSError, ValueError) as exc:
        outcome.status, outcome.error = "failed", _one_line(exc, item.path)
    except Exception as exc:  # noqa: BLE001 - one bad file (or a decoder's bug) must not stop an archive
        logger.debug("%s failed", item.path, exc_info=True)
        outcome.status, outcome.error = "failed", _one_line(exc, item.path)
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def _analyze_image(
    item: InputFile,
    settings: BatchSettings,
    recognizer: EmotionRecognizer,
    workdir: Path,
    on_frames: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    import cv2

    from emolens.inference.annotate import draw_results
    from emolens.inference.images import read_image

    frame = read_image(item.path)
    faces = recognizer(frame)
    doc = {
        "source": item.path,
        "width": frame.shape[1],
        "height": frame.shape[0],
        "faces": [f.to_dict() for f in faces],
    }
    (workdir / "faces.json").write_text(json.dumps(doc) + "\n")
    with FaceRows(workdir / ROWS, item.path, "image") as rows:
        rows.add_image(faces)
    if settings.annotate and not cv2.imwrite(str(workdir / "annotated.png"), draw_results(frame, faces)):
        raise EmolensError(f"{item.path}: could not write the annotated copy")
    if on_frames:
        on_frames(1)
    return len(faces), 0, 1


def _analyze_video(
    item: InputFile,
    settings: BatchSettings,
    recognizer: EmotionRecognizer,
    workdir: Path,
    on_frames: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    from emolens.inference.video import process_video

    reported = decoded = 0

    def progress(done: int, total: int) -> None:
        nonlocal reported, decoded
        decoded = done
        if on_frames and done - reported >= PROGRESS_EVERY:
            on_frames(done - reported)
            reported = done

    with FaceRows(workdir / ROWS, item.path, "video") as rows:
        result = process_video(
            item.path,
            recognizer,
            target=workdir / "annotated.mp4" if settings.annotate else None,
            csv_path=workdir / "frames.csv",
            json_path=workdir / "video.json",
            every_nth=settings.every_nth,
            on_progress=progress,
            on_records=rows.add_records,
            keep_records=False,  # the rows go to disk as they come: memory stays flat for any length
        )
    if on_frames and decoded > reported:
        on_frames(decoded - reported)
    return result.face_count, len(result.tracks), result.frames_processed


def _one_line(exc: BaseException, path: str) -> str:
    """The error as one line that names the file (most emolens errors already start with it)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if path not in text:
        text = f"{path}: {text}"
    if not isinstance(exc, (EmolensError, OSError, ValueError)):
        text = f"{text} ({type(exc).__name__})"
    return text
