"""Average the weights of training checkpoints of one architecture into a new checkpoint.

    python scripts/average_checkpoints.py runs/a/best.pt runs/b/best.pt -o runs/mean/best.pt

Runs fine-tuned from the same weights stay in one basin, so the mean of their weights is a
model too (a "model soup") and often better than either: the shipped accurate model is the
mean of a fine-tuning on the pipeline's crops with and without distillation (its card says
what each scored). The first checkpoint gives everything but the weights; its ``epoch`` is
set to 0, meaning "no single epoch", and ``averaged_from`` lists the inputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def average(paths: list[Path]) -> dict:
    checkpoints = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    first = checkpoints[0]
    if any(c["arch"] != first["arch"] for c in checkpoints):
        raise SystemExit(f"different architectures: {[c['arch'] for c in checkpoints]}")
    weights = {}
    for name, tensor in first["model"].items():
        if tensor.is_floating_point():
            mean = torch.stack([c["model"][name].float() for c in checkpoints]).mean(0)
            weights[name] = mean.to(tensor.dtype)
        else:  # counters such as BatchNorm's num_batches_tracked
            weights[name] = tensor
    return first | {"model": weights, "epoch": 0, "averaged_from": [str(p) for p in paths]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("-o", "--output", required=True, type=Path)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(average(args.checkpoints), args.output)
    print(f"wrote {args.output}: the mean of {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
