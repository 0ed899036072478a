"""8-bit quantisation of an exported model, exact on every CPU and checked against its float original.

Static QDQ quantisation (int8 weights per channel, uint8 activations calibrated on real
faces) is what lets a small CPU average each face with its mirror image within a few ms
(timings: README, "What each CPU class gets").

Weights are quantised to 7 bits ([-64, 64], ``reduce_range``). On x86 CPUs without VNNI
(AVX2, AVX-512 without VNNI) ONNX Runtime's uint8 x int8 kernels add pairs of products in
16-bit registers, which 8-bit weights saturate (255 * 127 * 2 > 32767); with 7-bit weights a
pair is at most 255 * 64 * 2 = 32640, so every kernel on every CPU computes the same
integers, and faster than 8-bit weights made exact by ``session.x64quantprecision``.
Percentile calibration keeps more accuracy than min/max with 7-bit weights. The
measurements behind these choices: ``src/emolens/models/emolens_vggface48.card.md``,
"Exact on every CPU".

A quantised model is checked twice on faces it did not calibrate on: its top emotion must
match the float model's (quantisation error), and the kernels of the CPU running the check
must match ONNX Runtime's reference path (:func:`emolens.inference._ort.reference_session`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emolens._machine import describe_machine
from emolens.errors import ExportError

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

MIN_TOP1_AGREEMENT = 0.97  # int8 against the float model: quantisation error
MIN_REFERENCE_AGREEMENT = 0.995  # this CPU's int8 kernels against the reference path
CALIBRATION_PERCENTILE = 99.999
# Ops whose outputs the quantiser folds a ReLU into (a uint8 range starting at zero).
_RELU_FOLDED_INTO = ("Conv", "Gemm", "MatMul", "BatchNormalization")
# Input channels a one-channel int8 convolution is widened to (widen_one_channel_convs).
WIDENED_CHANNELS = 4


# Loggers of ONNX Runtime's own that the quantiser writes through, besides the root logger
# (its modules call logging.info() and logging.warning()): those of the shape inference it runs first.
_QUANTISER_LOGGERS = ("onnxruntime.quantization.shape_inference", "onnxruntime.tools.symbolic_shape_infer")


class _QuantiserChatter(logging.Filter):
    """Rejects the records that ONNX Runtime's code writes from one thread (the one quantising)."""

    def __init__(self, package_dir: str) -> None:
        super().__init__()
        self._package_dir = package_dir
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        # thread is None where logging.logThreads is off: then any thread's chatter is dropped
        mine = record.thread in (self._thread, None)
        return not (mine and record.pathname.startswith(self._package_dir))


@contextlib.contextmanager
def _quiet_quantiser() -> Iterator[None]:
    """Keep ONNX Runtime's quantiser (dozens of INFO/WARNING lines, and prints) off the user's console.

    A filter on the loggers it writes through drops only the records of its own code on this
    thread: no logger's level changes, and other threads log as before. Two global effects
    remain, which only running it in a subprocess would avoid: stdout is redirected for the
    whole process, and ``logging.info()`` calls ``basicConfig()`` if the root logger has no
    handler yet.
    """
    import onnxruntime

    chatter = _QuantiserChatter(str(Path(onnxruntime.__file__).parent) + os.sep)
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in _QUANTISER_LOGGERS)]
    for each in loggers:
        each.addFilter(chatter)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for each in loggers:
            each.removeFilter(chatter)


def float_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model a QDQ model was quantised from, as an ONNX ``ModelProto`` (changed in place).

    Weights are dequantised (so they keep the int8 grid: the same weights, not the ones
    before quantisation) and activation QuantizeLinear/DequantizeLinear pairs are removed.
    The quantiser deletes a ReLU after Conv/Gemm/BatchNormalization and lets the uint8 range
    (zero point 0) clip instead; such a pair becomes a ReLU again.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producer = {out: node.op_type for node in graph.node for out in node.output}
    rename: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    dequantised: list[onnx.TensorProto] = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers:
            dequantised.append(numpy_helper.from_array(_dequantize(node, initializers), node.output[0]))
        elif node.op_type == "QuantizeLinear":
            zero_point = numpy_helper.to_array(initializers[node.input[2]])
            if producer.get(node.input[0]) in _RELU_FOLDED_INTO and zero_point == np.iinfo(zero_point.dtype).min:
                nodes.append(helper.make_node("Relu", [node.input[0]], [node.output[0] + "_relu"]))
                rename[node.output[0]] = node.output[0] + "_relu"
            else:
                rename[node.output[0]] = node.input[0]
        elif node.op_type == "DequantizeLinear":
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
        else:
            nodes.append(node)
    for node in nodes:
        node.input[:] = [rename.get(name, name) for name in node.input]
    for output in graph.output:
        output.name = rename.get(output.name, output.name)
    nodes = _narrow_widened_convs(nodes, {i.name: i for i in dequantised})
    used = {name for node in nodes for name in node.input}
    kept = [i for i in graph.initializer if i.name in used] + [i for i in dequantised if i.name in used]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    return model


def widen_one_channel_convs(model: onnx.ModelProto) -> int:
    """Feed each int8 convolution over one input channel four copies of it; returns how many.

    The first convolution sees the gray face, one channel, and ONNX Runtime's int8 kernels
    run it as a matrix product with 9 terms per output, slowly for its size: it was the
    costliest layer of the compact model at batch 1. Over four copies of the channel, the
    copies' weights zero, every integer sum is the same and so is every output, bit for bit
    (tested), and the compact model took about 10% less time at batch 1 (README, "The shipped
    models").
    :func:`float_graph` undoes it.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    widened = 0
    for conv in [n for n in graph.node if n.op_type == "Conv"]:
        x_dq, w_dq = producers.get(conv.input[0]), producers.get(conv.input[1])
        if x_dq is None or w_dq is None or x_dq.op_type != "DequantizeLinear" or w_dq.input[0] not in initializers:
            continue
        weights = numpy_helper.to_array(initializers[w_dq.input[0]])
        groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
        if weights.ndim != 4 or weights.shape[1] != 1 or groups != 1:
            continue
        wide = np.zeros((weights.shape[0], WIDENED_CHANNELS, *weights.shape[2:]), weights.dtype)
        wide[:, :1] = weights
        initializers[w_dq.input[0]].CopyFrom(numpy_helper.from_array(wide, w_dq.input[0]))
        copies, copies_dq = conv.name + "_widened_input", conv.name + "_widened_input_dq"
        at = list(graph.node).index(conv)
        graph.node.insert(at, helper.make_node("Concat", [x_dq.input[0]] * WIDENED_CHANNELS, [copies], axis=1))
        graph.node.insert(at + 1, helper.make_node("DequantizeLinear", [copies, *x_dq.input[1:]], [copies_dq]))
        conv.input[0] = copies_dq
        if not any(x_dq.output[0] in n.input for n in graph.node):
            graph.node.remove(x_dq)
        widened += 1
    return widened


def _narrow_widened_convs(nodes: list[onnx.NodeProto], weights: dict[str, onnx.TensorProto]) -> list[onnx.NodeProto]:
    """Undo :func:`widen_one_channel_convs` in a float graph: one input channel, its weights only."""
    from onnx import numpy_helper

    copies = {n.output[0]: n for n in nodes if n.op_type == "Concat" and n.output[0].endswith("_widened_input")}
    for conv in (n for n in nodes if n.op_type == "Conv" and n.input[0] in copies):
        conv.input[0] = copies[conv.input[0]].input[0]
        weights[conv.input[1]].CopyFrom(
            numpy_helper.from_array(numpy_helper.to_array(weights[conv.input[1]])[:, :1].copy(), conv.input[1])
        )
    return [n for n in nodes if n.output[0] not in copies]


def int8_weight_range(model: onnx.ModelProto) -> tuple[int, int]:
    """The least and greatest int8 weight of a QDQ ``ModelProto``; (0, 0) for a float model.

    Within [-64, 64] no uint8 x int8 kernel of any CPU can saturate (module docstring).
    """
    from onnx import TensorProto, numpy_helper

    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == TensorProto.INT8]
    if not weights:
        return 0, 0
    return int(min(w.min() for w in weights)), int(max(w.max() for w in weights))


def _float_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes an int8 model runs in float.

    What comes before the first convolution (the test-time views and the per-face
    standardisation: a few thousand values) is preprocessing; quantising each of its steps
    made a quantise/dequantise pair per step, a third of the compact model's nodes, and
    lost precision for nothing. The softmax stays in float (8-bit probabilities would not
    even sum to 1), and so does the fully connected head: a sliver of the multiply-adds (0.6M
    of vggface48's ~140M), yet quantising it cost the first shipped model 0.3 points of
    PublicTest (commit c4c2562).
    """
    first_conv = next((i for i, node in enumerate(graph.node) if node.op_type == "Conv"), 0)
    return [
        node.name
        for i, node in enumerate(graph.node)
        # an unnamed node cannot be named to the quantiser (and "" must not stand for all of them)
        if node.name and (i < first_conv or node.op_type in ("Softmax", "Gemm", "MatMul"))
    ]


def _dequantize(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> np.ndarray:
    from onnx import numpy_helper

    values, scale, zero_point = (
        numpy_helper.to_array(initializers[name]).astype(np.float32)
        if name in initializers
        else np.zeros((), np.float32)
        for name in (list(node.input) + [""])[:3]  # an absent zero point (optional) is 0
    )
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and values.ndim > 1:  # per channel
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), np.reshape(zero_point, shape if np.ndim(zero_point) else ())
    return ((values - zero_point) * scale).astype(np.float32)


def quantize_int8(
    float_model: str | Path,
    output: str | Path,
    calibration_faces: np.ndarray,
    check_faces: np.ndarray,
    *,
    min_agreement: float | None = None,
) -> dict:
    """Quantise ``float_model`` to ``output`` and check it.

    Args:
        float_model: an ONNX model written by :func:`emolens.training.export.export_onnx`
            (or recovered with :func:`float_graph`).
        output: where the int8 model goes (written only when both checks pass).
        calibration_faces: (n, 48, 48) uint8 faces that set the activation ranges.
        check_faces: (m, 48, 48) uint8 other faces to compare predictions on.
        min_agreement: the least share of check faces whose top emotion must not change
            against the float model (default :data:`MIN_TOP1_AGREEMENT`).

    Returns:
        What was measured: ``top1_agreement`` and ``max_abs_diff`` against the float model,
        ``reference_agreement`` and ``reference_max_abs_diff`` of this CPU's kernels against
        the reference path, and ``cpu``.

    Raises:
        ExportError: when the int8 model agrees with the float one on too few faces, or this
            CPU's kernels with the reference path on fewer than
            :data:`MIN_REFERENCE_AGREEMENT`.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_faces) == 0 or len(check_faces) == 0:
        raise ExportError("int8 quantisation needs faces to calibrate on and other faces to check on")
    min_agreement = MIN_TOP1_AGREEMENT if min_agreement is None else min_agreement
    float_model, output = Path(float_model), Path(output)
    source = onnx.load(str(float_model))
    input_name = source.graph.input[0].name
    batches = [calibration_faces[i : i + 64] for i in range(0, len(calibration_faces), 64)]

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch.astype(np.float32)[:, None]}

    with tempfile.TemporaryDirectory() as tmp, _quiet_quantiser():
        prepared, quantised = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(float_model), str(prepared))
        in_float = _float_nodes(onnx.load(str(prepared)).graph)
        quantize_static(
            str(prepared),
            str(quantised),
            Faces(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,  # 7-bit weights: exact on every CPU (module docstring)
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=in_float,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
        )
        result = onnx.load(str(quantised))
        widen_one_channel_convs(result)
        onnx.save(result, str(quantised))
        low, high = int8_weight_range(result)
        if low < -64 or high > 64:  # the quantiser's contract; saturating kernels must never see more
            raise ExportError(f"int8 weights span [{low}, {high}], outside [-64, 64]: they could saturate on AVX2")
        measured = _check(float_model, quantised, check_faces, input_name)
    logger.info("int8 on %d faces: %s", len(check_faces), measured)
    if measured["top1_agreement"] < min_agreement:
        raise ExportError(
            f"int8 model agrees with the float model on {measured['top1_agreement']:.1%} of {len(check_faces)} faces"
            f" (at least {min_agreement:.0%} required); keep the float model"
        )
    if measured["reference_agreement"] < MIN_REFERENCE_AGREEMENT:
        raise ExportError(
            f"on this CPU ({measured['cpu']}) ONNX Runtime's int8 kernels give the reference path's top emotion on"
            f" only {measured['reference_agreement']:.1%} of {len(check_faces)} faces (at least"
            f" {MIN_REFERENCE_AGREEMENT:.1%} required): the integer kernels are not exact here; keep the float model"
        )
    metadata = {p.key: p.value for p in source.metadata_props}
    metadata.update(
        quantization="int8 static QDQ: per-channel 7-bit int8 weights, uint8 activations",
        quantization_calibration=f"{len(calibration_faces)} faces, percentile {CALIBRATION_PERCENTILE}",
        quantization_calibration_faces=str(len(calibration_faces)),
        quantization_top1_agreement=str(measured["top1_agreement"]),
        quantization_reference_agreement=str(measured["reference_agreement"]),
        quantization_checked_on=measured["cpu"],
    )
    onnx.helper.set_model_props(result, metadata)
    result.producer_name = source.producer_name
    onnx.checker.check_model(result)
    tmp_out = output.with_name(output.name + ".tmp")
    onnx.save(result, str(tmp_out))
    tmp_out.replace(output)
    return measured


def _check(float_model: Path, quantised: Path, faces: np.ndarray, input_name: str) -> dict:
    """Top-1 agreement and largest probability difference: int8 vs float, and this CPU vs the reference path."""
    from emolens.inference._ort import cpu_session, reference_session

    feed = {input_name: faces.astype(np.float32)[:, None]}
    floats = cpu_session(float_model).run(None, feed)[0]
    reference = reference_session(quantised).run(None, feed)[0]
    ours = cpu_session(quantised).run(None, feed)[0]
    return {
        "top1_agreement": round(float(np.mean(floats.argmax(1) == reference.argmax(1))), 4),
        "max_abs_diff": round(float(np.abs(floats - reference).max()), 4),
        "reference_agreement": round(float(np.mean(ours.argmax(1) == reference.argmax(1))), 4),
        "reference_max_abs_diff": round(float(np.abs(ours - reference).max()), 4),
        "cpu": describe_machine(),
    }
