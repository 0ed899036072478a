"""The ``emolens`` command line: thin wrappers, heavy imports inside each command."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from emolens.errors import EmolensError


def _cmd_train(args: argparse.Namespace) -> int:
    from emolens.training.config import RECIPES, TrainConfig

    values = dict(RECIPES[args.recipe])
    for name in ("arch", "epochs", "batch_size", "lr", "seed", "optimizer", "threads"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.no_bf16:
        values["bf16"] = False
    cfg = TrainConfig(data=args.data, out=args.out, **values)
    from emolens.training.train import train

    best = train(cfg, resume=args.resume)
    print(f"best {cfg.val_split} accuracy {best['accuracy']:.4f} (macro-F1 {best['macro_f1']:.4f}) at epoch {best['epoch']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emolens", description="Facial emotion recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on FER2013 (needs the [train] extra)")
    p.add_argument("--data", required=True, help="fer2013.csv, an image-folder tree, or a zip of either")
    p.add_argument("--out", default="runs/train", help="output folder (checkpoints, metrics, plots)")
    p.add_argument("--recipe", choices=["default", "origin"], default="default",
                   help="'origin' = the origin's recipe for seed2020 (Adam 5e-4, batch 64, 15 epochs)")
    p.add_argument("--arch", help="model name (see `emolens train --list-models`)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--no-bf16", action="store_true", help="train in plain fp32")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:
        if exc.name in {"torch", "onnx", "matplotlib"}:
            print(f"emolens: {exc.name} is missing; install the training extra: pip install torch==2.13.0 'emolens[train]'",
                  file=sys.stderr)
            return 2
        raise
    except (EmolensError, ValueError, FileNotFoundError) as exc:
        print(f"emolens: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
