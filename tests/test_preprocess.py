from __future__ import annotations

import numpy as np
import pytest

from emolens.preprocess import to_gray48, to_model_input


@pytest.mark.parametrize("shape", [(48, 48), (48, 48, 1), (100, 80, 3), (30, 30, 4), (2000, 1000)])
def test_to_gray48_shapes(shape):
    out = to_gray48(np.full(shape, 77, np.uint8))
    assert out.shape == (48, 48) and out.dtype == np.uint8
    assert (out == 77).all()


@pytest.mark.parametrize(
    "image, error",
    [
        (np.zeros((48, 48), np.float32), TypeError),
        (np.zeros((48, 48, 2), np.uint8), ValueError),
        (np.zeros((0, 48), np.uint8), ValueError),
        ([[1, 2]], TypeError),
    ],
)
def test_to_gray48_rejects(image, error):
    with pytest.raises(error):
        to_gray48(image)


def test_model_input_layout():
    faces = np.arange(2 * 48 * 48, dtype=np.uint32).reshape(2, 48, 48).astype(np.uint8)
    x = to_model_input(faces)
    assert x.shape == (2, 1, 48, 48) and x.dtype == np.float32
    assert x[1, 0, 5, 7] == faces[1, 5, 7]
    with pytest.raises(ValueError, match=r"\(n, 48, 48\)"):
        to_model_input(np.zeros((2, 32, 32), np.uint8))
