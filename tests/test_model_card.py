from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_model_card.py"


def test_refresh_measures_the_file_again_and_keeps_the_training_record(tiny_onnx, tiny_folder, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    card = {
        "model": "m.onnx",
        "arch": "vggface48_tiny",
        "selected_epoch": 3,
        "epochs_run": 5,
        "publictest": {"accuracy": 0.99},  # stale: must be measured again
        "reproduce": ["emolens train ..."],
    }
    model.with_suffix(".card.json").write_text(json.dumps(card))
    training = "## Training\n\n- data: the training record\n\n## How we got here\n\nA measured note.\n\n"
    model.with_suffix(".card.md").write_text("# old title\n\nold results\n\n" + training + "## Reproduce\n\nold\n")
    command = "emolens export m.onnx --data fer -o m.onnx"
    argv = [sys.executable, str(SCRIPT), "--refresh", "--data", str(tiny_folder), "--model", str(model)]
    for _ in range(2):
        run = subprocess.run([*argv, "--export-command", command], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr[-2000:]

    refreshed = json.loads(model.with_suffix(".card.json").read_text())
    assert refreshed["publictest"]["n"] == 14 and refreshed["publictest"]["accuracy"] != 0.99
    assert {"noise:25", "blur:1.5", "jpeg:12", "dark:2.2x0.45", "rotate:15-25"} <= set(refreshed["robustness_accuracy"])
    assert 0 <= refreshed["reference_path"]["top1_agreement"] <= 1
    assert refreshed["reproduce"] == ["emolens train ...", command]  # named once, after the training
    md = model.with_suffix(".card.md").read_text()
    assert md.startswith("# Model card: m.onnx") and "old results" not in md
    assert training in md and "selected epoch 3 of 5" in md and md.count(command) == 1
    assert model.with_suffix(".confusion.png").stat().st_size > 0
