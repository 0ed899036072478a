"""Average the weights of training checkpoints of one architecture into a new checkpoint.

    python scripts/average_checkpoints.py runs/a/best.pt runs/b/best.pt -o runs/mean/best.pt
    python scripts/average_checkpoints.py accurate runs/a/best.pt --data runs/faces -o runs/mean/best.pt

Runs fine-tuned from the same weights stay in one basin, so the mean of their weights is a model
too (a "model soup") and often better than either: the shipped accurate model is the mean of a
fine-tuning on the pipeline's crops and the weights it started from, themselves the mean of such
a fine-tuning with and without distillation (its card says what each scored). The first
checkpoint gives everything but the weights; its ``epoch`` is set to 0, meaning "no single
epoch", and ``averaged_from`` lists the inputs. A shipped model's name or an ONNX file is read
back into the network the way ``emolens train --init`` does it (BatchNorms rebuilt from
statistics on ``--data``'s training faces), so a fine-tuning can be averaged with the weights it
started from; give it the run's ``--data`` to get the very weights the run started from.
Repeating an input weights it more.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def average(paths: list[str], data: str | None = None) -> dict:
    torch_files = [p for p in paths if Path(p).suffix == ".pt"]
    if not torch_files:
        raise SystemExit("give at least one .pt checkpoint: it sets the architecture")
    loaded = {p: torch.load(p, map_location="cpu", weights_only=False) for p in torch_files}
    template = loaded[torch_files[0]]
    for p in paths:
        if p not in loaded:
            loaded[p] = template | {"model": _onnx_state(p, template["arch"], data)}
    checkpoints = [loaded[p] for p in paths]
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


def _onnx_state(model: str, arch: str, data: str | None) -> dict:
    """An ONNX model's weights as ``arch``'s state dict, rebuilt exactly as ``emolens train --init`` does."""
    from emolens.training.data import load_split
    from emolens.training.models import create_model
    from emolens.training.train import init_from_onnx

    if data is None:
        raise SystemExit(f"{model}: an ONNX model needs --data (the training faces its BatchNorms are rebuilt on)")
    net = create_model(arch)
    init_from_onnx(net, model, load_split(data, "train"))
    return net.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help=".pt checkpoints, shipped model names or ONNX files")
    parser.add_argument("--data", help="training data for ONNX inputs' BatchNorms (the run's --data)")
    parser.add_argument("-o", "--output", required=True, type=Path)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(average(args.checkpoints, args.data), args.output)
    print(f"wrote {args.output}: the mean of {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
