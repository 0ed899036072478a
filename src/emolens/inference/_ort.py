"""ONNX Runtime sessions made one way for every model emolens runs."""

from __future__ import annotations

from pathlib import Path

from emolens.errors import ModelLoadError


def cpu_session(path: str | Path, *, threads: int = 0, providers: list[str] | None = None):
    """A session with spinning thread pools turned off.

    The detector and the classifier run one after the other on the same cores; with ORT's
    default busy-waiting each session's idle threads burned the cores the other needed
    (measured at 640x480, one face, 2 cores: 29 frames/s with spinning, 44-61 without).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"{path}: cannot load ONNX model ({exc})") from exc
