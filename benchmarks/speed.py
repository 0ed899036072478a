"""Training and inference speed on this machine (run by hand; figures go into the README).

    python benchmarks/speed.py                # all
    python benchmarks/speed.py --skip-train   # inference only (no torch needed)
    python benchmarks/speed.py --archs vggface48 --compile   # also torch.compile'd bf16

Training: img/s of one optimisation step (forward, backward, SGD) on batches of 128
random 48x48 faces, fp32 vs bfloat16 autocast + channels_last, per architecture.
Inference: each shipped ONNX model (or those given with --model) through ONNX Runtime, ms per
face at batch 1 and faces/s at batch 64, with one thread and with all cores, in one run.
With ``--rounds N`` the models take turns N times and each figure is the median of its
rounds, with the range: single timings on a shared machine drift by a third within an hour,
so only models timed in turn can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from emolens._machine import describe_machine


def bench_train(arch: str, bf16: bool, batch: int = 128, steps: int = 8, compiled: bool = False) -> float:
    import torch
    import torch.nn.functional as F

    from emolens.training.models import create_model

    model = create_model(arch)
    x = torch.rand(batch, 1, 48, 48) * 255
    y = torch.randint(0, 7, (batch,))
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if compiled:
        model = torch.compile(model)  # inductor; the first steps below pay for compiling

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def bench_onnx(model_path: str, threads: int) -> dict:
    from emolens.inference.classifier import EmotionClassifier

    clf = EmotionClassifier(model_path, threads=threads)
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 48, 48), dtype=np.uint8)
    many = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    for _ in range(20):
        clf.classify(one)
    times = []
    for _ in range(300):
        t = time.perf_counter()
        clf.classify(one)
        times.append(time.perf_counter() - t)
    clf.classify(many)
    t = time.perf_counter()
    for _ in range(20):
        clf.classify(many)
    batch_s = (time.perf_counter() - t) / 20
    return {
        "model": model_path,
        "threads": threads,
        "ms_per_face_batch1_median": 1000 * statistics.median(times),
        "ms_per_face_batch1_p95": 1000 * float(np.percentile(times, 95)),
        "faces_per_s_batch64": 64 / batch_s,
        "tta_flip_in_model": clf.flip_in_model,
        "views_per_face": clf.views_in_model,
        "quantization": clf.metadata.get("quantization", "none (float32)"),
    }


def _medians(runs: list[dict]) -> dict:
    """One setting's rounds as one record: each timing's median over the rounds, and every round's value."""
    merged = dict(runs[0])
    for key in ("ms_per_face_batch1_median", "ms_per_face_batch1_p95", "faces_per_s_batch64"):
        values = [run[key] for run in runs]
        merged[key] = statistics.median(values)
        if len(runs) > 1:
            merged[key + "_rounds"] = [round(v, 3) for v in values]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument(
        "--model", nargs="+", default=["compact", "accurate"], help="shipped model names or ONNX files (default: both)"
    )
    parser.add_argument("--archs", nargs="+", default=["seed2020", "vggface48", "sepface48"])
    parser.add_argument("--compile", action="store_true", help="also time bf16 + channels_last under torch.compile")
    parser.add_argument("--rounds", type=int, default=1, help="time the models in turn this many times (medians)")
    args = parser.parse_args()
    result = {"machine": describe_machine()}
    if not args.skip_train:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        result["torch"] = torch.__version__
        modes = ["fp32", "bf16_channels_last"] + (["bf16_channels_last_compiled"] if args.compile else [])
        result["train_img_per_s"] = {
            arch: {
                mode: round(bench_train(arch, mode != "fp32", compiled=mode.endswith("compiled")), 1) for mode in modes
            }
            for arch in args.archs
        }
    import onnxruntime

    result["onnxruntime"] = onnxruntime.__version__
    settings = [(model, t) for model in args.model for t in (1, os.cpu_count() or 1)]
    rounds = [[bench_onnx(model, t) for model, t in settings] for _ in range(args.rounds)]
    result["inference"] = [_medians([r[i] for r in rounds]) for i in range(len(settings))]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
