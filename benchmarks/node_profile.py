"""Where a classifier's time goes: ONNX Runtime's profiler, per node type, at batch 1 (run by hand).

    python benchmarks/node_profile.py [--models compact accurate] [--threads 2] [--runs 2000] [--json out.json]

The session is made as the library makes it (spinning within a run, exact int8); the
profiler adds its own cost to every node, so the figures are shares of a profiled run, not
the run's time without the profiler (``benchmarks/speed.py`` gives that).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _common import emit

from emolens._machine import describe_machine
from emolens.inference._ort import cpu_session_options
from emolens.shipped import SHIPPED_MODELS, resolve_model


def profile(path: Path, threads: int, runs: int) -> dict:
    """Microseconds per run spent in each node type, and how many nodes the optimised graph runs."""
    options = cpu_session_options(threads=threads)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        face = np.random.default_rng(0).integers(0, 256, (1, 1, 48, 48)).astype(np.float32)
        feed = {session.get_inputs()[0].name: face}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_type: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_type[event["args"].get("op_name", "?")] += event["dur"]
            calls[event["name"]] += 1
    per_run = max(calls.values())
    return {
        "nodes": len(calls),
        "us_in_nodes": round(sum(by_type.values()) / per_run, 1),
        "us_by_node_type": {k: round(v / per_run, 1) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["compact", "accurate"], help="shipped names or ONNX files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = {"machine": describe_machine(), "threads": args.threads, "runs": args.runs, "batch": 1}
    paths = {model: resolve_model(model) for model in args.models}
    missing = [model for model, path in paths.items() if not path.is_file()]
    if missing:
        parser.error(f"no such model: {', '.join(missing)} (shipped names: {', '.join(SHIPPED_MODELS)}, or ONNX files)")
    for model, path in paths.items():
        result[model] = profile(path, args.threads, args.runs)
    emit(result, args.json)


if __name__ == "__main__":
    main()
