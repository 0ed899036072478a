"""ONNX Runtime sessions made one way for every model emolens runs.

Two kinds: :func:`cpu_session`, the fast one every library call uses, and
:func:`reference_session`, ONNX Runtime with every graph optimisation off, which runs a
quantised (QDQ) graph as the float maths it stands for. The reference path is what every
int8 model is checked against, on whatever CPU runs the check: integer kernels differ
between CPUs, a model checked only against itself can be wrong on another CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from emolens.errors import ModelLoadError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession, SessionOptions


def cpu_session(
    path: str | Path, *, threads: int = 0, providers: list[str] | None = None, spinning: bool = True
) -> InferenceSession:
    """A session whose threads spin only while one of its runs is under way, with exact int8.

    A run of the detector or the classifier is dozens of small parallel steps, and waking
    sleeping threads for each step costs more than many steps take, so threads spin within a
    run. Between runs they must stop: the detector and the classifier run one after the other
    on the same cores, and with ONNX Runtime's default (spinning on after a run) each
    session's idle threads take the cores the other needs.

    Where other busy threads share the cores (the web server, a video's decoder and encoder),
    pass ``spinning=False``: threads then never spin, and leave the cores to that work.

    ``session.x64quantprecision``: on x86 CPUs without VNNI (AVX2, and AVX-512 without
    VNNI), ONNX Runtime's uint8 x int8 kernels add pairs of products in 16-bit registers,
    which can saturate once a weight lies outside [-64, 64]. Our exporter keeps weights inside
    that range (7-bit, see :mod:`emolens.training.quantize`), so for our models the option
    changes nothing; for an int8 model quantised with full 8-bit weights it makes ONNX
    Runtime use exact uint8 x uint8 kernels, which keep its accuracy on those CPUs. On VNNI
    and ARM CPUs the kernels are exact and the option does nothing.

    Figures: README, "Benchmarks" (spinning) and "The same answers on every CPU" (int8).
    """
    return _session(path, cpu_session_options(threads=threads, spinning=spinning), providers)


def cpu_session_options(*, threads: int = 0, spinning: bool = True) -> SessionOptions:
    """The options :func:`cpu_session` uses, for a caller that adds its own (e.g. a profiler)."""
    options = _options()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.add_session_config_entry("session.x64quantprecision", "1")
    if threads:
        options.intra_op_num_threads = threads
    return options


def reference_session(path: str | Path, *, threads: int = 0) -> InferenceSession:
    """ONNX Runtime's reference path: no graph optimisation, so no fused integer kernels.

    Each QuantizeLinear/DequantizeLinear pair runs as rounding in float and each Conv in
    float, the same on every CPU up to float rounding. Several times slower than
    :func:`cpu_session`: for checks, never for serving.
    """
    import onnxruntime as ort

    options = _options()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return _session(path, options, None)


def _options() -> SessionOptions:
    import onnxruntime as ort

    return ort.SessionOptions()


def _session(path: str | Path, options: SessionOptions, providers: list[str] | None) -> InferenceSession:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"{path}: cannot load ONNX model ({exc})") from exc
