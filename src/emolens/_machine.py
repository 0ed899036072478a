"""A one-line description of this machine, for benchmark results and model cards."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine() -> str:
    """E.g. 'AMD EPYC, 2 cores, Linux x86_64, Python 3.11.7'."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.machine()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"
