from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emolens.cli import main
from emolens.labels import EMOTIONS


@pytest.fixture
def trained(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(tiny_folder),
                "--out",
                str(out),
                "--arch",
                "vggface48_tiny",
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--threads",
                "1",
                "--no-bf16",
            ]
        )
        == 0
    )
    return out


def test_train_export_evaluate_json(trained, tiny_folder, tmp_path, capsys):
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(trained / "best.pt"), "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--data", str(tiny_folder), "--model", str(onnx_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 14
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["macro_f1"] <= 1
    assert set(report["per_class"]) == set(EMOTIONS)
    assert set(report["per_class"]["happy"]) >= {"precision", "recall", "f1"}

    # the checkpoint (face and mirror, as the export averages them) scores as its ONNX export
    assert main(["evaluate", "--data", str(tiny_folder), "--model", str(trained / "best.pt"), "--tta", "--json"]) == 0
    from_checkpoint = json.loads(capsys.readouterr().out)
    assert from_checkpoint["n"] == 14
    from emolens.evaluation import predict_probabilities
    from emolens.training.data import load_split

    faces = load_split(str(tiny_folder), "test").images
    np.testing.assert_allclose(
        predict_probabilities(trained / "best.pt", faces, tta=True), predict_probabilities(onnx_path, faces), atol=1e-4
    )


def test_export_again_from_an_onnx_model(trained, tiny_folder, tmp_path, capsys):
    from emolens.evaluation import predict_probabilities
    from emolens.training.data import load_split

    first, again = tmp_path / "m.onnx", tmp_path / "again.onnx"
    assert main(["export", str(trained / "best.pt"), "-o", str(first)]) == 0
    assert main(["export", str(first), "-o", str(again)]) == 1
    assert "needs --data" in capsys.readouterr().err and not again.exists()
    assert main(["export", str(first), "-o", str(again), "--data", str(tiny_folder)]) == 0
    faces = load_split(str(tiny_folder), "test").images
    # the same weights in a new file: the same scores, and the training record carried over
    np.testing.assert_allclose(predict_probabilities(again, faces), predict_probabilities(first, faces), atol=1e-4)
    from emolens.inference.classifier import EmotionClassifier

    old, new = EmotionClassifier(first).metadata, EmotionClassifier(again).metadata
    assert (new["arch"], new["epoch"], new["val_accuracy"]) == (old["arch"], old["epoch"], old["val_accuracy"])
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["export", str(tmp_path / "junk.onnx"), "-o", str(again), "--data", str(tiny_folder)]) == 1
    assert "junk.onnx" in capsys.readouterr().err


def test_export_int8(trained, tiny_folder, tmp_path, capsys, monkeypatch):
    from emolens.training import quantize

    assert main(["export", str(trained / "best.pt"), "-o", str(tmp_path / "q.onnx"), "--int8"]) == 1
    assert "--int8 needs --data" in capsys.readouterr().err
    # A 2-epoch model on 42 faces has near-uniform scores, so 8 bits, or the kernels' rounding
    # against the reference path's, may change its top emotion: both checks are pinned in
    # test_export; here, the command's wiring.
    monkeypatch.setattr(quantize, "MIN_TOP1_AGREEMENT", 0.0)
    monkeypatch.setattr(quantize, "MIN_REFERENCE_AGREEMENT", 0.0)
    argv = ["export", str(trained / "best.pt"), "-o", str(tmp_path / "q.onnx"), "--int8", "--data", str(tiny_folder)]
    assert main(argv) == 0
    assert "top emotion on" in capsys.readouterr().out and (tmp_path / "q.onnx").is_file()
    assert main(["evaluate", "--data", str(tiny_folder), "--model", str(tmp_path / "q.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 14
    # an int8 model requantised from its own float graph, as the shipped one was
    argv = ["quantize", str(tmp_path / "q.onnx"), "-o", str(tmp_path / "r.onnx"), "--data", str(tiny_folder)]
    assert main(argv) == 0
    assert "gives the reference path's on" in capsys.readouterr().out and (tmp_path / "r.onnx").is_file()
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert (
        main(["quantize", str(tmp_path / "junk.onnx"), "-o", str(tmp_path / "j.onnx"), "--data", str(tiny_folder)]) == 1
    )
    assert "not an ONNX model" in capsys.readouterr().err and not (tmp_path / "j.onnx").exists()


def test_evaluate_text_and_perturbation(trained, tiny_folder, capsys):
    assert main(["evaluate", "--data", str(tiny_folder), "--model", str(trained / "best.pt"), "--perturb", "dark"]) == 0
    out = capsys.readouterr().out
    assert "perturbation: dark" in out and "confusion matrix" in out
    assert "calibration: expected calibration error 0." in out and "of faces uncertain (top score < 0.5)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--data", "/nonexistent/fer2013.csv"], "data set not found: /nonexistent/fer2013.csv"),
        (["export", "/nonexistent/best.pt", "-o", "x.onnx"], "checkpoint not found"),
        (["train", "--data", "/nonexistent", "--out", "OUT"], "data set not found"),
        (["predict", "x.png", "--detect-size", "10"], "--detect-size must be at least 64 pixels, got 10"),
        (["video", "."], ". is a folder; give one video file"),
        (["train", "--data", ".", "--arch", "nope"], "unknown model 'nope'; choose from"),
        (["serve", "--workers", "0"], "--workers must be 1 or more, got 0"),
        (["serve", "--photo-detect-size", "10"], "--photo-detect-size must be at least 64 pixels, got 10"),
        (["evaluate", "--data", ".", "--perturb", "fog:3"], "unknown perturbation 'fog'"),
        (["train", "--data", ".", "--augment", "fog_p=0.3"], "--augment 'fog_p=0.3': expected KEY=VALUE"),
    ],
)
def test_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("emolens: error: ") and message in err and "Traceback" not in err


def test_predict_json_and_annotate(tiny_onnx, astronaut_bgr, tmp_path, capsys):
    import cv2

    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    assert main(["predict", str(photo), "--model", str(tiny_onnx), "--json", "--annotate", str(tmp_path / "ann")]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["image"] == str(photo) and (result["width"], result["height"]) == (512, 512)
    (face,) = result["faces"]
    assert set(face) == {"box", "detection_score", "emotion", "confidence", "uncertain", "scores"}
    assert len(face["box"]) == 4
    # the annotated copy keeps the photo's format (a JPEG had become a PNG 1.7x its size)
    annotated = tmp_path / "ann" / "astronaut_emolens.jpg"
    assert annotated.read_bytes()[:3] == b"\xff\xd8\xff" and annotated.stat().st_size < 2 * photo.stat().st_size
    assert cv2.imread(str(annotated)).shape == astronaut_bgr.shape


def test_predict_detect_size(tiny_onnx, astronaut_bgr, tmp_path, capsys, retinaface_input_sizes):
    """Detecting on a 4x smaller frame finds the same face, boxed in the input's pixels."""
    import cv2

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.resize(astronaut_bgr, (1024, 1024)))
    boxes = []
    for size in ("1024", "256"):
        assert main(["predict", str(photo), "--model", str(tiny_onnx), "--json", "--detect-size", size]) == 0
        (face,) = json.loads(capsys.readouterr().out)[0]["faces"]
        boxes.append(np.array(face["box"]))
    assert retinaface_input_sizes == [(1024, 1024), (256, 256)]
    assert np.abs(boxes[0] - boxes[1]).max() <= 0.08 * (boxes[0][2] - boxes[0][0])


def test_predict_detects_photos_at_1280_px_unless_told(tiny_onnx, phone_photo, tmp_path, capsys):
    """A phone's group photo: its three ~75 px faces are found at the default size, lost at 640."""
    import cv2

    photo = tmp_path / "group.jpg"
    cv2.imwrite(str(photo), phone_photo)
    found = []
    for extra in ([], ["--detect-size", "640"]):
        assert main(["predict", str(photo), "--model", str(tiny_onnx), "--json", *extra]) == 0
        found.append(len(json.loads(capsys.readouterr().out)[0]["faces"]))
    assert found == [3, 0]


def test_predict_bad_inputs(tiny_onnx, tmp_path, capsys):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    assert main(["predict", str(not_image), str(tmp_path / "missing.png"), "--model", str(tiny_onnx)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"emolens: error: {not_image}: not a readable image (unsupported format or corrupt data)",
        f"emolens: error: {tmp_path / 'missing.png'}: cannot read file (No such file or directory)",
    ]


def test_train_select_on_mirror_and_snapshots(tiny_folder, tmp_path, capsys):
    out = tmp_path / "mirror"
    args = ["train", "--data", str(tiny_folder), "--out", str(out), "--arch", "vggface48_tiny"]
    args += ["--epochs", "2", "--batch-size", "16", "--threads", "1", "--no-bf16"]
    assert main([*args, "--select-on-mirror", "--snapshots", "1"]) == 0
    assert "best test accuracy with the mirror" in capsys.readouterr().out
    assert [p.name for p in (out / "snapshots").iterdir()] == ["epoch_002.pt"]
    assert main([*args, "--snapshots", "-1"]) == 1
    assert "--snapshots must be 0 or more" in capsys.readouterr().err


def test_train_augment_options_reach_the_saved_settings(tiny_folder, tmp_path):
    out = tmp_path / "aug"
    args = ["train", "--data", str(tiny_folder), "--out", str(out), "--arch", "vggface48_tiny", "--epochs", "1"]
    args += ["--batch-size", "16", "--threads", "1", "--no-bf16", "--robust", "--augment", "motion_p=0.5", "ramp_p=0.4"]
    assert main(args) == 0
    saved = json.loads((out / "config.json").read_text())["augment_config"]
    assert (saved["motion_p"], saved["ramp_p"], saved["jpeg_p"]) == (0.5, 0.4, 0.25)  # on top of --robust


def test_info_and_version_name_the_cpu_models_and_self_check(capsys):
    from emolens import __version__
    from emolens._machine import cpu_features

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["emolens"] == __version__ and info["cpu"]["features"] == list(cpu_features())
    classifiers = {m["name"]: m for m in info["models"] if m["role"].startswith("emotion classifier")}
    assert set(classifiers) == {"compact", "accurate"} and info["self_check"]["ok"] is True
    assert classifiers["accurate"]["publictest_accuracy"] > 0.7 and classifiers["compact"]["publictest_accuracy"] > 0.6
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and f"emolens {__version__}" in out and "ONNX Runtime" in out
    assert "self-check (24 faces" in out and "ok: the same scores" in out


def test_info_warns_when_the_kernels_disagree_with_the_reference_path(capsys, monkeypatch):
    from conftest import RolledScores
    from emolens.inference import classifier

    fast = classifier.cpu_session  # the reference path stays right
    monkeypatch.setattr(classifier, "cpu_session", lambda path, **kw: RolledScores(fast(path, **kw)))
    assert main(["info"]) == 1
    out = capsys.readouterr().out
    assert "WARNING: on this CPU, on 24 faces, ONNX Runtime's reference path differs from" in out
    assert "emolens_vggface48_slim.onnx by up to" in out and "emolens_vggface48.onnx by up to" in out


def test_annotate_into_a_file_is_one_line(tiny_onnx, astronaut_bgr, tmp_path, capsys):
    import cv2

    photo, taken = tmp_path / "a.jpg", tmp_path / "taken.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    taken.write_bytes(b"already here")
    assert main(["predict", str(photo), "--annotate", str(taken), "--model", str(tiny_onnx)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emolens: error: --annotate") and "a file is there" in err and "Traceback" not in err
    assert taken.read_bytes() == b"already here"


def test_ctrl_c_during_video_is_one_line_and_exit_130(tiny_onnx, astronaut_bgr, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import interruptible
    from test_video import make_clip

    clip = make_clip(tmp_path / "long.mp4", astronaut_bgr, frames=3000, fps=30, audio=False)
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "emolens.cli", "video", str(clip), "-o", str(out), "--model", str(tiny_onnx)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    time.sleep(4)  # past start-up, into the frames
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "emolens: video interrupted" in err and "Traceback" not in err
    assert not out.exists()  # no half-written video left behind


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--every", "0"], "--every and --full-every must be 1 or more, got 0 and 10"),
        (["--full-every", "0"], "--every and --full-every must be 1 or more, got 1 and 0"),
        (["-o", "out.avi"], "-o out.avi: emolens writes H.264 MP4 files; name it .mp4"),
    ],
)
def test_video_arguments_are_named_in_errors(extra, message, tmp_path, capsys, monkeypatch, astronaut_bgr):
    from test_video import make_clip

    monkeypatch.chdir(tmp_path)
    clip = make_clip(tmp_path / "c.mp4", astronaut_bgr, frames=3)
    assert main(["video", str(clip), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emolens: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out.avi").exists()


def test_predict_takes_folders(tiny_onnx, astronaut_bgr, tmp_path, capsys):
    import cv2

    (tmp_path / "photos" / "more").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "photos" / "a.jpg"), astronaut_bgr)
    cv2.imwrite(str(tmp_path / "photos" / "more" / "b.png"), astronaut_bgr)
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    assert main(["predict", str(tmp_path / "photos"), "--model", str(tiny_onnx), "--json"]) == 0
    names = [Path(r["image"]).name for r in json.loads(capsys.readouterr().out)]
    assert names == ["a.jpg", "b.png"]  # both photos, sorted; the text file left alone
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--model", str(tiny_onnx)]) == 1
    assert "empty: a folder with no photos in it" in capsys.readouterr().err


def test_the_choices_offered_are_the_registries_names():
    """The parser writes the names out (so --help imports neither OpenCV nor torch); they must agree."""
    from emolens.cli import build_parser
    from emolens.inference.detector import DETECTORS
    from emolens.training.config import RECIPES
    from emolens.training.export import TTA_VIEWS

    choices: dict[str, set] = {}
    for sub in build_parser()._subparsers._group_actions[0].choices.values():  # noqa: SLF001 - argparse has no API
        for action in sub._actions:  # noqa: SLF001
            if action.choices is not None:
                choices.setdefault(action.option_strings[-1] if action.option_strings else action.dest, set()).update(
                    action.choices
                )
    assert choices["--detector"] == set(DETECTORS)
    assert choices["--recipe"] == set(RECIPES)
    assert choices["--tta"] == set(TTA_VIEWS)


def test_a_bug_is_not_passed_off_as_a_user_error(monkeypatch):
    """Only errors emolens raises on purpose become one line; any other ValueError keeps its traceback."""
    import emolens.cli as cli

    def broken(args):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(cli, "_cmd_predict", broken)
    with pytest.raises(ValueError, match="broadcast"):
        main(["predict", "x.png"])
