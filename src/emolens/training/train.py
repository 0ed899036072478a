"""The training loop: seeded, bf16 on CPU, atomic checkpoints every epoch, exact resume."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from emolens.errors import SettingsError
from emolens.labels import EMOTIONS
from emolens.metrics import classification_report
from emolens.training.augment import augment_appearance, augment_geometry
from emolens.training.config import TrainConfig
from emolens.training.data import FerSplit, load_split
from emolens.training.distill import OnlineTeacher, TeacherTargets, cached_teacher_targets, distillation_loss
from emolens.training.models import count_parameters, create_model

logger = logging.getLogger(__name__)

METRIC_FIELDS = [
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_macro_f1",
    "val_acc_mirror",
    "img_per_s",
    "epoch_s",
]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_supports_bf16() -> bool:
    """True when oneDNN runs bfloat16 here natively, the only case where it pays off.

    Asked of torch, not of /proc/cpuinfo: oneDNN must support bf16 on this CPU
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``), and on x86 it must be native
    (AVX512-BF16 or AMX) rather than emulated with plain AVX-512, which is slower than fp32.
    """
    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    if _is_x86():
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return True


def training_precision(cfg: TrainConfig, device: torch.device) -> str:
    """'bf16' (bfloat16 autocast + channels_last) or 'fp32': what this run computes in here."""
    return "bf16" if cfg.bf16 and (device.type == "cuda" or cpu_supports_bf16()) else "fp32"


def uses_channels_last(precision: str, device: torch.device) -> bool:
    """Whether this run keeps tensors channels-last: with bf16 everywhere, and in fp32 on x86 CPUs.

    With oneDNN's channels-last convolutions a training epoch ran 16% faster in fp32 held to
    AVX2 (README, "What each CPU class gets"), the CPUs that have no bf16. Elsewhere (ARM, plain
    fp32 on a GPU) the default layout stays, as nothing was measured there.
    """
    return precision == "bf16" or (device.type == "cpu" and _is_x86() and torch.backends.mkldnn.is_available())


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (n, 48, 48) -> float (n, 1, 48, 48) in 0-255, the models' input contract."""
    x = images.to(device).unsqueeze(1).float()
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 512,
    tta: bool = False,
    device: torch.device | None = None,
    autocast: bool = False,
) -> np.ndarray:
    """Logits for uint8 faces (n, 48, 48); with ``tta`` averaged with the mirrored faces."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(torch.from_numpy(images[start : start + batch_size]), device, False)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x).float()
            if tta:
                logits = (logits + model(torch.flip(x, dims=[3])).float()) / 2
        out.append(logits.cpu())
    return torch.cat(out).numpy()


def _report(logits: np.ndarray, labels: np.ndarray) -> dict:
    report = classification_report(labels, logits.argmax(1))
    report["loss"] = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    return report


def evaluate(model: nn.Module, split: FerSplit, *, device: torch.device, mirror: bool) -> tuple[dict, dict | None]:
    """``model``'s report on ``split`` and, with ``mirror``, the report of its logits averaged with the mirror's."""
    logits = predict_logits(model, split.images, device=device)
    if not mirror:
        return _report(logits, split.labels), None
    mirrored = predict_logits(model, np.ascontiguousarray(split.images[:, :, ::-1]), device=device)
    return _report(logits, split.labels), _report((logits + mirrored) / 2, split.labels)


def _lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    total = cfg.epochs * steps_per_epoch
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise SettingsError(f"unknown optimizer {cfg.optimizer!r}; choose sgd, adam or adamw")


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class TrainState:
    """What changes as a run trains; :meth:`checkpoint` puts all of it in ``last.pt``, so resume is exact.

    Attributes:
        model: the network being trained.
        optimizer: its optimizer.
        ema: the exponential moving average of ``model``'s weights, or None (``ema_decay`` 0).
        plateau: the LR scheduler of ``schedule="plateau"``, or None (cosine, set per step).
        epoch: the last finished epoch (0 before the first).
        best: the best validation report so far, with its ``epoch``.
        history: one metrics row per finished epoch (:data:`METRIC_FIELDS`).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    ema: nn.Module | None
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    epoch: int = 0
    best: dict = field(default_factory=lambda: {"accuracy": -1.0})
    history: list[dict] = field(default_factory=list)

    @property
    def scored(self) -> nn.Module:
        """The weights that are validated and kept in best.pt: the EMA's when there is one."""
        return self.ema if self.ema is not None else self.model

    def record(self, row: dict, selected: dict) -> bool:
        """Add a finished epoch's metrics row; True when its ``selected`` report is the new best."""
        self.epoch = row["epoch"]
        self.history.append(row)
        improved = selected["accuracy"] > self.best["accuracy"]
        if improved:
            self.best = {**selected, "epoch": self.epoch}
        return improved

    def checkpoint(self, cfg: TrainConfig, precision: str) -> dict:
        """The contents of ``last.pt``; :meth:`load_checkpoint` reads them back."""
        return {
            "arch": cfg.arch,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
            "best": self.best,
            "history": self.history,
            "config": cfg.to_dict(),
            "precision": precision,
        }

    def load_checkpoint(self, ckpt: dict) -> None:
        """Continue from a ``last.pt`` (older ones may lack ``ema`` or ``plateau``)."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        if self.plateau is not None and ckpt.get("plateau"):
            self.plateau.load_state_dict(ckpt["plateau"])
        self.epoch, self.best, self.history = ckpt["epoch"], ckpt["best"], ckpt["history"]


def train(cfg: TrainConfig, *, resume: bool = False, stop_after: int | None = None) -> dict:
    """Train ``cfg.arch`` on ``cfg.data``; write checkpoints, metrics and plots to ``cfg.out``.

    Returns the best validation report (by accuracy; with ``select_on_mirror``, of the face
    averaged with its mirror, as its key of that name says). With ``resume``, continues from
    ``out/last.pt`` at the epoch after the one it saved, with the same random streams, so
    an interrupted run ends with the same weights as an uninterrupted one. ``stop_after``
    ends this invocation after that many epochs (to split a long run into sittings).
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device()
    last_path = out / "last.pt"
    ckpt = None
    if resume:
        ckpt = _read_last_checkpoint(last_path, device)
        cfg = _resumed_config(cfg, ckpt)
    _configure_torch(cfg)
    precision = training_precision(cfg, device)
    if ckpt is not None:
        _check_resumed_precision(ckpt.get("precision"), precision, explicit_fp32=not cfg.bf16)
    fast = precision == "bf16"
    channels_last = uses_channels_last(precision, device)

    train_split = load_split(cfg.data, "train")
    val_split = load_split(cfg.data, cfg.val_split)
    logger.info(
        "train %d images %s; %s %d images", len(train_split), train_split.class_counts(), cfg.val_split, len(val_split)
    )
    state = build_state(cfg, device, train_split, channels_last=channels_last, ckpt=ckpt)
    if ckpt is not None:
        logger.info("resumed from %s at epoch %d", last_path, state.epoch + 1)
    cfg.save(out / "config.json", precision=precision)
    logger.info(
        "%s: %d parameters, device %s, precision %s", cfg.arch, count_parameters(state.model), device, precision
    )

    targets: TeacherTargets | OnlineTeacher | None = None
    if cfg.teacher:
        targets = (
            _online_teacher(cfg, train_split, fast) if cfg.teacher_online else _teacher_targets(cfg, train_split, out)
        )
    last_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, state.epoch + stop_after)
    for epoch in range(state.epoch + 1, last_epoch + 1):
        trained = train_one_epoch(
            state, cfg, epoch, train_split, targets=targets, device=device, fast=fast, channels_last=channels_last
        )
        report, mirror_report = evaluate(state.scored, val_split, device=device, mirror=cfg.select_on_mirror)
        if state.plateau is not None:
            state.plateau.step(report["loss"])
        row = _metrics_row(epoch, state.optimizer.param_groups[0]["lr"], trained, report, mirror_report)
        selected = mirror_report or report
        improved = state.record(row, selected)
        save_checkpoints(out, cfg, state, selected, improved=improved, precision=precision)
        _write_metrics(out, state.history)
        _log_epoch(cfg, row, improved)

    if last_epoch < cfg.epochs:
        logger.info("stopped after epoch %d of %d; continue with --resume", last_epoch, cfg.epochs)
    return _finish(cfg, out, state)


def _read_last_checkpoint(path: Path, device: torch.device) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return torch.load(path, map_location=device, weights_only=False)


def _resumed_config(cfg: TrainConfig, ckpt: dict) -> TrainConfig:
    """The settings the run was started with; only where the data lies and how many threads to use may differ."""
    saved = TrainConfig.from_dict(ckpt["config"])
    # bf16=False (--no-bf16) is this sitting's explicit choice of fp32 and is kept.
    return dataclasses.replace(saved, data=cfg.data, out=cfg.out, threads=cfg.threads, bf16=saved.bf16 and cfg.bf16)


def _configure_torch(cfg: TrainConfig) -> None:
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    # Denormal floats (tiny activations as weights decay) take x86 CPUs 10-100x longer per
    # operation (a depthwise net's evaluation: commit 63f5b4b).
    torch.set_flush_denormal(True)


def build_state(
    cfg: TrainConfig, device: torch.device, train_split: FerSplit, *, channels_last: bool, ckpt: dict | None = None
) -> TrainState:
    """The model (seeded with ``cfg.seed``), its EMA, optimizer and scheduler; from ``ckpt`` when resuming."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, num_classes=len(EMOTIONS))
    if cfg.init and ckpt is None:
        init_from_onnx(model, cfg.init, train_split)
    model = model.to(device)
    if channels_last:
        # torch's overloads of Module.to omit memory_format=, which it documents and accepts
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None
    optimizer = _make_optimizer(cfg, model)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
        if cfg.schedule == "plateau"
        else None
    )
    state = TrainState(model, optimizer, ema, plateau)
    if ckpt is not None:
        state.load_checkpoint(ckpt)
    return state


def train_one_epoch(
    state: TrainState,
    cfg: TrainConfig,
    epoch: int,
    train_split: FerSplit,
    *,
    targets: TeacherTargets | OnlineTeacher | None,
    device: torch.device,
    fast: bool,
    channels_last: bool,
) -> dict[str, float]:
    """One pass over ``train_split`` in an order drawn from ``epoch`` alone (so a resumed run draws the same).

    ``targets``: the teacher's views and probabilities, or the teacher itself, when distilling; ``fast``: bf16
    autocast; ``channels_last``: the batches' memory layout (:func:`uses_channels_last`). Returns
    ``train_loss``, ``train_acc``, ``img_per_s`` and ``epoch_s``.
    """
    steps_per_epoch = len(train_split) // cfg.batch_size  # drop the last partial batch (BatchNorm)
    images = torch.from_numpy(train_split.images)
    labels = torch.from_numpy(train_split.labels)
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout: same stream on resume
    order = torch.randperm(len(labels), generator=gen)
    state.model.train()
    t0 = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(
        range(steps_per_epoch),
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
        disable=None,
        mininterval=2,
    )
    for i in bar:
        step = (epoch - 1) * steps_per_epoch + i
        if state.plateau is None:
            for group in state.optimizer.param_groups:
                group["lr"] = _lr_at(cfg, step, steps_per_epoch)
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        x, y, soft = _draw_batch(cfg, images, labels, idx, targets, gen, device=device, channels_last=channels_last)
        mix = _mixup_pairs(len(y), cfg.mixup, gen, device) if cfg.mixup > 0 else None
        if mix is not None:
            lam, partner = mix
            x = lam * x + (1 - lam) * x[partner]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            logits = state.model(x).float()
            loss = _loss(cfg, logits, y, soft, mix)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        if state.ema is not None:
            _update_ema(state.ema, state.model, cfg.ema_decay, step)
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", img_s=f"{seen / elapsed:.0f}")
    bar.close()
    epoch_s = time.perf_counter() - t0
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "img_per_s": seen / epoch_s, "epoch_s": epoch_s}


def _draw_batch(
    cfg: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    idx: torch.Tensor,
    targets: TeacherTargets | OnlineTeacher | None,
    gen: torch.Generator,
    *,
    device: torch.device,
    channels_last: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The faces at ``idx`` as model input (0-255, augmented), their labels, and the teacher's probabilities.

    When distilling, the teacher answers for the face's geometric view (one it scored before
    training, or this one), and only the student's copy is then degraded in appearance.
    """
    soft = None
    if isinstance(targets, TeacherTargets):
        x, soft = targets.draw(idx, gen)  # already a geometric view
        soft = soft.to(device)
    else:
        x = images[idx].unsqueeze(1).float() / 255
        if cfg.augment:
            x = augment_geometry(x, cfg.augment_config, gen)
        if targets is not None:
            soft = targets((x * 255).to(device))
    if cfg.augment:
        x = augment_appearance(x, cfg.augment_config, gen)
    x = (x * 255).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, labels[idx].to(device), soft


def _loss(
    cfg: TrainConfig,
    logits: torch.Tensor,
    y: torch.Tensor,
    soft: torch.Tensor | None,
    mix: tuple[float, torch.Tensor] | None,
) -> torch.Tensor:
    """Cross-entropy on the labels (under mixup, on both faces' by their weight), blended with distillation."""
    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if mix is not None:
        lam, partner = mix
        other = F.cross_entropy(logits, y[partner], label_smoothing=cfg.label_smoothing)
        loss = lam * loss + (1 - lam) * other
    if soft is not None:
        w = cfg.distill_weight
        loss = (1 - w) * loss + w * distillation_loss(logits, soft, cfg.distill_temperature)
    return loss


def _metrics_row(epoch: int, lr: float, trained: dict, report: dict, mirror_report: dict | None) -> dict:
    """One line of metrics.csv, in :data:`METRIC_FIELDS` order."""
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": trained["train_loss"],
        "train_acc": trained["train_acc"],
        "val_loss": report["loss"],
        "val_acc": report["accuracy"],
        "val_macro_f1": report["macro_f1"],
        "val_acc_mirror": mirror_report["accuracy"] if mirror_report else None,
        "img_per_s": trained["img_per_s"],
        "epoch_s": trained["epoch_s"],
    }


def save_checkpoints(
    out: Path, cfg: TrainConfig, state: TrainState, selected: dict, *, improved: bool, precision: str
) -> None:
    """Write ``best.pt`` (when ``improved``), a snapshot (in the last ``cfg.snapshots`` epochs), then ``last.pt``.

    ``selected`` is the epoch's report that picks the best. ``last.pt`` goes last: a run
    stopped in between resumes at this epoch again and rewrites the others the same way.
    """
    scored = {
        "arch": cfg.arch,
        "epoch": state.epoch,
        "metric": selected["accuracy"],
        "model": state.scored.state_dict(),
        "config": cfg.to_dict(),
        "precision": precision,
        "report": selected,
    }
    if improved:
        _atomic_save(scored, out / "best.pt")
    if state.epoch > cfg.epochs - cfg.snapshots:
        (out / "snapshots").mkdir(exist_ok=True)
        _atomic_save(scored, out / "snapshots" / f"epoch_{state.epoch:03d}.pt")
    _atomic_save(state.checkpoint(cfg, precision), out / "last.pt")


def _log_epoch(cfg: TrainConfig, row: dict, improved: bool) -> None:
    mirror = row["val_acc_mirror"]
    logger.info(
        "epoch %d/%d  loss %.3f acc %.3f | %s acc %.4f macro-F1 %.4f%s%s | %.0f img/s, %.0f s",
        row["epoch"],
        cfg.epochs,
        row["train_loss"],
        row["train_acc"],
        cfg.val_split,
        row["val_acc"],
        row["val_macro_f1"],
        f" with mirror {mirror:.4f}" if mirror is not None else "",
        " *" if improved else "",
        row["img_per_s"],
        row["epoch_s"],
    )


def _finish(cfg: TrainConfig, out: Path, state: TrainState) -> dict:
    """Write best_report.json, the curves and the best epoch's confusion matrix; return the best report."""
    best = state.best
    best["select_on_mirror"] = cfg.select_on_mirror  # the run's own setting, also when resumed
    (out / "best_report.json").write_text(json.dumps(best, indent=2) + "\n")
    from emolens.training.plots import plot_confusion, plot_curves  # matplotlib only when finishing

    plot_curves(state.history, out / "curves.png")
    plot_confusion(
        np.array(best["confusion_matrix"]),
        out / "confusion.png",
        title=f"{cfg.arch} on {cfg.val_split}: accuracy {best['accuracy']:.4f}",
    )
    return best


def init_from_onnx(model: nn.Module, init: str, train_split: FerSplit) -> None:
    """Load a shipped model's or ONNX file's weights into ``model`` (``--init``), BatchNorms rebuilt on 2,048 faces."""
    from emolens.shipped import resolve_model
    from emolens.training.onnx_weights import load_onnx_weights

    path = resolve_model(init)
    if not path.is_file():
        raise FileNotFoundError(f"--init: no model file {path}")
    faces = train_split.images[np.random.default_rng(0).permutation(len(train_split))[:2048]]
    load_onnx_weights(model, path, faces)
    logger.info("weights from %s", path)


def _online_teacher(cfg: TrainConfig, train_split: FerSplit, fast: bool) -> OnlineTeacher:
    """The teacher network for ``--teacher-online``: a ``.pt`` checkpoint, or a shipped model's weights."""
    from emolens.shipped import SHIPPED_MODELS, model_card
    from emolens.training.export import load_checkpoint

    arch = (model_card(cfg.teacher) or {}).get("arch") if cfg.teacher in SHIPPED_MODELS else None
    if Path(cfg.teacher).suffix == ".pt":
        net, _ = load_checkpoint(cfg.teacher)
    elif arch:
        net = create_model(arch, num_classes=len(EMOTIONS))
        init_from_onnx(net, cfg.teacher, train_split)
    else:
        raise SettingsError(
            f"--teacher-online needs a shipped model's name or a .pt checkpoint, not {cfg.teacher!r}"
            " (an ONNX file does not say which network it holds)"
        )
    logger.info("teacher %s scores every batch (online)", cfg.teacher)
    return OnlineTeacher(net, fast=fast)


def _teacher_targets(cfg: TrainConfig, train_split: FerSplit, out: Path) -> TeacherTargets:
    from emolens.shipped import resolve_model

    teacher = cfg.teacher if Path(cfg.teacher).suffix == ".pt" else resolve_model(cfg.teacher)
    if not Path(teacher).is_file():
        raise FileNotFoundError(f"--teacher: no model file {teacher}")
    t0 = time.perf_counter()
    targets = cached_teacher_targets(
        out / "teacher_targets.npz",
        teacher,
        train_split.images,
        views=cfg.teacher_views,
        augment=cfg.augment_config,
        seed=cfg.seed,
    )
    agreement = float(np.mean(targets.probs[0].argmax(1) == train_split.labels))
    logger.info(
        "teacher %s: %d views ready in %.0f s; its top emotion matches the train label on %.1f%% of faces",
        teacher,
        cfg.teacher_views,
        time.perf_counter() - t0,
        100 * agreement,
    )
    return targets


def _check_resumed_precision(saved: str | None, now: str, *, explicit_fp32: bool) -> None:
    """Refuse to continue a run in another precision unless asked to (``--no-bf16``)."""
    if saved is None or saved == now:
        return
    if explicit_fp32:
        logger.warning("resuming a run trained in %s in fp32 (--no-bf16): its numerics change from here", saved)
        return
    raise SettingsError(
        f"--resume: the run trained in {saved}, but this machine would continue in {now}"
        f" (CPU without native bf16, or bf16 where it ran fp32); pass --no-bf16 to go on in fp32"
    )


def _mixup_pairs(n: int, alpha: float, gen: torch.Generator, device: torch.device) -> tuple[float, torch.Tensor]:
    """Mixup's weight for a batch and each face's partner (on ``device``), drawn from the epoch's generator.

    Mixing faces and their labels is meant for FER2013's noisy labels (human agreement is
    about 65%): a wrong label then pulls the model less than a confidently learned one.
    """
    # torch has no seeded Beta sampler; a seed drawn from the epoch's generator keeps resume exact.
    seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    return lam, torch.randperm(n, generator=gen).to(device)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))  # short warm-up so early EMA is not stuck at init
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.mul_(d).add_(m.detach(), alpha=1 - d)
        else:
            e.copy_(m)


def _write_metrics(out: Path, history: list[dict]) -> None:
    tmp = out / "metrics.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, out / "metrics.csv")
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(history, indent=1) + "\n")
    os.replace(tmp, out / "metrics.json")
