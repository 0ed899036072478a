"""Do a run's last epochs, averaged, beat its best epoch? Measured on PublicTest.

    python benchmarks/snapshot_averages.py runs/NAME --data fer2013-images.zip [--last 3 5 10]

Needs a run trained with `emolens train --snapshots N`. For each snapshot, and for the last
K of them averaged three ways (weights as they are; weights with BatchNorm statistics
re-estimated on the training faces, as SWA does; mirror-averaged probabilities), prints one
JSON object with the accuracy of one view and of the face averaged with its mirror.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch

from emolens.training.data import load_split
from emolens.training.export import load_checkpoint
from emolens.training.train import predict_logits


@torch.no_grad()
def reestimate_batchnorm(model: torch.nn.Module, faces: np.ndarray, batch: int = 256) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over all batches
    model.train()
    x = torch.from_numpy(faces)
    for start in range(0, len(x), batch):
        model(x[start : start + batch].unsqueeze(1).float())
    model.eval()


def average_weights(models: list[torch.nn.Module]) -> torch.nn.Module:
    averaged = copy.deepcopy(models[0])
    state = averaged.state_dict()
    for key, value in state.items():
        if value.dtype.is_floating_point:
            state[key] = sum(m.state_dict()[key] for m in models) / len(models)
    averaged.load_state_dict(state)
    return averaged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", required=True, help="FER2013 in any form `emolens train` reads")
    parser.add_argument("--last", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    paths = sorted((args.run / "snapshots").glob("epoch_*.pt"))
    if not paths:
        raise SystemExit(f"no snapshots in {args.run / 'snapshots'}: train with --snapshots N")
    test, train = load_split(args.data, "test"), load_split(args.data, "train")
    mirrored = np.ascontiguousarray(test.images[:, :, ::-1])

    def accuracy(logits: np.ndarray) -> float:
        return round(float((logits.argmax(1) == test.labels).mean()), 4)

    def score(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        one = predict_logits(model, test.images)
        return one, (one + predict_logits(model, mirrored)) / 2

    models, mirror_probs, report = [], [], {"snapshots": {}, "averages": {}}
    for path in paths:
        model, ckpt = load_checkpoint(path)
        one, mirror = score(model)
        models.append(model)
        mirror_probs.append(torch.softmax(torch.from_numpy(mirror), 1).numpy())
        report["snapshots"][ckpt["epoch"]] = {"one_view": accuracy(one), "mirror": accuracy(mirror)}
    for k in (k for k in args.last if k <= len(models)):
        averaged = average_weights(models[-k:])
        one, mirror = score(averaged)
        reestimate_batchnorm(averaged, train.images)
        one_bn, mirror_bn = score(averaged)
        report["averages"][f"last {k}"] = {
            "weights": {"one_view": accuracy(one), "mirror": accuracy(mirror)},
            "weights_bn_reestimated": {"one_view": accuracy(one_bn), "mirror": accuracy(mirror_bn)},
            "probabilities_mirror": accuracy(sum(mirror_probs[-k:])),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
