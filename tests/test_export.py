from __future__ import annotations

import json
import logging
import threading

import cv2
import numpy as np
import onnx
import pytest
import torch

from conftest import RolledScores
from emolens._machine import describe_machine
from emolens.errors import ExportError, ModelLoadError
from emolens.inference.classifier import EmotionClassifier
from emolens.labels import EMOTIONS
from emolens.training import export as export_module
from emolens.training import quantize
from emolens.training.export import export_onnx, load_checkpoint
from emolens.training.models import VggFace48, create_model
from emolens.training.quantize import float_graph, int8_weight_range, quantize_int8


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    model = create_model("vggface48_tiny").eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _views(faces: np.ndarray, tta) -> list[np.ndarray]:
    """Test-time views made independently of the exporter (OpenCV zoom, numpy mirror)."""
    views = [faces]
    if tta in (True, "flip", "flip-zoom"):
        views.append(faces[:, :, ::-1])
    if tta == "flip-zoom":
        for x in list(views):
            views.append(np.stack([cv2.resize(f, (53, 53), interpolation=cv2.INTER_LINEAR)[2:50, 2:50] for f in x]))
    return views


@pytest.mark.parametrize("tta", [False, True, "flip-zoom"])
def test_export_metadata_and_parity(tiny_model, tmp_path, tta):
    path = tmp_path / "m.onnx"
    meta = export_onnx(tiny_model, path, arch="vggface48_tiny", tta=tta)
    assert json.loads(meta["labels"]) == list(EMOTIONS)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["input_size"] == "48" and props["tta_flip"] == str(bool(tta)).lower()
    assert len(props["tta_views"].split(", ")) == {False: 1, True: 2, "flip-zoom": 4}[tta]

    clf = EmotionClassifier(path)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    with torch.no_grad():
        logits = [tiny_model(torch.from_numpy(v.astype(np.float32)).unsqueeze(1)) for v in _views(faces, tta)]
        expected = torch.softmax(torch.stack(logits).mean(0), 1).numpy()
    # OpenCV interpolates in fixed point: its zoomed views differ from the graph's in the 3rd decimal.
    atol = 2e-3 if tta == "flip-zoom" else 1e-4
    for batch in (faces[:1], faces):  # dynamic batch
        np.testing.assert_allclose(clf.classify(batch), expected[: len(batch)], atol=atol)
    assert clf.classify(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_export_parity_of_a_residual_model(tmp_path):
    torch.manual_seed(0)
    model = VggFace48(widths=(4, 8, 8, 16), depths=(1, 1, 3, 3), hidden=16, residual=True).eval()
    export_onnx(model, tmp_path / "r.onnx", arch="vggface48_res", tta=True)  # raises on a parity gap
    assert any(node.op_type == "Add" for node in onnx.load(str(tmp_path / "r.onnx")).graph.node)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(faces.astype(np.float32)).unsqueeze(1)
        expected = torch.softmax((model(x) + model(x.flip(-1))) / 2, 1).numpy()
    np.testing.assert_allclose(EmotionClassifier(tmp_path / "r.onnx").classify(faces), expected, atol=1e-4)


def test_export_fails_loudly_on_parity_mismatch(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "_parity", lambda *a: 0.5)
    with pytest.raises(ExportError, match="differs from PyTorch by 5.00e-01"):
        export_onnx(tiny_model, tmp_path / "m.onnx", arch="vggface48_tiny")
    assert not list(tmp_path.iterdir())  # nothing left looking complete


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy exporter, used directly here
def test_classifier_rejects_bad_models(tmp_path, tiny_model):
    with pytest.raises(ModelLoadError, match="not found"):
        EmotionClassifier(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load ONNX model"):
        EmotionClassifier(junk)
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(tiny_model, (torch.rand(1, 1, 48, 48),), str(plain), dynamo=False)
    with pytest.raises(ModelLoadError, match="no emolens metadata"):
        EmotionClassifier(plain)


def test_classifier_tta_in_numpy_matches_tta_in_graph(tiny_model, tmp_path):
    export_onnx(tiny_model, tmp_path / "plain.onnx", arch="t", tta=False)
    export_onnx(tiny_model, tmp_path / "tta.onnx", arch="t", tta=True)
    faces = np.random.default_rng(1).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    numpy_tta = EmotionClassifier(tmp_path / "plain.onnx", tta=True).classify(faces)
    graph_tta = EmotionClassifier(tmp_path / "tta.onnx", tta=True).classify(faces)  # no double flip
    # averaging probabilities vs logits differs slightly; both are mirror-symmetric
    np.testing.assert_allclose(numpy_tta.argmax(1), graph_tta.argmax(1))
    np.testing.assert_allclose(
        numpy_tta, EmotionClassifier(tmp_path / "plain.onnx", tta=True).classify(faces[..., ::-1]), atol=1e-6
    )


def test_load_checkpoint_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ExportError, match="not an emolens training checkpoint"):
        load_checkpoint(bad)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_int8_quantisation_keeps_metadata_and_checks_agreement(tiny_model, tmp_path):
    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    export_onnx(tiny_model, float_path, arch="vggface48_tiny", tta=True)
    faces = np.random.default_rng(0).integers(0, 256, (96, 48, 48), dtype=np.uint8)
    with pytest.raises(ExportError, match="agrees with the float model on"):
        quantize_int8(float_path, int8_path, faces[:64], faces[64:], min_agreement=1.01)
    assert not int8_path.exists()  # nothing written when the check fails
    with pytest.raises(ExportError, match="other faces to check on"):
        quantize_int8(float_path, int8_path, faces[:64], faces[:0])  # an empty check would pass vacuously

    measured = quantize_int8(float_path, int8_path, faces[:64], faces[64:], min_agreement=0.0)
    props = {p.key: p.value for p in onnx.load(str(int8_path)).metadata_props}
    assert props["tta_flip"] == "true" and props["quantization"].startswith("int8")
    assert props["quantization_top1_agreement"] == str(measured["top1_agreement"])
    assert props["quantization_reference_agreement"] == str(measured["reference_agreement"]) != ""
    assert describe_machine() == props["quantization_checked_on"] == measured["cpu"]  # names the CPU features
    assert (
        -64
        <= int8_weight_range(onnx.load(str(int8_path)))[0]
        < 0
        < int8_weight_range(onnx.load(str(int8_path)))[1]
        <= 64
    )
    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(str(int8_path)).graph.node)
    scores = EmotionClassifier(int8_path).classify(faces[64:])
    np.testing.assert_allclose(scores.sum(1), 1, atol=1e-3)
    np.testing.assert_allclose(scores, EmotionClassifier(float_path).classify(faces[64:]), atol=0.1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_int8_quantisation_is_quiet_but_leaves_logging_alone(tiny_model, tmp_path, capsys, monkeypatch):
    """The quantiser's chatter stays off the console; the root logger's level and other threads' logs do not change."""
    import onnxruntime.quantization

    float_path = tmp_path / "float.onnx"
    export_onnx(tiny_model, float_path, arch="vggface48_tiny", tta=True)
    faces = np.random.default_rng(0).integers(0, 256, (96, 48, 48), dtype=np.uint8)
    root = logging.getLogger()
    seen: list[logging.LogRecord] = []

    class Console(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    dropped: list[logging.LogRecord] = []
    real_filter = quantize._QuantiserChatter.filter
    monkeypatch.setattr(quantize._QuantiserChatter, "filter", lambda self, r: real_filter(self, r) or dropped.append(r))
    levels_while_quantising = []
    real = onnxruntime.quantization.quantize_static

    def quantize_static(*args, **kwargs):
        levels_while_quantising.append(root.level)
        other = threading.Thread(target=lambda: logging.info("another thread, meanwhile"))
        other.start()
        other.join()
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", quantize_static)
    console, level = Console(), root.level
    root.addHandler(console)
    root.setLevel(logging.DEBUG)  # setLevel, not assignment: it clears the loggers' cached answers
    try:
        quantize_int8(float_path, tmp_path / "int8.onnx", faces[:64], faces[64:], min_agreement=0.0)
        assert root.level == logging.DEBUG and levels_while_quantising == [logging.DEBUG]
    finally:
        root.removeHandler(console)
        root.setLevel(level)
    assert root.filters == [] and all(not logging.getLogger(name).filters for name in quantize._QUANTISER_LOGGERS)
    assert dropped and not [r.getMessage() for r in seen if "onnxruntime" in r.pathname]
    assert "another thread, meanwhile" in [r.getMessage() for r in seen]
    assert any(r.name == "emolens.training.quantize" for r in seen)  # emolens' own line still goes through
    assert capsys.readouterr().out == ""  # nor its calibration prints


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_int8_export_refuses_kernels_that_differ_from_the_reference_path(tiny_model, tmp_path, monkeypatch):
    from emolens.inference import _ort

    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    export_onnx(tiny_model, float_path, arch="vggface48_tiny", tta=True)
    faces = np.random.default_rng(0).integers(0, 256, (96, 48, 48), dtype=np.uint8)
    real = _ort.cpu_session
    monkeypatch.setattr(_ort, "cpu_session", lambda path, **kw: RolledScores(real(path, **kw)))
    with pytest.raises(ExportError, match=r"reference path's top emotion.*\(AMD|Intel|.*\)"):
        quantize_int8(float_path, int8_path, faces[:64], faces[64:], min_agreement=0.0)
    assert not int8_path.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_float_graph_recovers_the_float_model_from_int8(tiny_model, tmp_path):
    float_path, int8_path, recovered = tmp_path / "float.onnx", tmp_path / "int8.onnx", tmp_path / "recovered.onnx"
    export_onnx(tiny_model, float_path, arch="vggface48_tiny", tta=True)
    faces = np.random.default_rng(0).integers(0, 256, (96, 48, 48), dtype=np.uint8)
    quantize_int8(float_path, int8_path, faces[:64], faces[64:], min_agreement=0.0)
    model = float_graph(onnx.load(str(int8_path)))
    onnx.checker.check_model(model)
    assert not {"QuantizeLinear", "DequantizeLinear"} & {node.op_type for node in model.graph.node}
    assert int8_weight_range(model) == (0, 0)
    onnx.save(model, str(recovered))
    floats = EmotionClassifier(float_path).classify(faces[64:])
    # Only the weights' rounding to the int8 grid remains: far closer than the int8 model.
    assert np.abs(EmotionClassifier(recovered).classify(faces[64:]) - floats).max() < 0.02


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_int8_model_runs_the_views_and_the_standardisation_in_float(tiny_model, tmp_path):
    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    export_onnx(tiny_model, float_path, arch="vggface48_tiny", tta=True)
    # sizes are constants in the graph, not read from the batch at run time
    assert "Shape" not in {node.op_type for node in onnx.load(str(float_path)).graph.node}
    faces = np.random.default_rng(0).integers(0, 256, (96, 48, 48), dtype=np.uint8)
    quantize_int8(float_path, int8_path, faces[:64], faces[64:], min_agreement=0.0)
    nodes = list(onnx.load(str(int8_path)).graph.node)
    first_conv = next(i for i, node in enumerate(nodes) if node.op_type == "Conv")
    before = [node.op_type for node in nodes[:first_conv]]
    assert {"Slice", "ReduceMean", "Sqrt", "Div"} <= set(before)
    assert before.count("QuantizeLinear") == 1  # the standardised faces, once, for the convolution


def test_one_channel_convolution_is_widened_with_the_same_outputs_bit_for_bit(tiny_model, tmp_path, monkeypatch):
    from emolens.inference._ort import cpu_session, reference_session

    float_path, plain_path, wide_path = tmp_path / "float.onnx", tmp_path / "plain.onnx", tmp_path / "wide.onnx"
    export_onnx(tiny_model, float_path, arch="vggface48_tiny", tta=True)
    faces = np.random.default_rng(0).integers(0, 256, (160, 48, 48), dtype=np.uint8)
    quantize_int8(float_path, wide_path, faces[:64], faces[64:96], min_agreement=0.0)
    monkeypatch.setattr(quantize, "widen_one_channel_convs", lambda model: 0)
    quantize_int8(float_path, plain_path, faces[:64], faces[64:96], min_agreement=0.0)

    def first_conv_weights(path):
        model = onnx.load(str(path))
        conv = next(node for node in model.graph.node if node.op_type == "Conv")
        dequantize = next(node for node in model.graph.node if node.output[0] == conv.input[1])
        weights = next(i for i in model.graph.initializer if i.name == dequantize.input[0])
        return onnx.numpy_helper.to_array(weights)

    plain, wide = first_conv_weights(plain_path), first_conv_weights(wide_path)
    assert plain.shape[1] == 1 and wide.shape[1] == quantize.WIDENED_CHANNELS
    assert np.array_equal(wide[:, :1], plain) and not wide[:, 1:].any()
    feed = {"faces": faces[96:].astype(np.float32)[:, None]}
    for session in (cpu_session, reference_session):
        assert np.array_equal(session(wide_path).run(None, feed)[0], session(plain_path).run(None, feed)[0])
    recovered = float_graph(onnx.load(str(wide_path)))  # narrowed back: torch can load its weights
    assert "Concat" not in {node.op_type for node in recovered.graph.node if node.output[0].endswith("_widened_input")}
    conv = next(node for node in recovered.graph.node if node.op_type == "Conv")
    assert next(i for i in recovered.graph.initializer if i.name == conv.input[1]).dims[1] == 1
