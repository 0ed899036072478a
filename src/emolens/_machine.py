"""What this machine is, for benchmark results, model metadata and ``emolens info``.

No torch here: serving must be able to say which CPU it runs on. Features come from the
kernel's own list (/proc/cpuinfo on Linux, sysctl on macOS); they decide which integer and
bfloat16 kernels ONNX Runtime and oneDNN can use, so every recorded figure names them.
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from pathlib import Path

# Linux flag -> the name we print. Order: how they are listed.
_X86_FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX",
}
_ARM_FEATURES = {"asimd": "NEON", "asimddp": "dot product", "i8mm": "int8 matmul", "bf16": "BF16", "sve": "SVE"}
_MACOS_FEATURES = {
    "hw.optional.neon": "NEON",
    "hw.optional.arm.FEAT_DotProd": "dot product",
    "hw.optional.arm.FEAT_I8MM": "int8 matmul",
    "hw.optional.arm.FEAT_BF16": "BF16",
}


def _cpuinfo() -> tuple[str, set[str]]:
    name, flags = "", set[str]()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return name, flags


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@cache
def cpu_features() -> tuple[str, ...]:
    """The CPU's features that change which kernels run, e.g. ('AVX2',) or ('AVX2', 'AVX-512', ...)."""
    _, flags = _cpuinfo()
    if flags:
        table = _ARM_FEATURES if "asimd" in flags else _X86_FEATURES
        return tuple(label for flag, label in table.items() if flag in flags)
    if platform.system() == "Darwin":
        return tuple(label for key, label in _MACOS_FEATURES.items() if _sysctl(key) == "1")
    return ()


def int8_is_exact_natively() -> bool:
    """Whether ONNX Runtime's uint8 x int8 kernels here are exact for any weights.

    On x86 only VNNI adds products straight into 32 bits; without it they are summed in
    pairs in 16-bit registers and can saturate. ARM's NEON kernels widen before they add.
    """
    features = cpu_features()
    return any(f in features for f in ("AVX-512 VNNI", "AVX-VNNI", "NEON"))


@cache
def cpu_name() -> str:
    return _cpuinfo()[0] or _sysctl("machdep.cpu.brand_string") or platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on: a container's or taskset's share, not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def describe_machine() -> str:
    """E.g. 'AMD EPYC (AVX2), 2 cores, Linux x86_64, Python 3.11.7'."""
    features = ", ".join(cpu_features()) or "no SIMD features found"
    system = f"{platform.system()} {platform.machine()}"
    return f"{cpu_name()} ({features}), {os.cpu_count()} cores, {system}, Python {platform.python_version()}"
