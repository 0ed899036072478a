"""Fine-tuning an exported model: its ONNX weights back into a torch network that still trains."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from emolens.errors import ExportError
from emolens.training.data import load_split
from emolens.training.export import export_onnx
from emolens.training.models import create_model
from emolens.training.onnx_weights import load_onnx_weights
from emolens.training.quantize import quantize_int8
from emolens.training.train import init_from_onnx


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    model = create_model("vggface48_tiny").eval()
    for m in model.modules():  # BatchNorm statistics as after training, folded away by the export
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, arch="vggface48_tiny", tta=False)
    return model, path


def test_the_rebuilt_network_computes_what_the_onnx_model_does(exported):
    original, path = exported
    faces, _ = synthetic_faces(8)
    rebuilt = create_model("vggface48_tiny")
    load_onnx_weights(rebuilt, path, faces)
    x = torch.from_numpy(faces).unsqueeze(1).float()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), original(x), atol=1e-3, rtol=1e-3)
        # the rebuilt convolutions' BatchNorms in train mode, on the faces their statistics came
        # from, start from the same function (the head's BatchNorm1d was not folded: left in eval)
        for m in rebuilt.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
        train_mode = rebuilt(x)
    torch.testing.assert_close(train_mode, original(x), atol=5e-2, rtol=5e-2)


def test_an_int8_model_is_read_back_as_its_float_graph(exported, tmp_path):
    original, path = exported
    faces, _ = synthetic_faces(10, seed=1)
    quantize_int8(path, tmp_path / "q.onnx", faces[:40], faces[40:], min_agreement=0.0)
    rebuilt = create_model("vggface48_tiny")
    load_onnx_weights(rebuilt, tmp_path / "q.onnx", faces)
    x = torch.from_numpy(faces).unsqueeze(1).float()
    with torch.no_grad():
        agree = (rebuilt.eval()(x).argmax(1) == original(x).argmax(1)).float().mean()
    assert agree >= 0.9  # the int8 grid moves weights a little


def test_another_architecture_is_refused(exported):
    _, path = exported
    with pytest.raises(ExportError, match="not the same architecture"):
        load_onnx_weights(create_model("sepface48"), path, np.zeros((4, 48, 48), np.uint8))


def test_a_file_that_is_not_onnx_is_named(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="junk.onnx: not an ONNX model"):
        load_onnx_weights(create_model("vggface48_tiny"), junk, np.zeros((4, 48, 48), np.uint8))


def test_a_fine_tuning_is_averaged_with_the_onnx_weights_it_started_from(exported, tmp_path, tiny_folder):
    script = Path(__file__).resolve().parent.parent / "scripts" / "average_checkpoints.py"
    spec = importlib.util.spec_from_file_location("average_checkpoints", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    average = module.average
    _, path = exported
    started = create_model("vggface48_tiny")
    init_from_onnx(started, str(path), load_split(tiny_folder, "train"))  # what --init gave the run
    tuned = create_model("vggface48_tiny")
    torch.save({"arch": "vggface48_tiny", "model": tuned.state_dict(), "epoch": 3}, tmp_path / "b.pt")
    mean = average([str(path), str(tmp_path / "b.pt")], data=str(tiny_folder))
    assert mean["epoch"] == 0 and mean["averaged_from"] == [str(path), str(tmp_path / "b.pt")]
    for name, tensor in mean["model"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (started.state_dict()[name] + tuned.state_dict()[name]) / 2)
    with pytest.raises(SystemExit, match="needs --data"):
        average([str(tmp_path / "b.pt"), str(path)])
