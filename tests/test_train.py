from __future__ import annotations

import json
import platform

import pytest
import torch

from emolens.training.config import TrainConfig
from emolens.training.train import train


def _config(data, out, **overrides) -> TrainConfig:
    values = dict(
        data=str(data),
        out=str(out),
        arch="vggface48_tiny",
        epochs=3,
        batch_size=16,
        lr=0.05,
        warmup_epochs=0.5,
        threads=1,
        bf16=False,
        seed=3,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_short_run_learns_and_writes_everything(tiny_folder, tmp_path):
    out = tmp_path / "run"
    best = train(_config(tiny_folder, out, epochs=6, augment=False, ema_decay=0.0))
    history = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert best["accuracy"] > 1 / 7 + 0.1  # the synthetic classes are separable
    for name in ("last.pt", "best.pt", "metrics.csv", "config.json", "curves.png", "confusion.png", "best_report.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "config.json").read_text())["arch"] == "vggface48_tiny"
    # the checkpoint layouts that resume and export read (older runs' files have them too)
    last, best_pt = (torch.load(out / name, weights_only=False) for name in ("last.pt", "best.pt"))
    assert list(last) == [
        "arch", "epoch", "model", "optimizer", "ema", "plateau", "best", "history", "config", "precision",
    ]  # fmt: skip
    assert list(best_pt) == ["arch", "epoch", "metric", "model", "config", "precision", "report"]


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_resume_continues_exactly(tiny_folder, tmp_path, mixup):
    full = tmp_path / "full"
    train(_config(tiny_folder, full, mixup=mixup))
    split = tmp_path / "split"
    train(_config(tiny_folder, split, mixup=mixup), stop_after=1)
    assert torch.load(split / "last.pt", weights_only=False)["epoch"] == 1
    # resumed with other settings on the command line: the saved ones win
    train(_config(tiny_folder, split, epochs=60, lr=0.5, arch="seed2020"), resume=True)
    a = torch.load(full / "last.pt", weights_only=False)
    b = torch.load(split / "last.pt", weights_only=False)
    assert b["epoch"] == 3 and [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], msg=key)


def test_resume_without_checkpoint_fails(tiny_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(_config(tiny_folder, tmp_path / "none"), resume=True)


def test_mixup_run_learns(tiny_folder, tmp_path):
    out = tmp_path / "mix"
    best = train(_config(tiny_folder, out, epochs=6, augment=False, ema_decay=0.0, mixup=0.4))
    history = json.loads((out / "metrics.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert best["accuracy"] > 1 / 7 + 0.1
    assert json.loads((out / "config.json").read_text())["mixup"] == 0.4


def test_select_on_mirror_and_snapshots(tiny_folder, tmp_path):
    out = tmp_path / "mirror"
    best = train(_config(tiny_folder, out, epochs=4, augment=False, select_on_mirror=True, snapshots=2))
    history = json.loads((out / "metrics.json").read_text())
    mirror = [h["val_acc_mirror"] for h in history]
    assert all(0 <= m <= 1 for m in mirror)
    # best.pt is the first epoch with the highest mirror-averaged accuracy, not the one-view one
    assert best["epoch"] == history[mirror.index(max(mirror))]["epoch"]
    assert torch.load(out / "best.pt", weights_only=False)["metric"] == max(mirror)
    snapshots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snapshots == ["epoch_003.pt", "epoch_004.pt"]
    last = torch.load(out / "snapshots" / "epoch_004.pt", weights_only=False)
    assert last["epoch"] == 4 and last["metric"] == mirror[-1]


def test_precision_is_recorded_and_resume_refuses_to_change_it(tiny_folder, tmp_path, monkeypatch):
    from emolens.training import train as train_module

    out = tmp_path / "bf16"
    monkeypatch.setattr(train_module, "cpu_supports_bf16", lambda: True)  # the machine the run started on
    train(_config(tiny_folder, out, bf16=True), stop_after=1)
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"
    assert torch.load(out / "last.pt", weights_only=False)["precision"] == "bf16"

    monkeypatch.setattr(train_module, "cpu_supports_bf16", lambda: False)  # resumed on a CPU without bf16
    with pytest.raises(ValueError, match="trained in bf16, but this machine would continue in fp32.*--no-bf16"):
        train(_config(tiny_folder, out, bf16=True), resume=True)
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 1  # nothing changed
    train(_config(tiny_folder, out, bf16=False), resume=True, stop_after=1)  # fp32 asked for: it goes on
    assert torch.load(out / "last.pt", weights_only=False)["precision"] == "fp32"
    assert TrainConfig.from_dict(json.loads((out / "config.json").read_text())).bf16 is False


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 feature checks")
def test_bf16_support_is_torch_s_answer():
    from emolens.training.train import cpu_supports_bf16

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert cpu_supports_bf16() == (native and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_training_plots_change_no_global_matplotlib_state(tmp_path):
    """Curves and confusion matrix on Figures of their own: no pyplot, no backend switch for the caller."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib, numpy as np; matplotlib.use('svg'); from pathlib import Path;"
        "from emolens.training.plots import plot_confusion, plot_curves;"
        "h = [dict(epoch=e, train_loss=1/e, val_loss=1.2/e, train_acc=0.5, val_acc=0.4, val_acc_mirror=0.41)"
        " for e in (1, 2)];"
        f"plot_curves(h, Path({str(tmp_path / 'c.png')!r}));"
        f"plot_confusion(np.eye(7, dtype=int) * 3, Path({str(tmp_path / 'm.png')!r}), title='t');"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend();"
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "c.png").read_bytes()[:4] == (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_channels_last_with_bf16_and_in_fp32_on_x86_cpus_only(monkeypatch):
    from emolens.training.train import uses_channels_last

    cpu = torch.device("cpu")
    assert uses_channels_last("bf16", cpu)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert uses_channels_last("fp32", cpu) == torch.backends.mkldnn.is_available()
    monkeypatch.setattr(platform, "machine", lambda: "arm64")  # not measured there: default layout
    assert not uses_channels_last("fp32", cpu)
    assert uses_channels_last("bf16", cpu)
