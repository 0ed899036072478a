"""The shipped models give the same answers on CPUs other than the one running the tests.

ONNX Runtime picks its integer kernels from what the CPU reports. QEMU's user-mode emulator
(Debian's ``qemu-user``, which the README's test command installs) reports the CPU model
asked for, so this machine runs the kernels of an AVX2-only CPU (Haswell) and of an
SSE4-only one (Nehalem), whatever it is itself. A one-convolution model built to overflow
AVX2's 16-bit pair sums shows that the emulated CPU really runs those kernels, so a pass here
means something. (``benchmarks/emulated_cpus.py`` does the same on all of PublicTest, and on
ARM CPUs.)
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest

from emolens.diagnostics import self_check_faces
from emolens.inference.classifier import EmotionClassifier
from emolens.shipped import SHIPPED_MODELS, shipped_model_path

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64" or shutil.which("qemu-x86_64") is None,
    reason="needs an x86-64 machine with qemu-user (the README's test command installs it)",
)

CHANNELS = 8
# Runs under the emulator. argv: faces.npy, out.npz, saturating.onnx, then the shipped models.
CHILD = """
import sys, numpy as np, onnxruntime as ort
try:
    from numpy._core._multiarray_umath import __cpu_features__
except ImportError:  # numpy 1
    from numpy.core._multiarray_umath import __cpu_features__
from emolens.inference._ort import cpu_session
from emolens.inference.classifier import EmotionClassifier
faces, out, saturating, models = np.load(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
bare = ort.InferenceSession(saturating, providers=["CPUExecutionProvider"])
x = {"x": np.full(bare.get_inputs()[0].shape, 255, np.float32)}
np.savez(
    out,
    features=np.array([f for f in ("AVX2", "AVX512F") if __cpu_features__.get(f)], dtype=str),
    saturating_bare=bare.run(None, x)[0],
    saturating_library=cpu_session(saturating).run(None, x)[0],
    **{name: EmotionClassifier(name).classify(faces) for name in models},
)
"""


def saturating_model(path) -> None:
    """255 x a 1x1 convolution of ``CHANNELS`` int8 weights of 127, quantised: exactly 1.0.

    On x86 without VNNI, ONNX Runtime's uint8 x int8 kernel adds each pair of products
    (2 x 255 x 127 = 64,770) in a 16-bit register, which holds at most 32,767: about 0.5.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constants = {
        "one": np.array(1.0, np.float32),
        "u8_zero": np.array(0, np.uint8),
        "w": np.full((1, CHANNELS, 1, 1), 127, np.int8),
        "i8_zero": np.array(0, np.int8),
        "y_scale": np.array(255 * 127 * CHANNELS / 250, np.float32),
        "full": np.array(255 * 127 * CHANNELS, np.float32),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "one", "u8_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "one", "u8_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "one", "i8_zero"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "y_scale", "u8_zero"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "u8_zero"], ["yd"]),
        helper.make_node("Div", ["yd", "full"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "saturating",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, 2, 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 2, 2])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


@pytest.mark.parametrize("cpu", ["Haswell-v4", "Nehalem"])
def test_same_answers_on_an_emulated_cpu(cpu, tmp_path):
    faces = self_check_faces()
    np.save(tmp_path / "faces.npy", faces)
    saturating_model(tmp_path / "saturating.onnx")
    models = [str(shipped_model_path(name)) for name in SHIPPED_MODELS]
    command = ["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", CHILD, str(tmp_path / "faces.npy")]
    command += [str(tmp_path / "out.npz"), str(tmp_path / "saturating.onnx"), *models]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    there = np.load(tmp_path / "out.npz")

    avx2 = cpu.startswith("Haswell")
    if avx2 and "AVX2" not in there["features"]:
        pytest.skip("this QEMU does not emulate AVX2 (7.2 and later do)")
    assert list(there["features"]) == (["AVX2"] if avx2 else [])  # and never AVX-512
    # the control: AVX2's kernel overflows (4 pairs of 32,767 against 259,080), SSE4's widens first
    assert np.allclose(there["saturating_bare"], 0.504 if avx2 else 1.0, atol=0.005)
    assert np.allclose(there["saturating_library"], 1.0, atol=0.005)  # session.x64quantprecision
    for path in models:
        here = EmotionClassifier(path).classify(faces)
        # exact integer kernels on both: only float steps (standardisation, softmax) may round apart
        assert np.abs(there[path] - here).max() < 1e-5, (cpu, path)
