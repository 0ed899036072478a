from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolens.inference.cuts import CutDetector


@pytest.fixture(scope="module")
def scenes():
    """Two unrelated real pictures, 640x360 BGR, and a large one to pan over."""
    from skimage import data

    def bgr(rgb, size=(640, 360)):
        return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), size, interpolation=cv2.INTER_AREA)

    return bgr(data.astronaut()), bgr(data.coffee()), bgr(data.chelsea(), (1280, 720))


def cuts_in(frames) -> list[int]:
    detector = CutDetector()
    return [i for i, frame in enumerate(frames) if detector.update(frame)]


def exposure(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def test_a_hard_cut_is_found_on_its_first_frame(scenes):
    a, b, _ = scenes
    assert cuts_in([a] * 5 + [b] * 5) == [5]
    assert cuts_in([a] * 3 + [b] * 3 + [a] * 3) == [3, 6]  # a cut back to the first shot too


def test_the_same_face_at_the_same_place_in_another_scene_is_a_cut(scenes):
    """The case that fools a tracker: the box does not move, the picture around it does."""
    a, b, _ = scenes
    face = a[20:180, 250:390]
    other = b.copy()
    other[20:180, 250:390] = face[:, ::-1]
    assert cuts_in([a] * 4 + [other] * 4) == [4]


@pytest.mark.parametrize(
    "name",
    [
        "still",
        "exposure ramp",
        "exposure ramp while panning",
        "pan",
        "gray frames",
        "fade to black",
        "noise",
        "handheld shake",
        "zoom in",
        "camera flash",
        "someone passes in front",
    ],
)
def test_no_cut_without_a_shot_change(scenes, name):
    _, _, big = scenes
    rng = np.random.default_rng(0)

    def pan(i, step=12):  # ~1 s across a third of the picture at 30 fps
        return np.ascontiguousarray(big[100:460, step * i : step * i + 640])

    frames = {
        "still": lambda i: big[:360, :640],
        "exposure ramp": lambda i: exposure(big[:360, :640], 0.4 + 0.05 * i, 2 * i),  # gain 0.4 to 1.85
        "exposure ramp while panning": lambda i: exposure(pan(i), 1.5 - 0.04 * i, -i),
        "pan": pan,
        "gray frames": lambda i: cv2.cvtColor(pan(i), cv2.COLOR_BGR2GRAY),
        "fade to black": lambda i: exposure(pan(i), max(0.0, 1 - 0.05 * i), 0),
        "noise": lambda i: np.clip(big[:360, :640] + rng.normal(0, 8, (360, 640, 3)), 0, 255).astype(np.uint8),
        "handheld shake": lambda i: shifted(big, *rng.normal(0, 8, 2)),
        "zoom in": lambda i: cv2.resize(big[9 * i : 720 - 9 * i, 16 * i : 1280 - 16 * i], (640, 360)),
        "camera flash": lambda i: exposure(big[:360, :640], 1, 120 if i == 15 else 0),
        "someone passes in front": lambda i: passing(big[:360, :640], 640 - 40 * i),
    }[name]
    assert cuts_in([frames(i) for i in range(30)]) == []


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """A 640x360 view of ``image`` moved by (dx, dy) pixels from (300, 200)."""
    matrix = np.float32([[1, 0, -300 - dx], [0, 1, -200 - dy]])
    return cv2.warpAffine(image, matrix, (640, 360))


def passing(image: np.ndarray, x: int) -> np.ndarray:
    """``image`` with a dark coat covering it from column ``x`` to the right."""
    out = image.copy()
    out[:, max(0, x) :] = (30, 30, 40)
    return out


def test_a_cut_after_fast_motion_must_stand_out_from_it(scenes):
    """A whip pan differs a lot from frame to frame; only its start may read as a cut, not every frame."""
    _, _, big = scenes
    whip = [np.ascontiguousarray(big[100:460, 60 * i : 60 * i + 640]) for i in range(10)]
    assert len(cuts_in(whip)) <= 1


def test_first_frame_size_change_and_reset(scenes):
    a, b, _ = scenes
    detector = CutDetector()
    assert detector.update(a) is False  # nothing to compare with
    detector.reset()
    assert detector.update(b) is False  # forgotten: not compared with a
    assert detector.update(a) is True and detector.score > 0.6
    assert [detector.update(a) for _ in range(5)] == [False] * 5
    assert detector.update(cv2.resize(b, (320, 180))) is True  # another size (a stream's camera switch): compared
    with pytest.raises(ValueError, match="threshold"):
        CutDetector(threshold=0)
