from __future__ import annotations

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
