"""The ``emolens`` command line: thin wrappers, heavy imports inside each command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emolens.errors import EmolensError, SettingsError

if TYPE_CHECKING:
    import numpy as np

    from emolens.batch import FileOutcome
    from emolens.inference.recognizer import EmotionRecognizer
    from emolens.training.data import FerSplit

# `emolens train` flags that set the TrainConfig field of the same name when given.
_TRAIN_OPTIONS = (
    "arch",
    "epochs",
    "batch_size",
    "lr",
    "warmup_epochs",
    "seed",
    "optimizer",
    "threads",
    "mixup",
    "init",
    "teacher",
    "teacher_views",
    "teacher_online",
    "distill_weight",
    "distill_temperature",
)


def _cmd_train(args: argparse.Namespace) -> int:
    from emolens.training.augment import ROBUST, AugmentConfig, with_overrides
    from emolens.training.config import RECIPES, TrainConfig

    values = dict(RECIPES[args.recipe])
    for name in _TRAIN_OPTIONS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.no_bf16:
        values["bf16"] = False
    if args.robust:
        values["augment_config"] = ROBUST
    if args.augment:
        values["augment_config"] = with_overrides(values.get("augment_config", AugmentConfig()), args.augment)
    if args.select_on_mirror:
        values["select_on_mirror"] = True
    if args.snapshots is not None:
        values["snapshots"] = args.snapshots
    cfg = TrainConfig(data=args.data, out=args.out, **values)
    from emolens.training.train import train

    best = train(cfg, resume=args.resume, stop_after=args.stop_after)
    views = " with the mirror" if best["select_on_mirror"] else ""
    print(
        f"best {cfg.val_split} accuracy{views} {best['accuracy']:.4f} (macro-F1 {best['macro_f1']:.4f})"
        f" at epoch {best['epoch']}"
    )
    return 0


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from emolens.evaluation import ROBUSTNESS_SUITE, evaluate, parse_perturbation
    from emolens.shipped import DEFAULT_MODEL
    from emolens.training.data import load_split

    specs = [s for spec in args.perturb or [] for s in (ROBUSTNESS_SUITE if spec == "suite" else [spec])]
    for spec in specs:
        parse_perturbation(spec)  # a malformed one is refused before any data is read
    split = load_split(args.data, args.split)
    if len(specs) > 1:
        return _evaluate_robustness(args, split, specs)
    report = evaluate(args.model, split.images, split.labels, tta=args.tta, perturbation=specs[0] if specs else None)
    report["split"] = args.split
    report["model"] = str(args.model or DEFAULT_MODEL)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{args.split}: n={report['n']}  accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}"
        f"  (perturbation: {report['perturbation']})"
    )
    cal = report["calibration"]
    print(
        f"calibration: expected calibration error {cal['expected_calibration_error']:.3f}; "
        f"{cal['uncertain_share']:.1%} of faces uncertain (top score < {cal['uncertain_below']:g}), "
        f"right on {_share(cal['accuracy_uncertain'])} of those and {_share(cal['accuracy_confident'])} of the rest"
    )
    print(f"{'emotion':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, m in report["per_class"].items():
        print(f"{name:<10}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10d}")
    print("confusion matrix (rows true, columns predicted):")
    for row in report["confusion_matrix"]:
        print(" ".join(f"{v:5d}" for v in row))
    return 0


def _evaluate_robustness(args: argparse.Namespace, split: FerSplit, specs: list[str]) -> int:
    """Clean accuracy, then each perturbation's and its change in points."""
    from emolens.evaluation import evaluate
    from emolens.shipped import DEFAULT_MODEL

    rows = [evaluate(args.model, split.images, split.labels, tta=args.tta, perturbation=s) for s in [None, *specs]]
    clean = rows[0]["accuracy"]
    for row in rows:
        row["change_points"] = round(100 * (row["accuracy"] - clean), 2)
    if args.json:
        print(json.dumps({"split": args.split, "model": str(args.model or DEFAULT_MODEL), "reports": rows}))
        return 0
    print(f"{args.split}: n={rows[0]['n']}  model {args.model or DEFAULT_MODEL}")
    print(f"{'perturbation':<22}{'accuracy':>10}{'macro-F1':>10}{'change':>9}{'ECE':>8}{'uncertain':>11}")
    for row in rows:
        cal = row["calibration"]
        print(
            f"{row['perturbation']:<22}{row['accuracy']:>10.4f}{row['macro_f1']:>10.4f}{row['change_points']:>+9.2f}"
            f"{cal['expected_calibration_error']:>8.3f}{cal['uncertain_share']:>11.1%}"
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from emolens.training.export import export_onnx, load_checkpoint

    if args.int8 and not args.data:
        raise EmolensError("--int8 needs --data: FER2013 training faces to calibrate and check the int8 model on")
    model, ckpt = (
        _export_source(args.checkpoint, args.data)
        if _is_onnx_model(args.checkpoint)
        else load_checkpoint(args.checkpoint)
    )
    extra = {"epoch": ckpt.get("epoch"), "val_accuracy": ckpt.get("metric", "")}
    tta = "none" if args.no_tta else args.tta
    if not args.int8:
        export_onnx(model, args.output, arch=ckpt["arch"], tta=tta, extra_metadata=extra)
        print(f"wrote {args.output} ({ckpt['arch']}, epoch {ckpt.get('epoch')}); ONNX checker and parity passed")
        return 0

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        export_onnx(model, float_path, arch=ckpt["arch"], tta=tta, extra_metadata=extra)
        _, checked = _quantize(float_path, args.output, args.data)
    print(f"wrote {args.output} ({ckpt['arch']}, epoch {ckpt.get('epoch')}, int8); float parity passed; {checked}")
    return 0


def _is_onnx_model(source: str) -> bool:
    from emolens.shipped import SHIPPED_MODELS

    return source in SHIPPED_MODELS or Path(source).suffix.lower() == ".onnx"


def _export_source(source: str, data: str | None) -> tuple[Any, dict]:
    """The network inside an emolens ONNX model (a shipped name or a file), to export again.

    Re-exporting gives a shipped model the current graph (views, standardisation, int8
    layout) with the same weights; its training metadata (epoch, selection accuracy) carries
    over.
    """
    from emolens.inference.classifier import EmotionClassifier
    from emolens.labels import EMOTIONS
    from emolens.shipped import resolve_model
    from emolens.training.data import load_split
    from emolens.training.models import create_model
    from emolens.training.train import init_from_onnx

    if not data:
        raise EmolensError(
            f"re-exporting {source} needs --data: FER2013 training faces to rebuild its BatchNorm layers on"
        )
    path = resolve_model(source)
    metadata = EmotionClassifier(path).metadata  # a clear error for a missing or broken file
    if "arch" not in metadata:
        raise EmolensError(f"{path}: no 'arch' in its metadata, so the network it holds is unknown")
    model = create_model(metadata["arch"], num_classes=len(EMOTIONS))
    init_from_onnx(model, str(path), load_split(data, "train"))
    return model.eval(), {
        "arch": metadata["arch"],
        "epoch": int(metadata.get("epoch") or 0),
        "metric": metadata.get("val_accuracy", ""),
    }


def _quantize(float_path: str | Path, output: str | Path, data: str) -> tuple[dict, str]:
    """Quantise with 512 FER2013 training faces and check on 2,048 others; what was measured, in words."""
    import numpy as np

    from emolens.training.data import load_split
    from emolens.training.quantize import quantize_int8

    train = load_split(data, "train")
    picked = np.random.default_rng(0).permutation(len(train))
    calibration = picked[: min(512, len(picked) // 2)]  # 512 faces; half of a small data set
    check = picked[len(calibration) : len(calibration) + 2048]
    measured = quantize_int8(float_path, output, train.images[calibration], train.images[check])
    return measured, (
        f"int8 keeps the float model's top emotion on {measured['top1_agreement']:.1%} of {len(check)} training"
        f" faces, and on {measured['cpu']} gives the reference path's on {measured['reference_agreement']:.2%}"
    )


def _cmd_quantize(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    import onnx

    from emolens.training.quantize import float_graph

    try:
        model = onnx.load(args.model)
    except FileNotFoundError:
        raise
    except Exception as exc:  # onnx raises protobuf's untyped errors
        raise EmolensError(f"{args.model}: not an ONNX model ({exc})") from exc
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        onnx.save(float_graph(model), str(float_path))
        _, checked = _quantize(float_path, args.output, args.data)
    print(f"wrote {args.output} (int8, 7-bit weights) from {args.model}; {checked}")
    return 0


def _add_detector_args(p: argparse.ArgumentParser, sources: str) -> None:
    """--detector and the detection sizes: ``sources`` is "photos" (predict), "video" (video,
    watch) or "both" (batch, serve: --detect-size for video, --photo-detect-size for photos)."""
    # the registries' names, written out so that --help imports neither OpenCV nor torch (a test pins them)
    p.add_argument("--detector", default="retinaface", choices=["retinaface", "haar"])
    size_help = {
        "photos": "detect on photos shrunk to this longer side (default 1280; smaller is faster, misses small faces)",
        "video": "detect on frames shrunk to this longer side (default 640): 320 is ~3x faster"
        " but may miss faces under ~40 px in a 640x480 frame",
        "both": "detect on video frames shrunk to this longer side (default 640; 320 is ~3x faster), and on"
        " photos too unless --photo-detect-size is given",
    }[sources]
    p.add_argument("--detect-size", type=int, metavar="PX", help=size_help)
    if sources == "both":
        p.add_argument(
            "--photo-detect-size",
            type=int,
            metavar="PX",
            help="detect on photos shrunk to this longer side (default: --detect-size if given, else 1280)",
        )


def _detect_size(args: argparse.Namespace, flag: str = "--detect-size") -> int | None:
    """A detection size flag's value, None when not given; refused under the smallest useful size."""
    from emolens.inference.detector import MIN_DETECT_SIDE

    side = getattr(args, flag[2:].replace("-", "_"), None)
    if side is not None and side < MIN_DETECT_SIDE:
        raise SettingsError(f"{flag} must be at least {MIN_DETECT_SIDE} pixels, got {side}")
    return side


def _detector_options(args: argparse.Namespace) -> dict:
    side = _detect_size(args)
    return {} if side is None else {"max_side": side}


def _recognizer(args: argparse.Namespace, *, spinning: bool = True) -> EmotionRecognizer:
    from emolens.inference.detector import create_detector, photo_detect_side
    from emolens.inference.recognizer import EmotionRecognizer
    from emolens.shipped import DEFAULT_MODEL, STREAM_MODEL

    model = args.model or (STREAM_MODEL if args.func in (_cmd_video, _cmd_watch) else DEFAULT_MODEL)
    detector = create_detector(args.detector, spinning=spinning, **_detector_options(args))
    photo_side = photo_detect_side(_detect_size(args, "--photo-detect-size"), _detect_size(args))
    return EmotionRecognizer(model, detector=detector, spinning=spinning, photo_detect_size=photo_side)


def _cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emolens.inference.annotate import draw_results
    from emolens.inference.images import read_image

    if args.annotate and Path(args.annotate).exists() and not Path(args.annotate).is_dir():
        raise EmolensError(f"--annotate {args.annotate}: a file is there; give a folder for the annotated copies")
    recognizer = _recognizer(args)
    results, failed = [], 0
    for path in _images_in(args.images):
        try:
            frame = read_image(path)
        except EmolensError as exc:
            print(f"emolens: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        faces = recognizer(frame)
        results.append(
            {"image": path, "width": frame.shape[1], "height": frame.shape[0], "faces": [f.to_dict() for f in faces]}
        )
        if args.annotate:
            out_dir = Path(args.annotate)
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_annotated(out_dir, Path(path), draw_results(frame, faces))
        if not args.json:
            summary = (
                ", ".join(
                    f"{f.emotion} {f.confidence:.0%}{' (uncertain)' if f.uncertain else ''} at {f.box.to_list()}"
                    for f in faces
                )
                or "no face found"
            )
            print(f"{path}: {summary}")
    if args.json:
        print(json.dumps(results))
    return 1 if failed else 0


def _images_in(arguments: list[str]) -> list[str]:
    """The photos to analyse: files as given, and the photos inside each folder (recursively, sorted)."""
    from pathlib import Path

    from emolens.batch import expand_inputs

    paths = []
    for argument in arguments:
        if Path(argument).is_dir():
            found = [f.path for f in expand_inputs([argument]) if f.kind == "image"]
            if not found:
                raise EmolensError(f"{argument}: a folder with no photos in it")
            paths += found
        else:
            paths.append(argument)
    return paths


def _write_annotated(out_dir: Path, source: Path, image: np.ndarray) -> None:
    """Write ``source``'s annotated copy into ``out_dir`` in the photo's own format where OpenCV
    writes it (a JPEG stays a JPEG of about its size, not a PNG several times larger), else PNG."""
    import cv2

    quality = {".jpg": cv2.IMWRITE_JPEG_QUALITY, ".jpeg": cv2.IMWRITE_JPEG_QUALITY, ".webp": cv2.IMWRITE_WEBP_QUALITY}
    suffix = source.suffix.lower()
    if suffix not in {*quality, ".png", ".bmp", ".tif", ".tiff"}:
        suffix = ".png"
    target = out_dir / f"{source.stem}_emolens{suffix}"
    if not cv2.imwrite(str(target), image, [quality[suffix], 92] if suffix in quality else []):
        raise EmolensError(f"{target}: could not be written")


def _cmd_video(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emolens.inference.video import process_video

    source = Path(args.input)
    if source.is_dir():
        raise EmolensError(f"{source} is a folder; give one video file")
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if args.every < 1 or args.full_every < 1:
        raise EmolensError(f"--every and --full-every must be 1 or more, got {args.every} and {args.full_every}")
    if args.output and Path(args.output).suffix.lower() != ".mp4":
        raise EmolensError(f"-o {args.output}: emolens writes H.264 MP4 files; name it .mp4")
    target = args.output or str(source.with_name(source.stem + "_emolens.mp4"))
    recognizer = _recognizer(args, spinning=False)  # the decoder and encoder threads need the cores between runs
    result = process_video(
        source,
        recognizer,
        target=target,
        csv_path=args.csv,
        json_path=args.json,
        plot_path=args.plot,
        every_nth=args.every,
        full_every=args.full_every,
        show_progress=True,
        keep_records=False,  # the files get every record; summary and plot need only per-track totals
    )
    summary = result.summary()
    short = len(summary["tracks"]) - summary["video"]["faces"]
    print(
        f"wrote {target}: {result.frames_processed} frames analysed, {len(result.cuts) + 1} shot(s), "
        f"{summary['video']['faces']} face track(s)" + (f" (+{short} too short to count)" if short else "")
    )
    for tid, track in summary["tracks"].items():
        print(
            f"  face {tid}: {track['dominant_emotion']} ({track['share'][track['dominant_emotion']]:.0%} of "
            f"{track['frames']} frames, {track['start']:.1f}-{track['end']:.1f} s)"
            + (" short" if track["short"] else "")
        )
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from emolens.batch import BatchSettings, run_batch

    if args.workers is not None and args.workers < 1:
        raise EmolensError(f"--workers must be 1 or more, got {args.workers}")
    if args.every < 1:
        raise EmolensError(f"--every must be 1 or more, got {args.every}")
    if args.ray and Path(args.ray).exists():
        raise EmolensError(f"--ray took {args.ray!r} for its ADDRESS; put --ray after the inputs, or write --ray=local")
    settings = BatchSettings(
        model=args.model,
        detector=args.detector,
        detect_size=_detect_size(args),
        photo_detect_size=_detect_size(args, "--photo-detect-size"),
        every_nth=args.every,
        annotate=args.annotate,
    )

    def report(outcome: FileOutcome) -> None:
        if outcome.status == "failed":
            tqdm.write(f"emolens: error: {outcome.error}", file=sys.stderr)

    result = run_batch(
        args.inputs,
        args.out,
        settings=settings,
        workers=args.workers,
        ray=args.ray,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
        on_file=report,
    )
    print(result.summary_line())
    return min(result.failed, 100)


def _cmd_watch(args: argparse.Namespace) -> int:
    from emolens._watch import run_watch

    # the reader, decoder and encoder threads need the cores between runs: no spinning
    return run_watch(args, _recognizer(args, spinning=False))


def _cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress
    import os

    from emolens.web import create_app
    from emolens.web.security import configured_token

    for flag, value in (("--workers", args.workers), ("--threads", args.threads)):
        if value < 1:
            raise SettingsError(f"{flag} must be 1 or more, got {value}")
    token = configured_token(args.token)
    settings = {
        "TOKEN": token,
        "MAX_WORKERS": args.workers,
        "JOB_RETENTION_DAYS": args.retention_days,
        "DETECTOR": args.detector,
        "DETECTOR_OPTIONS": _detector_options(args),
        "PHOTO_DETECT_SIZE": _detect_size(args, "--photo-detect-size"),
    }
    if args.data_dir:
        settings["DATA_DIR"] = args.data_dir
    if args.model:
        settings["IMAGE_MODEL"] = settings["STREAM_MODEL"] = args.model
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        logging.warning(
            "serving on %s without a token: anyone who can reach this port can use it (add --token)", args.host
        )
    if bool(args.certfile) != bool(args.keyfile):
        raise SettingsError("--certfile and --keyfile go together")
    scheme = "https" if args.certfile else "http"
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"emolens is serving at {scheme}://{shown}:{args.port}/" + (f"?token={token}" if token else ""), flush=True)
    if args.debug:
        ssl = (args.certfile, args.keyfile) if args.certfile else None
        # the reloader's watcher builds the app too: only the serving child reads cameras and runs jobs
        serving_child = os.environ.get("WERKZEUG_RUN_MAIN") == "true"
        settings["CAMERAS_AUTOSTART"] = serving_child
        if not serving_child:
            settings["MAX_WORKERS"] = 0
        create_app(settings).run(host=args.host, port=args.port, debug=True, threaded=True, ssl_context=ssl)
        return 0
    from emolens.web.server import run

    run(
        lambda: create_app(settings),
        host=args.host,
        port=args.port,
        threads=args.threads,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from emolens.diagnostics import format_info, system_info

    info = system_info(check=not args.no_check)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0 if info.get("self_check", {"ok": True})["ok"] else 1


class _VersionAction(argparse.Action):
    """``--version``: the same facts as ``emolens info``, then exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.exit(_cmd_info(argparse.Namespace(json=False, no_check=False)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emolens", description="Facial emotion recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=_VersionAction, help="what `emolens info` prints, then exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "info", help="version, CPU features, shipped models and a one-second check that they are exact on this CPU"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-check", action="store_true", help="skip the self-check")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train a model on FER2013 (needs the [train] extra)")
    p.add_argument("--data", required=True, help="fer2013.csv, an image-folder tree, or a zip of either")
    p.add_argument("--out", default="runs/train", help="output folder (checkpoints, metrics, plots)")
    p.add_argument(
        "--recipe",
        choices=["default", "compact", "origin"],
        default="default",
        help="'compact' = the compact model's first stage (vggface48_slim distilled from the accurate model,"
        " 60 epochs; then fine-tune with --robust, see its card); 'origin' = the origin's recipe for seed2020"
        " (Adam 5e-4, batch 64, 15 epochs)",
    )
    p.add_argument("--arch", help="model name, default vggface48 (an unknown name is refused with the known ones)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--mixup", type=float, metavar="ALPHA", help="mix pairs of faces and their labels, weights ~ Beta(ALPHA, ALPHA)"
    )
    p.add_argument("--init", metavar="MODEL", help="start from this ONNX model's weights (a shipped name or a file)")
    p.add_argument("--warmup-epochs", type=float, metavar="E", help="epochs of linear learning-rate warm-up (2)")
    p.add_argument("--robust", action="store_true", help="augment for poor cameras: noise, blur, JPEG, dark, 25 deg")
    p.add_argument(
        "--augment",
        nargs="+",
        metavar="KEY=VALUE",
        help="set augmentation options (after --robust), e.g. motion_p=0.3 ramp_p=0.3 motion_length=3,7",
    )
    p.add_argument(
        "--teacher", metavar="MODEL", help="distil from this model: a shipped model's name, an ONNX file or a .pt"
    )
    p.add_argument("--teacher-views", type=int, metavar="K", help="geometric views per face the teacher scores (8)")
    p.add_argument(
        "--teacher-online",
        action="store_true",
        default=None,
        help="score the teacher on every batch's own view (slower; a shipped name or a .pt teacher)",
    )
    p.add_argument("--distill-weight", type=float, metavar="W", help="share of the soft-target loss (0.75)")
    p.add_argument("--distill-temperature", type=float, metavar="T", help="softmax temperature of distillation (3)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--no-bf16", action="store_true", help="train in plain fp32")
    p.add_argument(
        "--select-on-mirror",
        action="store_true",
        help="pick best.pt by accuracy averaged with the mirrored face (what `export --tta flip` ships)",
    )
    p.add_argument("--snapshots", type=int, metavar="N", help="keep the weights of each of the last N epochs")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt with the settings it was started with")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs in this sitting (resume later)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class metrics and confusion matrix on a split")
    p.add_argument("--data", required=True, help="fer2013.csv, an image-folder tree, or a zip of either")
    p.add_argument("--split", default="test", choices=["train", "test", "private"])
    p.add_argument(
        "--model",
        help="a shipped model's name (compact, accurate), an ONNX file or a .pt checkpoint (default: accurate)",
    )
    p.add_argument("--tta", action="store_true", help="average with the mirrored face (shipped model: built in)")
    p.add_argument(
        "--perturb",
        nargs="+",
        metavar="SPEC",
        help="evaluate on perturbed copies: NAME[:STRENGTH] with NAME one of dark, noise, blur, jpeg, rotate,"
        " motion, ramp (noise:25 = sigma 25 grey levels, blur:1.5 = sigma 1.5 px, jpeg:12 = quality 12, rotate:15-25"
        " degrees, dark:2.2x0.45 = gamma 2.2 at 45%% exposure, motion:7 = smeared 7 px, ramp:0.6 = light falling"
        " by 60%% across the face), or 'suite' for the robustness targets' five",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("export", help="export a training checkpoint to ONNX and verify it (needs [train])")
    p.add_argument(
        "checkpoint",
        help="best.pt or last.pt from `emolens train`, or an emolens ONNX model (a file or a shipped"
        " name) to export again with its weights (needs --data)",
    )
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument(
        "--tta",
        choices=["none", "flip", "flip-zoom"],
        default="flip",
        help="views of each face averaged inside the graph: flip = with its mirror image,"
        " flip-zoom = also both zoomed 10%% (4x the compute)",
    )
    p.add_argument("--no-tta", action="store_true", help="same as --tta none")
    p.add_argument(
        "--int8", action="store_true", help="quantise to int8 (about 2x faster than float), exact on every CPU"
    )
    p.add_argument("--data", help="FER2013 (any form `train` reads): faces to calibrate and check --int8 on")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "quantize", help="(re)quantise an ONNX model, float or int8, to exact int8 and check it (needs [train])"
    )
    p.add_argument("model", help="an emolens ONNX model; an int8 one is first turned back into its float graph")
    p.add_argument("-o", "--output", required=True, help="int8 ONNX file to write")
    p.add_argument("--data", required=True, help="FER2013 (any form `train` reads): faces to calibrate and check on")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("predict", help="find faces in images and tell their emotions")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos, or folders of photos (searched recursively)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--annotate", metavar="DIR", help="write annotated copies into DIR")
    _add_detector_args(p, "photos")
    p.add_argument("--model", help="compact, accurate (default) or an ONNX file")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("video", help="annotate a video file; per-frame CSV/JSON and a timeline plot")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("-o", "--output", metavar="OUT.mp4", help="annotated H.264 MP4 (default: INPUT_emolens.mp4)")
    p.add_argument("--csv", metavar="F", help="per-frame results as CSV")
    p.add_argument("--json", metavar="F", help="per-frame results and per-face summary as JSON")
    p.add_argument("--plot", metavar="F", help="timeline of emotions per face as PNG")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every Nth frame")
    p.add_argument(
        "--full-every",
        type=int,
        default=10,
        metavar="N",
        help="search the whole frame for new faces every N frames, between only around known ones (1: always)",
    )
    _add_detector_args(p, "video")
    p.add_argument("--model", help="accurate (default), compact or an ONNX file")
    p.set_defaults(func=_cmd_video)

    p = sub.add_parser(
        "batch",
        help="analyse a whole archive of photos and videos into one table; resumable; processes or Ray",
        description="Analyse every image and video the inputs name. Per file: OUT/files/<id>/; for the whole"
        " batch: OUT/faces.parquet and OUT/faces.csv (one row per face per frame) and OUT/files.csv (one row per"
        " file). Running the same command again skips finished files and redoes unfinished ones. Exit status: 0"
        " when no file failed, else the number of failed files (at most 100); 1 also for an error before any file"
        " (an option, the model); 2 when pyarrow or Ray is missing; 130 when interrupted.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, folders (recursive), glob patterns ('**' recursive), or lists of paths (@list.txt or a .txt)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (made if missing)")
    p.add_argument("--model", help="accurate (default), compact or an ONNX file")
    _add_detector_args(p, "both")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every Nth frame of videos")
    p.add_argument("--annotate", action="store_true", help="also write annotated copies (PNG, H.264 MP4)")
    p.add_argument("--workers", type=int, metavar="N", help="processes, each with its own models (default: the cores)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray (needs emolens[ray]): a local Ray, or 'auto' / ray://HOST:PORT for a cluster whose"
        " nodes read the inputs at the same paths; --workers then sets the actors (default: the cluster's CPUs)",
    )
    p.add_argument("--retry-failed", action="store_true", help="analyse again files that failed in an earlier run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser(
        "watch",
        help="follow a camera or stream live (or a file at decoding speed): a line a second, records as they come",
        description="Analyse a live source until it ends, --duration passes or Ctrl-C (which ends it cleanly,"
        " exit 0). Streams and cameras are read on a thread that keeps only the newest frame, so a slow"
        " computer skips frames rather than falling behind, and a dropped stream is reopened with backoff"
        " (0.5 s doubling to 8 s). A video file is read whole, every frame, as fast as it decodes.",
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="rtsp://, rtsps://, http(s):// stream (MPEG-TS, HLS, MJPEG...), /dev/videoN or a camera index, or a file",
    )
    p.add_argument("--jsonl", metavar="F", help="append a JSON line per face per analysed frame (flushed each frame)")
    p.add_argument("--csv", metavar="F", help="append the same records as CSV rows")
    p.add_argument("--record", metavar="OUT.mp4", help="record the annotated frames (fragmented MP4: a crash keeps it)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every Nth frame received")
    p.add_argument(
        "--full-every", type=int, default=10, metavar="N", help="search the whole frame for new faces every N frames"
    )
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--timeout", type=float, default=10, metavar="S", help="seconds to wait for a stream to open or send data (10)"
    )
    _add_detector_args(p, "video")
    p.add_argument("--model", help="accurate (default), compact or an ONNX file")
    p.set_defaults(func=_cmd_watch)

    p = sub.add_parser("serve", help="run the web UI and REST API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", help="jobs database and files (default: the user's data directory)")
    p.add_argument("--token", help="require this token on every page, API call and WebSocket (or EMOLENS_TOKEN)")
    p.add_argument(
        "--model",
        help="one model for everything: accurate (default), compact or an ONNX file; pages and API"
        " requests may still choose a shipped model by name",
    )
    _add_detector_args(p, "both")
    p.add_argument("--workers", type=int, default=1, help="video jobs processed at once")
    p.add_argument("--retention-days", type=float, default=7, help="delete jobs and their files after this long")
    p.add_argument("--threads", type=int, default=32, help="request threads (each live client holds one)")
    p.add_argument("--certfile", help="TLS certificate (browsers allow the camera only on https or localhost)")
    p.add_argument("--keyfile", help="TLS private key")
    p.add_argument("--debug", action="store_true", help="Flask's development server with debugging")
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:
        if exc.name in {"pyarrow", "ray"}:
            print(f"emolens: {exc}", file=sys.stderr)
            return 2
        if exc.name in {"torch", "onnx", "matplotlib"}:
            print(
                f"emolens: {exc.name} is missing; install the training extra:"
                " pip install torch==2.13.0 'emolens[train]'",
                file=sys.stderr,
            )
            return 2
        raise
    except (EmolensError, FileNotFoundError) as exc:  # a bug's ValueError keeps its traceback
        print(f"emolens: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: each command has cleaned up on its way out
        print(f"emolens: {args.command} interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
