"""The shipped models' answers on CPUs this machine is not, run under QEMU (run by hand).

    python benchmarks/emulated_cpus.py --data fer2013-images.zip [--cpus x86_64:Haswell-v4,x86_64:Nehalem]
        [--every K] [--models compact accurate] [--plain FILE.onnx] [--arm-root DIR] [--json out.json]

Integer kernels differ between CPUs, and ONNX Runtime picks its kernels from what the CPU
says it can do. QEMU's user-mode emulator (Debian's ``qemu-user``; 7.2 emulates AVX2 and FMA,
not AVX-512) tells a program it runs on the CPU model asked for, so the same wheels run here
the kernels an AVX2-only, an SSE4-only or an ARM CPU would run. Each PublicTest face's
probabilities there are compared with this machine's (the library's session) and with
ONNX Runtime's reference path (no fused integer kernels). Only answers are compared:
emulation is ~100x slower, so its timings mean nothing.

``--plain`` adds a model run on a bare ONNX Runtime session, without the option
(``session.x64quantprecision``) the library sets: given an int8 file with full 8-bit weights,
it shows that the emulated AVX2 CPU runs the saturating kernels a real one does.

An ARM CPU (``aarch64:cortex-a72``, ``aarch64:max``) needs ``--arm-root``: a directory with
Debian's arm64 Python 3.11 unpacked under ``sysroot/`` and the aarch64 wheels of numpy,
opencv-python-headless and onnxruntime installed under ``site/`` (``benchmarks/arm_root.sh DIR`` makes both).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CPUS = "x86_64:Haswell-v4,x86_64:SandyBridge,x86_64:Nehalem"
# Arm's part numbers of QEMU's aarch64 CPU models ("max" has the features of a Neoverse V1)
ARM_PARTS = {
    "cortex-a53": "0xd03",
    "cortex-a72": "0xd08",
    "cortex-a76": "0xd0b",
    "neoverse-n1": "0xd0c",
    "max": "0xd40",
}
# what numpy's own CPU dispatch found, named as numpy names them
WATCHED_FEATURES = ("SSE42", "AVX", "FMA3", "AVX2", "AVX512F", "AVX512VNNI", "ASIMD", "ASIMDDP", "SVE")


def classify(faces: np.ndarray, models: list[str], plain: list[str], *, reference: bool = False) -> dict:
    """Probabilities per model: the library's session (or the reference path), and bare sessions for ``plain``."""
    import onnxruntime as ort

    from emolens.evaluation import predict_probabilities
    from emolens.inference.classifier import EmotionClassifier

    out = {name: predict_probabilities(name, faces, reference=reference) for name in models}
    for path in plain:
        key = f"{Path(path).name} (plain session)"
        if reference:
            out[key] = predict_probabilities(path, faces, reference=True)
        else:  # the library's sessions always set x64quantprecision: a bare one shows the file alone
            clf = EmotionClassifier(path)
            clf._session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            out[key] = clf.classify(faces)
    return out


def child(args: argparse.Namespace) -> None:
    """Runs under QEMU: classify the faces, save the probabilities and the CPU features seen."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1
        from numpy.core._multiarray_umath import __cpu_features__

    probs = classify(np.load(args.faces_file), args.models, args.plain)
    seen = [f for f in WATCHED_FEATURES if __cpu_features__.get(f)] + arm_int8_features()
    np.savez(args.child, features=np.array(seen), **probs)


def arm_cpuinfo(model: str) -> str:
    """/proc/cpuinfo as Linux writes it on two cores of ``model``.

    QEMU 7.2 passes the host's /proc/cpuinfo through, and ONNX Runtime's CPU probe on ARM
    crashes on an x86 one; ``-L`` makes the emulated program read this file instead. The
    features the kernels are chosen by come from the emulated CPU itself (its HWCAP bits).
    """
    part = ARM_PARTS.get(model)
    if part is None:
        raise SystemExit(f"aarch64:{model}: not one of {', '.join(ARM_PARTS)}")
    core = "BogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
    return "\n".join(f"processor\t: {i}\n{core}CPU part\t: {part}\nCPU revision\t: 0\n" for i in range(2))


def arm_int8_features() -> list[str]:
    """ARM's int8 matrix-multiply and bf16 instructions, which numpy does not list, from the HWCAP2 bits."""
    import ctypes
    import platform

    if platform.machine() != "aarch64":
        return []
    getauxval = ctypes.CDLL(None).getauxval
    getauxval.restype = ctypes.c_ulong
    hwcap2 = getauxval(26)  # AT_HWCAP2
    return [name for name, bit in (("I8MM", 13), ("BF16", 14)) if hwcap2 >> bit & 1]


def emulator(cpu: str, arm_root: Path | None) -> list[str]:
    """The command that runs this script's child on the emulated ``arch:model`` CPU."""
    arch, model = cpu.split(":", 1)
    if arch == "x86_64":
        return ["qemu-x86_64", "-cpu", model, sys.executable]
    if arch == "aarch64":
        if arm_root is None:
            raise SystemExit(f"{cpu}: an ARM CPU needs --arm-root (see this script's docstring)")
        sysroot = arm_root / "sysroot"
        (sysroot / "proc").mkdir(exist_ok=True)
        (sysroot / "proc" / "cpuinfo").write_text(arm_cpuinfo(model))
        return ["qemu-aarch64", "-cpu", model, "-L", str(sysroot), str(sysroot / "usr/bin/python3.11")]
    raise SystemExit(f"{cpu}: expected x86_64:MODEL or aarch64:MODEL")


def run_emulated(cpu: str, args: argparse.Namespace, faces_file: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if cpu.startswith("aarch64:"):
        env["PYTHONPATH"] += os.pathsep + str(args.arm_root / "site")
    command = [*emulator(cpu, args.arm_root), __file__, "--child", str(out), "--faces-file", str(faces_file)]
    command += ["--models", *args.models] + (["--plain", *args.plain] if args.plain else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "TCG doesn't support" not in line]
        raise SystemExit(f"{cpu}: the emulated run failed:\n" + "\n".join(lines[-20:]))


def compare(probs: np.ndarray, host: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "accuracy": round(float(np.mean(probs.argmax(1) == labels)), 5),
        "top_emotion_as_this_machine": round(float(np.mean(probs.argmax(1) == host.argmax(1))), 5),
        "top_emotion_as_reference_path": round(float(np.mean(probs.argmax(1) == reference.argmax(1))), 5),
        "max_abs_diff_to_this_machine": float(np.abs(probs - host).max()),
        "max_abs_diff_to_reference_path": float(np.abs(probs - reference).max()),
        "identical_to_this_machine": bool(np.array_equal(probs, host)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="FER2013 zip or folder (PublicTest is scored)")
    parser.add_argument("--cpus", default=DEFAULT_CPUS, help="ARCH:MODEL,... as QEMU names them (default %(default)s)")
    parser.add_argument("--every", type=int, default=1, help="every Kth PublicTest face (default: all)")
    parser.add_argument("--models", nargs="+", default=["compact", "accurate"], help="shipped names or ONNX files")
    parser.add_argument("--plain", nargs="+", default=[], help="ONNX files also run on a bare session")
    parser.add_argument("--arm-root", type=Path, help="arm64 Python and wheels, for aarch64 CPUs")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--faces-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not args.data:
        parser.error("--data is required")

    from emolens._machine import describe_machine
    from emolens.training.data import load_split

    test = load_split(args.data, "test")
    faces, labels = test.images[:: args.every], test.labels[:: args.every]  # the split is sorted by emotion
    host = classify(faces, args.models, args.plain)
    reference = classify(faces, args.models, args.plain, reference=True)
    result: dict = {
        "machine": describe_machine(),
        "faces": f"{len(faces)}: every {args.every} of PublicTest's {len(test)}",
        "this_machine": {name: compare(p, p, reference[name], labels) for name, p in host.items()},
        "emulated": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        faces_file = Path(tmp) / "faces.npy"
        np.save(faces_file, faces)
        for cpu in args.cpus.split(","):
            out = Path(tmp) / "probs.npz"
            start = time.perf_counter()
            run_emulated(cpu, args, faces_file, out)
            got = np.load(out)
            result["emulated"][cpu] = {
                "cpu_features_seen": got["features"].tolist(),
                "emulated_minutes": round((time.perf_counter() - start) / 60, 1),
            } | {name: compare(got[name], host[name], reference[name], labels) for name in host}
            print(cpu, result["emulated"][cpu], file=sys.stderr, flush=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
