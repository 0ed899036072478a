"""Write a shipped model's card (Markdown + JSON, plots, metrics) from a finished training run.

    python scripts/make_model_card.py --run runs/vggface48 --data FER2013.zip \
        --model src/emolens/models/emolens_vggface48.onnx --command "emolens train ..."

After a shipped model is exported again (``emolens export compact --int8 ...``: the same
weights in the current graph), ``--refresh`` measures the new file and rewrites what it decides,
keeping the card's training record:

    python scripts/make_model_card.py --refresh --data FER2013.zip \
        --model src/emolens/models/emolens_vggface48_slim.onnx --export-command "emolens export compact ..."

Everything in the card is measured here: the run's metrics and wall time, then the ONNX
model evaluated on the PublicTest split clean and under each perturbation. The files land
beside the model as ``<model stem>.card.json``, ``.card.md``, ``.curves.png``,
``.confusion.png`` and ``.metrics.json`` (see :mod:`emolens.shipped`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from emolens._machine import describe_machine
from emolens.evaluation import PERTURBATIONS, ROBUSTNESS_SUITE, evaluate, parse_perturbation, predict_probabilities
from emolens.inference.classifier import EmotionClassifier
from emolens.labels import EMOTIONS
from emolens.training.data import load_split
from emolens.training.models import count_multiply_adds, count_parameters, create_model
from emolens.training.plots import plot_confusion, plot_curves


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, help="the training run's folder (not with --refresh)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--command", help="the training command that reproduces the run (not with --refresh)")
    parser.add_argument("--export-command", required=True, help="the command that wrote --model")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="measure an existing card's model again after it was exported again; training sections kept",
    )
    parser.add_argument("--wall-clock-s", type=float, help="the run's elapsed time from its log, evaluation included")
    parser.add_argument(
        "--single-view-model", type=Path, help="float export of the same checkpoint with --tta none, to report"
    )
    parser.add_argument("--quantize-command", help="the `emolens quantize` command that made this file, if one did")
    parser.add_argument(
        "--prior-command",
        action="append",
        default=[],
        help="a command that made the model this run started from (--init); repeat them in order",
    )
    parser.add_argument(
        "--training-machine", help="where the run trained, with its CPU features (default: this machine)"
    )
    parser.add_argument(
        "--data-description", help="what the run trained on, where it was not FER2013's train/ as it is"
    )
    parser.add_argument("--notes", type=Path, help="Markdown appended under 'How we got here' (measured comparisons)")
    args = parser.parse_args()
    if args.refresh:
        refresh(args.model, args.data, args.export_command)
        return
    if not (args.run and args.command):
        parser.error("--run and --command are needed unless --refresh")
    history = json.loads((args.run / "metrics.json").read_text())
    config = json.loads((args.run / "config.json").read_text())
    test = load_split(args.data, "test")
    single = evaluate(args.single_view_model, test.images, test.labels) if args.single_view_model else None
    measured = measure(args.model, test.images, test.labels)
    net = create_model(config["arch"])
    best_epoch = int(EmotionClassifier(args.model).metadata.get("epoch", 0))
    wall_s = sum(h["epoch_s"] for h in history)
    card = {
        "model": args.model.name,
        "arch": config["arch"],
        "multiply_adds_per_view": count_multiply_adds(net),
        "parameters": count_parameters(net),
        "teacher": Path(config["teacher"]).name if config.get("teacher") else None,
        "distillation": {k: config[k] for k in ("teacher_views", "distill_weight", "distill_temperature")}
        if config.get("teacher")
        else None,
        "initialised_from": config.get("init") or None,
        "labels": list(EMOTIONS),
        "input": "48x48 gray, 0-255",
        "data": args.data_description
        or "FER2013 image-folder edition: train/ (28,709 faces, reconstructed) for training; "
        "test/ = PublicTest (3,589) for model selection. PrivateTest held back.",
        "recipe": {
            k: config[k]
            for k in (
                "epochs",
                "batch_size",
                "optimizer",
                "lr",
                "weight_decay",
                "schedule",
                "warmup_epochs",
                "label_smoothing",
                "ema_decay",
                "augment",
                "seed",
            )
        }
        # runs from before select_on_mirror existed picked their epoch by one view
        | {"select_on_mirror": config.get("select_on_mirror", False)},
        "augmentation": config["augment_config"],
        "selected_epoch": best_epoch,
        "epochs_run": len(history),
        "training_wall_time_s": round(wall_s),
        "training_wall_clock_s": round(args.wall_clock_s) if args.wall_clock_s else None,
        "machine": (args.training_machine or describe_machine()) + ", no GPU",
        **measured,
        "publictest_single_view_float": {k: single[k] for k in ("accuracy", "macro_f1")} if single else None,
        "reproduce": [*args.prior_command, args.command, args.export_command]
        + ([args.quantize_command] if args.quantize_command else []),
    }
    stem = args.model.with_suffix("")
    Path(f"{stem}.metrics.json").write_text(json.dumps(history, indent=1) + "\n")
    plot_curves(history, Path(f"{stem}.curves.png"))

    clock = f" ({args.wall_clock_s / 60:.0f} min from start to end, evaluation included)" if args.wall_clock_s else ""
    augment = config["augment_config"]
    quality = "-".join(str(q) for q in augment.get("jpeg_quality", ()))
    augment_extras = (
        f"; for poor cameras also defocus blur (p={augment['defocus_p']}), strong noise (sigma up to"
        f" {255 * augment['max_noise_std']:.0f}), JPEG at quality {quality} (p={augment['jpeg_p']}),"
        f" exposure x{augment['gain'][0]}-1 and rotation up to {augment['max_rotate_deg']:.0f} degrees"
        if augment.get("jpeg_p")
        else ""
    )
    if augment.get("motion_p"):
        low, high = augment["motion_length"]
        augment_extras += f"; motion blur of {low:g}-{high:g} px in any direction (p={augment['motion_p']})"
    if augment.get("ramp_p"):
        low, high = augment["ramp_depth"]
        augment_extras += f"; light falling {low:.0%}-{high:.0%} across the face (p={augment['ramp_p']})"
    distill_line = (
        f"\n- distilled from `{card['teacher']}`: its probabilities on {config['teacher_views']} fixed geometric"
        f" views of every training face, soft-target weight {config['distill_weight']} at temperature"
        f" {config['distill_temperature']} (the rest cross-entropy on the labels); the student alone sees the"
        " appearance degradations"
        if card["teacher"]
        else ""
    )
    if card["initialised_from"]:
        distill_line += f"\n- fine-tuned from the weights of `{card['initialised_from']}`"
    notes = f"\n## How we got here\n\n{args.notes.read_text().strip()}\n" if args.notes else ""
    training = f"""## Training

- data: {card["data"]}
- recipe: {json.dumps(card["recipe"])}
- augmentation: shifts, flips, rotation, scale, brightness/contrast/gamma, blur/sharpen, noise,
  random erasing{augment_extras}
- size: {card["multiply_adds_per_view"] / 1e6:.1f}M multiply-adds per view, {card["parameters"]:,}
  parameters{distill_line}
- training time: {wall_s / 60:.0f} min in training steps for {len(history)} epochs{clock} on {card["machine"]}
  ({config.get("precision", "bf16")}{" autocast + channels_last" if config.get("precision", "bf16") == "bf16" else ""})

![curves]({stem.name}.curves.png)
{notes}
"""
    write_card(args.model, card, training)


def refresh(model: Path, data: str, command: str) -> None:
    """Measure a card's model again after its file was exported again, keeping the training record.

    Everything the file decides (results, robustness, calibration, exactness, views,
    quantisation) is measured anew; the training sections and notes of the card stay; the
    command that made the new file joins the card's reproduce list.
    """
    stem = model.with_suffix("")
    try:
        card = json.loads(Path(f"{stem}.card.json").read_text())
        old_md = Path(f"{stem}.card.md").read_text()
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--refresh needs the model's card beside it ({stem}.card.json and .card.md): {exc}") from exc
    if "## Training" not in old_md or "## Reproduce" not in old_md:
        raise SystemExit(f"{stem}.card.md has no '## Training' and '## Reproduce' sections to keep")
    test = load_split(data, "test")
    card.update(measure(model, test.images, test.labels))
    if card["reproduce"][-1:] != [command]:  # refreshing twice after one export names it once
        card["reproduce"].append(command)
    write_card(model, card, old_md[old_md.index("## Training") : old_md.index("## Reproduce")])


def write_card(model: Path, card: dict, training: str) -> None:
    """The card beside ``model`` (JSON, Markdown with ``training`` as its training sections, the
    confusion plot), and its headline figures on stdout."""
    stem = model.with_suffix("")
    Path(f"{stem}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    _plot_confusion(model, card["publictest"])
    Path(f"{stem}.card.md").write_text(results_markdown(card) + training + closing_markdown(card))
    print(json.dumps({k: card[k] for k in ("publictest", "robustness_accuracy")}, indent=2))


def measure(model: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """The card's fields that depend on the ONNX file: PublicTest clean and perturbed, exactness, graph."""
    clean = evaluate(model, images, labels)
    robustness = {"none": clean["accuracy"]}
    calibration = {"none": clean["calibration"]}
    for spec in (*ROBUSTNESS_SUITE, *PERTURBATIONS):
        spec = parse_perturbation(spec).spec
        report = evaluate(model, images, labels, perturbation=spec)
        robustness[spec], calibration[spec] = report["accuracy"], report["calibration"]
    classifier = EmotionClassifier(model)
    return {
        "evaluated_on": describe_machine(),
        "reference_path": _reference_agreement(model, images, labels, clean["accuracy"]),
        "tta_flip_in_model": classifier.flip_in_model,
        "tta_views_in_model": classifier.views_in_model,
        "quantization": classifier.metadata.get("quantization", "none (float32)"),
        "publictest": {k: clean[k] for k in ("accuracy", "macro_f1", "n", "per_class", "confusion_matrix")},
        "robustness_accuracy": robustness,
        "calibration": calibration,
    }


def _plot_confusion(model: Path, publictest: dict) -> None:
    title = f"{model.name} on PublicTest: accuracy {publictest['accuracy']:.4f}"
    plot_confusion(np.array(publictest["confusion_matrix"]), model.with_suffix(".confusion.png"), title=title)


def results_markdown(card: dict) -> str:
    """The card's title, what the graph does, and its measured results (everything the file decides)."""
    clean, exactness, calibration = card["publictest"], card["reference_path"], card["calibration"]
    rows = "\n".join(
        f"| {e} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for e, m in clean["per_class"].items()
    )
    cm = "\n".join(
        "| " + EMOTIONS[i] + " | " + " | ".join(str(v) for v in row) + " |"
        for i, row in enumerate(clean["confusion_matrix"])
    )
    rob = "\n".join(
        f"| {k} | {v:.4f} | {100 * (v - clean['accuracy']):+.2f} | {calibration[k]['expected_calibration_error']:.3f}"
        f" | {calibration[k]['uncertain_share']:.1%} |"
        for k, v in card["robustness_accuracy"].items()
    )
    cal = calibration["none"]
    single = card.get("publictest_single_view_float")
    single_line = (
        f"- the same checkpoint, one view per face, float32: accuracy {single['accuracy']:.4f},"
        f" macro-F1 {single['macro_f1']:.4f}"
        if single
        else ""
    )
    selected = (
        f"selected epoch {card['selected_epoch']} of {card['epochs_run']}"
        if card["selected_epoch"]
        else "weights averaged over checkpoints (`scripts/average_checkpoints.py`), not one epoch"
    )
    int8 = (
        "\nThe views and the per-face standardisation run in float, the convolutions in int8; the first"
        "\nconvolution is fed four copies of the gray channel, three with zero weights: the same outputs"
        '\nbit for bit, in less time (README, "The shipped models").'
        if card["quantization"].startswith("int8")
        else ""
    )
    stem = Path(card["model"]).stem
    return f"""# Model card: {card["model"]}

**{card["arch"]}**, trained by emolens on FER2013; 7 classes in FER2013's order
({", ".join(EMOTIONS)}). Input: 48x48 gray faces, pixel values 0-255; the graph standardises
each face itself and averages the network's logits over these views of it: {card["tta_views_in_model"]}.
Weights and activations: {card["quantization"]}.{int8}

## Results on FER2013 PublicTest (3,589 faces, used for model selection)

- accuracy **{clean["accuracy"]:.4f}**, macro-F1 **{clean["macro_f1"]:.4f}** (this ONNX file through the
  library's own ONNX Runtime session, on {card["evaluated_on"]})
- the same on every CPU: this CPU's kernels give the top emotion of ONNX Runtime's reference path
  (no graph optimisation) on {exactness["top1_agreement"]:.2%} of the faces; reference-path accuracy
  {exactness["accuracy"]:.4f}
- {selected}; PrivateTest was not used here: it grades the model independently.
{single_line}

| emotion | precision | recall | F1 | support |
| --- | --- | --- | --- | --- |
{rows}

Confusion matrix (rows true, columns predicted):

| | {" | ".join(EMOTIONS)} |
| --- | {" | ".join("---" for _ in EMOTIONS)} |
{cm}

![confusion]({stem}.confusion.png)

## Robustness (PublicTest, perturbed copies generated by `emolens evaluate --perturb`)

| perturbation | accuracy | change (points) | calibration error | uncertain |
| --- | --- | --- | --- | --- |
{rob}

The scores are probabilities one can read as such: the expected calibration error (the gap
between the top score and the share of faces it is right on, over 15 score bins) is
{cal["expected_calibration_error"]:.3f} on the clean faces. A face whose top score is under
{cal["uncertain_below"]:g} is reported as uncertain: {cal["uncertain_share"]:.1%} of the clean faces, right on
{_share(cal["accuracy_uncertain"])} of them against {_share(cal["accuracy_confident"])} of the rest.

`noise:S`: Gaussian noise, sigma S grey levels; `blur:S`: Gaussian blur, sigma S pixels;
`jpeg:Q`: JPEG at quality Q; `dark:GxK`: gamma G, then exposure x K; `rotate:A-B`: A-B degrees
either way; `motion:L`: smeared L px in a random direction; `ramp:D`: light falling by D across
the face; `lowres:S`: shrunk to S px and enlarged back; ranges are drawn per face. The first
five are the robustness targets' strengths.

"""


def _share(value: float | None) -> str:
    """A share as a percentage; "n/a" where there was nothing to take it of (no uncertain faces)."""
    return "n/a" if value is None else f"{value:.1%}"


def closing_markdown(card: dict) -> str:
    """How to make the file again, and what the model cannot do."""
    recalls = sorted((m["recall"], e) for e, m in card["publictest"]["per_class"].items())
    weakest = ", ".join(f"{e} {r:.3f}" for r, e in recalls[:2])
    return f"""## Reproduce

```bash
{chr(10).join(card["reproduce"])}
```

## Limitations

- FER2013 is 48x48 gray web images, mostly frontal, with noisy labels (human accuracy is
  about 65%); expect lower accuracy on real video, strong profiles and occluded faces.
- Weakest recall: {weakest}. Disgust has only 436 training faces (1.5%), so its figures
  move most between runs.
- Labels are posed or stereotyped expressions, not felt emotions; do not use the output to
  judge people (hiring, policing, health) or without their consent.
- Demographic balance of FER2013 is undocumented; accuracy across groups was not measured.
"""


def _reference_agreement(model: Path, images: np.ndarray, labels: np.ndarray, accuracy: float) -> dict:
    """The library's scores against the reference path on every face: what makes the card CPU-independent."""
    reference = predict_probabilities(model, images, reference=True)
    ours = predict_probabilities(model, images)
    return {
        "top1_agreement": float(np.mean(ours.argmax(1) == reference.argmax(1))),
        "accuracy": float(np.mean(reference.argmax(1) == labels)),
        "library_accuracy": accuracy,
        "max_abs_diff": float(np.abs(ours - reference).max()),
    }


if __name__ == "__main__":
    main()
