from __future__ import annotations

import numpy as np
import pytest

from emolens.preprocess import Framing, crop_face, to_gray48, to_model_input


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


def test_framing_crops_the_square_it_describes():
    frame = np.arange(200 * 300, dtype=np.int64).reshape(200, 300) % 251
    frame = frame.astype(np.uint8)
    box = (100, 40, 148, 136)  # 48 wide, 96 tall
    # side 0.5 box heights = 48 px, centre moved 0.25 box heights (24 px) right and up
    crop = crop_face(frame, box, framing=Framing(side=0.5, dx=0.25, dy=-0.25))
    np.testing.assert_array_equal(crop, frame[40 : 40 + 48, 124 - 24 + 24 : 124 + 24 + 24][:, :48])
    assert crop.shape == (48, 48)


def test_framing_off_the_frame_repeats_its_edge_instead_of_squashing_the_face():
    frame = np.zeros((100, 100), np.uint8)
    frame[:, :50] = 200  # left half bright
    box = (0, 20, 40, 60)  # a face at the left edge: its square runs off the frame
    crop = crop_face(frame, box, framing=Framing(side=2.0))
    assert crop.shape == (48, 48)
    # the square is x -20..60 (80 px): the 20 px off the frame repeat its bright edge, so the
    # face keeps its size (70 of 80 px bright, the last 10 dark); clipping would have kept 60 px
    assert np.all(crop[:, :40] == 200) and np.all(crop[:, -5:] == 0)
    with pytest.raises(ValueError, match="outside the frame"):
        crop_face(frame, (300, 300, 340, 340), framing=Framing(side=1.0))


def test_a_scaled_framing_keeps_its_centre():
    framing = Framing(side=0.97, dx=-0.01, dy=0.02)
    cx, cy, side = framing.square((10, 20, 110, 140))
    scx, scy, sside = framing.scaled(1.1).square((10, 20, 110, 140))
    assert (scx, scy) == (cx, cy) and sside == pytest.approx(1.1 * side)
