from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from emolens.errors import SettingsError
from emolens.training import distill
from emolens.training import train as train_module
from emolens.training.augment import AugmentConfig
from emolens.training.config import TrainConfig
from emolens.training.distill import TeacherTargets, cached_teacher_targets, distillation_loss
from emolens.training.train import train


def test_distillation_loss_is_zero_when_the_student_agrees_and_grows_as_it_disagrees():
    teacher = torch.softmax(torch.tensor([[2.0, 0.5, -1.0, 0, 0, 0, 0.3]]), dim=1)
    agreeing = torch.log(teacher) + 5.0  # logits equal up to a constant
    assert distillation_loss(agreeing, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    slightly, far = agreeing.clone(), agreeing.clone()
    slightly[0, 0] -= 1.0
    far[0, 0] -= 4.0
    assert 0 < distillation_loss(slightly, teacher, 3.0) < distillation_loss(far, teacher, 3.0)


def test_teacher_targets_views_and_cache(tiny_onnx, tmp_path, monkeypatch):
    faces, _ = synthetic_faces(3)
    cache = tmp_path / "targets.npz"
    kwargs = dict(views=3, augment=AugmentConfig(), seed=0)
    targets = cached_teacher_targets(cache, tiny_onnx, faces, **kwargs)
    assert targets.views.shape == (3, *faces.shape) and targets.probs.shape == (3, len(faces), 7)
    np.testing.assert_array_equal(targets.views[0], faces)  # view 0 is the face itself
    assert not np.array_equal(targets.views[1], faces)
    np.testing.assert_allclose(targets.probs.sum(-1), 1.0, atol=1e-5)

    calls = []
    monkeypatch.setattr(distill, "make_teacher_targets", lambda *a, **k: calls.append(k) or targets)
    again = cached_teacher_targets(cache, tiny_onnx, faces, **kwargs)
    assert calls == [] and np.array_equal(again.probs, targets.probs)  # read back, not scored again
    cached_teacher_targets(cache, tiny_onnx, faces, **{**kwargs, "views": 2})
    assert len(calls) == 1  # other settings: scored again


def test_draw_takes_one_view_per_face_with_its_targets():
    views = np.stack([np.full((4, 48, 48), v * 10, np.uint8) for v in range(3)])
    probs = np.stack([np.tile(np.eye(7, dtype=np.float32)[v], (4, 1)) for v in range(3)])
    faces, soft = TeacherTargets(views, probs).draw(torch.tensor([0, 2, 3]), torch.Generator().manual_seed(0))
    view_of_face = (faces[:, 0, 0, 0] * 255 / 10).round().long()
    assert torch.equal(soft.argmax(1), view_of_face)  # each face's targets are its own view's


def test_distilled_run_learns_and_resumes_exactly(tiny_folder, tiny_onnx, tmp_path):
    def cfg(out, **kw):
        return TrainConfig(
            data=str(tiny_folder), out=str(out), arch="sepface48", epochs=3, batch_size=16, lr=0.05,
            warmup_epochs=0.5, threads=1, bf16=False, seed=3, teacher=str(tiny_onnx), teacher_views=2, **kw,
        )  # fmt: skip

    full = train(cfg(tmp_path / "full"))
    train(cfg(tmp_path / "split"), stop_after=1)
    resumed = train(cfg(tmp_path / "split"), resume=True)
    assert resumed["accuracy"] == full["accuracy"]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=False)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
    assert json.loads((tmp_path / "full" / "config.json").read_text())["teacher"] == str(tiny_onnx)


def test_a_missing_teacher_is_named(tiny_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="--teacher: no model file .*nope.onnx"):
        train(TrainConfig(data=str(tiny_folder), out=str(tmp_path / "r"), arch="vggface48_tiny", epochs=1,
                          threads=1, bf16=False, teacher=str(tmp_path / "nope.onnx")))  # fmt: skip


def test_an_online_teacher_scores_the_students_own_view_before_it_is_degraded(tiny_folder, tmp_path, monkeypatch):
    teacher_run = TrainConfig(data=str(tiny_folder), out=str(tmp_path / "teacher"), arch="vggface48_tiny",
                              epochs=1, batch_size=16, threads=1, bf16=False)  # fmt: skip
    train(teacher_run)
    seen: list[torch.Tensor] = []
    real_call = distill.OnlineTeacher.__call__
    monkeypatch.setattr(distill.OnlineTeacher, "__call__", lambda self, x: seen.append(x) or real_call(self, x))
    degraded: list[torch.Tensor] = []
    real_appearance = train_module.augment_appearance
    monkeypatch.setattr(
        train_module, "augment_appearance", lambda x, *a: degraded.append(x.clone()) or real_appearance(x, *a)
    )

    def cfg(out):
        return TrainConfig(data=str(tiny_folder), out=str(out), arch="sepface48", epochs=2, batch_size=16,
                           threads=1, bf16=False, seed=3, teacher=str(tmp_path / "teacher" / "best.pt"),
                           teacher_online=True)  # fmt: skip

    full = train(cfg(tmp_path / "full"))
    assert len(seen) == len(degraded) > 0
    for scored, student in zip(seen, degraded, strict=True):
        torch.testing.assert_close(scored, student * 255)  # the same geometric view, before degradation
    train(cfg(tmp_path / "split"), stop_after=1)
    assert train(cfg(tmp_path / "split"), resume=True)["accuracy"] == full["accuracy"]


def test_an_online_teacher_must_say_which_network_it_is(tiny_folder, tiny_onnx, tmp_path):
    with pytest.raises(SettingsError, match="--teacher-online needs a shipped model's name or a .pt"):
        train(TrainConfig(data=str(tiny_folder), out=str(tmp_path / "r"), arch="vggface48_tiny", epochs=1,
                          threads=1, bf16=False, teacher=str(tiny_onnx), teacher_online=True))  # fmt: skip
    with pytest.raises(SettingsError, match="--teacher-online needs a teacher"):
        TrainConfig(data=str(tiny_folder), arch="vggface48_tiny", teacher_online=True)
