from __future__ import annotations

import dataclasses

import torch

from emolens.training.augment import AugmentConfig, augment_batch


def test_range_shape_and_seeded():
    x = torch.rand(32, 1, 48, 48)
    a = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(1))
    b = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(1))
    c = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_all_off_is_identity():
    off = AugmentConfig(
        flip=0, max_rotate_deg=0, scale=(1, 1), max_shift=0, photometric_p=0, blur_sharpen_p=0, noise_p=0, erase_p=0
    )
    x = torch.rand(8, 1, 48, 48)
    torch.testing.assert_close(augment_batch(x, off, torch.Generator().manual_seed(0)), x, atol=1e-5, rtol=0)


def test_flip_only_mirrors():
    only_flip = AugmentConfig(
        flip=1.0, max_rotate_deg=0, scale=(1, 1), max_shift=0, photometric_p=0, blur_sharpen_p=0, noise_p=0, erase_p=0
    )
    x = torch.rand(4, 1, 48, 48)
    torch.testing.assert_close(
        augment_batch(x, only_flip, torch.Generator()), torch.flip(x, dims=[3]), atol=1e-5, rtol=0
    )


def test_robust_preset_blurs_like_opencv_and_compresses_like_a_jpeg_encoder():
    import cv2
    import numpy as np

    from emolens.training.augment import _defocus, _jpeg

    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    x = torch.from_numpy(faces).unsqueeze(1).float() / 255
    chosen = torch.tensor([True, False, True])
    blurred = _defocus(x, torch.tensor([1.0, 9.0, 2.0]), chosen)
    for i, sigma in ((0, 1.0), (2, 2.0)):
        expected = cv2.GaussianBlur(faces[i].astype(np.float32) / 255, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        np.testing.assert_allclose(blurred[i, 0].numpy(), expected, atol=2e-3)
    torch.testing.assert_close(blurred[1], x[1])  # not chosen: untouched
    compressed = _jpeg(x, torch.tensor([12, 12, 90]), chosen)
    expected = cv2.imdecode(cv2.imencode(".jpg", faces[0], [cv2.IMWRITE_JPEG_QUALITY, 12])[1], cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal((compressed[0, 0] * 255).round().numpy().astype(np.uint8), expected)
    torch.testing.assert_close(compressed[1], x[1])


def test_robust_preset_output_is_eight_bit_and_degraded():
    from emolens.training.augment import ROBUST, augment_appearance

    x = torch.rand(256, 1, 48, 48)
    out = augment_appearance(x, ROBUST, torch.Generator().manual_seed(0))
    unerased = augment_appearance(x, dataclasses.replace(ROBUST, erase_p=0.0), torch.Generator().manual_seed(0))
    torch.testing.assert_close(unerased * 255, (unerased * 255).round())  # 8 bits, as a camera's frame
    assert out.min() >= 0 and out.max() <= 1
    changed = (out - x).abs().flatten(1).mean(1) > 0.01
    assert changed.float().mean() > 0.5  # most faces degraded in some way


def test_geometry_then_appearance_is_augment_batch():
    from emolens.training.augment import augment_appearance, augment_geometry

    x = torch.rand(8, 1, 48, 48)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    torch.testing.assert_close(
        augment_batch(x, AugmentConfig(), g1),
        augment_appearance(augment_geometry(x, AugmentConfig(), g2), AugmentConfig(), g2),
    )


def test_motion_blur_smears_a_point_into_a_line_of_its_length_and_direction():
    import math

    from emolens.training.augment import _motion_blur

    x = torch.zeros(3, 1, 48, 48)
    x[:, 0, 24, 24] = 1.0
    out = _motion_blur(
        x, torch.tensor([9.0, 5.0, 7.0]), torch.tensor([0.0, math.pi / 2, 0.0]), torch.tensor([1, 1, 0]) > 0
    )
    torch.testing.assert_close(out[0, 0, 24, 20:29], torch.full((9,), 1 / 9))  # horizontal, 9 px
    assert out[0, 0, 23].abs().sum() < 1e-6 and out[0, 0, 24].sum() > 0.999
    torch.testing.assert_close(out[1, 0, 22:27, 24], torch.full((5,), 1 / 5))  # vertical, 5 px
    torch.testing.assert_close(out[2], x[2])  # not chosen: untouched
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(3))  # light is moved, not made


def test_light_ramp_darkens_one_side_and_keeps_the_other():
    from emolens.training.augment import _light_ramp

    x = torch.full((2, 1, 48, 48), 0.5)
    out = _light_ramp(x, torch.tensor([0.6, 0.6]), torch.tensor([0.0, 0.0]), torch.tensor([True, True]))
    left, right = out[0, 0, :, 0].mean(), out[0, 0, :, -1].mean()
    assert abs(left - 0.5) < 0.01 and abs(right - 0.2) < 0.01  # light falls left to right by 0.6 of it
    assert (out[0, 0, :, 1:] <= out[0, 0, :, :-1] + 1e-6).all()  # and never rises
    untouched = _light_ramp(x, torch.tensor([0.6, 0.6]), torch.tensor([0.0, 0.0]), torch.tensor([False, False]))
    torch.testing.assert_close(untouched, x)


def test_low_resolution_resamples_as_the_lowres_perturbation_does():
    import numpy as np

    from emolens.evaluation import perturb
    from emolens.training.augment import _low_resolution

    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    x = torch.from_numpy(faces.astype(np.float32) / 255).unsqueeze(1)
    out = _low_resolution(x, torch.tensor([16.0, 16.0, 16.0]), torch.tensor([True, True, False]))
    expected = perturb(faces[:2], "lowres:16").astype(np.float32)
    assert np.abs(out[:2, 0].numpy() * 255 - expected).max() <= 1.5  # float against two 8-bit roundings
    torch.testing.assert_close(out[2], x[2])  # not chosen: untouched


def test_augment_overrides_are_typed_and_bad_ones_named():
    import pytest

    from emolens.errors import SettingsError
    from emolens.training.augment import with_overrides

    cfg = with_overrides(AugmentConfig(), ["motion_p=0.3", "motion_length=3,7", "quantize=true"])
    assert (cfg.motion_p, cfg.motion_length, cfg.quantize) == (0.3, (3.0, 7.0), True)
    for item, named in (("nope=1", "nope"), ("motion_length=3", "motion_length"), ("motion_p", "KEY=VALUE")):
        with pytest.raises(SettingsError, match=named):
            with_overrides(AugmentConfig(), [item])
