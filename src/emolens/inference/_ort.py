"""ONNX Runtime sessions made one way for every model emolens runs."""

from __future__ import annotations

from pathlib import Path

from emolens.errors import ModelLoadError

_spinning = True


def set_spinning(enabled: bool) -> None:
    """Let sessions made afterwards spin their threads within a run (the default) or never.

    Turn it off where other busy threads share the cores with the sessions: the web server
    (many requests run at once) and the video command (its decoder and encoder threads).
    """
    global _spinning
    _spinning = enabled


def cpu_session(path: str | Path, *, threads: int = 0, providers: list[str] | None = None):
    """A session whose threads spin only while one of its runs is under way.

    A run of the detector or the classifier is dozens of small parallel steps: with threads
    that sleep between steps, waking them costs more than many steps take (one face at
    640x480, 2 cores, ``--detect-size 320``: 210-215 frames/s end to end; spinning within
    each run: 228-257). Between runs they must stop: the detector and the classifier run one
    after the other on the same cores, and with ONNX Runtime's default (spinning after a run
    too) each session's idle threads burned the cores the other needed (29 frames/s).

    Where other work shares the cores (after ``set_spinning(False)``) threads never spin:
    spinning runs then take the cores from it (web server, 8 live clients: 9.2 fps each and
    61.6 image requests/s with spinning, 10.0 and 71.8 without; a 720p video with
    ``--detect-size 320``: 2.94-2.95x real time with spinning, 3.09-3.12x without).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if _spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"{path}: cannot load ONNX model ({exc})") from exc
