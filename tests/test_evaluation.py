from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolens.evaluation import ROBUSTNESS_SUITE, Perturbation, parse_perturbation, perturb


@pytest.fixture
def faces() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = cv2.resize(rng.integers(0, 256, (6, 12, 12)).astype(np.uint8).transpose(1, 2, 0), (48, 48))
    return np.ascontiguousarray(smooth.transpose(2, 0, 1))


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("noise:25", Perturbation("noise", 25, 25)),
        ("rotate:15-25", Perturbation("rotate", 15, 25)),
        ("dark:2.2x0.45", Perturbation("dark", 2.2, 2.2, (0.45, 0.45))),
        ("dark:2.2", Perturbation("dark", 2.2, 2.2, (1.0, 1.0))),
        ("dark", Perturbation("dark", 1.8, 2.5, (0.4, 0.7))),
        ("jpeg", Perturbation("jpeg", 12, 12)),
        ("motion", Perturbation("motion", 7, 7)),
        ("ramp:0.3-0.8", Perturbation("ramp", 0.3, 0.8)),
        ("lowres", Perturbation("lowres", 16, 24)),
    ],
)
def test_specs_are_parsed_and_written_back(spec, expected):
    parsed = parse_perturbation(spec)
    assert parsed == expected
    assert parse_perturbation(parsed.spec) == parsed


@pytest.mark.parametrize(
    "spec, message",
    [
        ("fog", "unknown perturbation 'fog'; choose from dark, noise, blur, jpeg, rotate, motion, ramp, lowres"),
        ("ramp:1.5", "strength out of range"),
        ("lowres:2", "strength out of range"),
        ("lowres:64", "strength out of range"),
        ("noise:loud", "the strength must be a number or LOW-HIGH"),
        ("jpeg:0", "strength out of range"),
        ("blur:3-1", "strength out of range"),
    ],
)
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_perturbation(spec)


def test_each_perturbation_does_what_its_name_says(faces):
    blurred = perturb(faces, "blur:1.5")
    np.testing.assert_array_equal(blurred[0], cv2.GaussianBlur(faces[0], (0, 0), 1.5, borderType=cv2.BORDER_REPLICATE))
    jpeg = perturb(faces, "jpeg:12")
    expected = cv2.imdecode(cv2.imencode(".jpg", faces[1], [cv2.IMWRITE_JPEG_QUALITY, 12])[1], cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(jpeg[1], expected)
    noisy = perturb(faces, "noise:25").astype(float) - faces
    assert 20 < noisy.std() < 26  # clipping at 0 and 255 trims a little
    dark = perturb(faces, "dark:2.2x0.45")
    expected = np.clip(255 * 0.45 * (faces / 255) ** 2.2, 0, 255).round()
    np.testing.assert_array_equal(dark, expected.astype(np.uint8))
    rotated = perturb(faces, "rotate:20")
    assert not np.array_equal(rotated, faces) and rotated.shape == faces.shape
    np.testing.assert_array_equal(perturb(faces, "noise:25", seed=3), perturb(faces, "noise:25", seed=3))


@pytest.mark.parametrize("length", [7, 6])
def test_motion_blur_moves_light_along_a_line_centred_on_the_point(length):
    point = np.zeros((8, 48, 48), np.uint8)
    point[:, 24, 24] = 255
    smeared = perturb(point, f"motion:{length}").astype(float)
    for face in smeared:
        ys, xs = np.nonzero(face)
        weights = face[ys, xs]
        assert abs(weights.sum() - 255) < 6  # moved, not made or lost (but for rounding)
        assert np.allclose([(ys * weights).sum() / weights.sum(), (xs * weights).sum() / weights.sum()], 24, atol=0.05)
        reach = np.hypot(ys - 24, xs - 24).max()
        assert length / 2 - 0.5 <= reach <= length / 2 + 0.75  # half the length either side, and interpolation
        assert len(ys) < 20  # a line, not a disc


def test_ramp_lights_one_corner_fully_and_the_opposite_one_at_one_minus_depth():
    lit = perturb(np.full((16, 48, 48), 200, np.uint8), "ramp:0.6").astype(float)
    assert np.allclose(lit.max(axis=(1, 2)), 200, atol=1) and np.allclose(lit.min(axis=(1, 2)), 80, atol=1)
    assert lit.reshape(16, -1).argmax(1).tolist() != [lit[0].argmax()] * 16  # directions drawn per face


def test_lowres_keeps_a_face_at_full_size_and_drops_its_detail_when_small():
    rng = np.random.default_rng(1)
    detailed = rng.integers(0, 256, (4, 48, 48)).astype(np.uint8)
    np.testing.assert_array_equal(perturb(detailed, "lowres:48"), detailed)
    small = perturb(detailed, "lowres:16")
    expected = cv2.resize(
        cv2.resize(detailed[0], (16, 16), interpolation=cv2.INTER_AREA), (48, 48), interpolation=cv2.INTER_CUBIC
    )
    np.testing.assert_array_equal(small[0], expected)
    detail = [np.abs(cv2.Laplacian(f.astype(np.float32), cv2.CV_32F)).mean() for f in (detailed, small)]
    assert detail[1] < detail[0] / 4
    assert abs(small.mean() - detailed.mean()) < 2  # the light stays


def test_the_suite_is_the_robustness_targets():
    assert [parse_perturbation(s).name for s in ROBUSTNESS_SUITE] == ["noise", "blur", "jpeg", "dark", "rotate"]


def test_a_checkpoint_gives_probabilities_like_an_onnx_model(tmp_path, faces):
    """Distillation and calibration read these as probabilities, whichever kind of file the model is."""
    import torch

    from emolens.evaluation import predict_probabilities
    from emolens.training.models import create_model

    torch.manual_seed(0)
    checkpoint = tmp_path / "best.pt"
    torch.save({"arch": "vggface48_tiny", "model": create_model("vggface48_tiny").state_dict()}, checkpoint)
    scores = predict_probabilities(checkpoint, faces)
    assert scores.shape == (len(faces), 7) and (scores >= 0).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1, atol=1e-5)


def test_calibration_report_counts_uncertain_faces():
    from emolens.evaluation import calibration_report

    scores = np.array([[0.9, 0.1] + [0] * 5, [0.45, 0.4] + [0.03] * 5, [0.3, 0.6] + [0.02] * 5, [0.2, 0.3] + [0.1] * 5])
    report = calibration_report(scores, np.array([0, 1, 1, 1]))
    assert report["uncertain_share"] == 0.5  # rows 2 and 4 top out below one half
    assert report["accuracy_uncertain"] == 0.5 and report["accuracy_confident"] == 1.0
