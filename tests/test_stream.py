"""StreamDetector: whole-frame passes now and then, face regions between, same faces as every-frame detection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolens.inference.detector import create_detector
from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.stream import StreamDetector
from emolens.inference.tracker import iou


class CountingDetector:
    """Wraps a detector and records the size of every image it is given; it has only
    ``detect``, so a stream gives it its regions one by one. Each runs alone through the wrapped
    detector at its own size, as the stream's regions do (a small whole frame would be enlarged)."""

    def __init__(self, detector):
        self.detector, self.sizes = detector, []

    def detect(self, image):
        self.sizes.append(image.shape[:2])
        return self.detector.detect_many([image])[0]


@pytest.fixture(scope="module")
def retinaface():
    return create_detector("retinaface")


def _clip(astronaut_bgr, n: int, *, second_from: int | None = None) -> list[np.ndarray]:
    """640x480 frames: the astronaut's face drifting right; from ``second_from`` on, its mirror image too."""
    face = cv2.resize(astronaut_bgr[0:256, 100:356], (160, 160))
    frames = []
    for i in range(n):
        frame = np.full((480, 640, 3), 100, np.uint8)
        x, y = 30 + 5 * i, 150 + (i % 4)
        frame[y : y + 160, x : x + 160] = face
        if second_from is not None and i >= second_from:
            frame[60:220, 440:600] = face[:, ::-1]
        frames.append(frame)
    return frames


def _whole(sizes) -> int:
    return sum(size == (480, 640) for size in sizes)


def test_same_faces_as_every_frame_detection_at_a_fraction_of_whole_frame_passes(retinaface, astronaut_bgr):
    frames = _clip(astronaut_bgr, 30)
    counting = CountingDetector(retinaface)
    stream = StreamDetector(counting, full_every=10)
    for frame in frames:
        expected, _ = retinaface.detect(frame)
        found, scores = stream.detect(frame)
        assert len(expected) == 1 and len(found) == 1 and scores[0] > 0.7
        assert iou(found, expected)[0, 0] > 0.7
    assert _whole(counting.sizes) == 3  # frames 1, 11, 21
    assert all(max(size) <= 128 for size in counting.sizes if size != (480, 640))


def test_a_new_face_is_found_within_full_every_frames(retinaface, astronaut_bgr):
    stream = StreamDetector(retinaface, full_every=5)
    counts = [len(stream.detect(frame)[0]) for frame in _clip(astronaut_bgr, 12, second_from=2)]
    assert counts[:2] == [1, 1]
    assert counts[5:] == [2] * 7  # the pass on frame index 5 finds it, and the regions keep it


def test_a_lost_face_sends_the_same_frame_to_a_whole_frame_pass(retinaface, astronaut_bgr):
    frames = _clip(astronaut_bgr, 3)
    counting = CountingDetector(retinaface)
    stream = StreamDetector(counting, full_every=10)
    stream.detect(frames[0])
    blank = np.full_like(frames[0], 100)
    found, _ = stream.detect(blank)
    assert len(found) == 0 and counting.sizes[-1] == (480, 640)  # looked everywhere, found nothing
    assert len(stream.detect(frames[2])[0]) == 1  # and nothing known: the next frame is a whole pass


def test_full_every_one_is_every_frame_detection_and_reset_forgets(retinaface, astronaut_bgr):
    counting = CountingDetector(retinaface)
    stream = StreamDetector(counting, full_every=1)
    for frame in _clip(astronaut_bgr, 4):
        stream.detect(frame)
    assert _whole(counting.sizes) == len(counting.sizes) == 4
    counting.sizes.clear()
    stream = StreamDetector(counting, full_every=10)
    frames = _clip(astronaut_bgr, 3)
    stream.detect(frames[0])
    stream.reset()
    stream.detect(frames[1])
    assert _whole(counting.sizes) == 2
    with pytest.raises(ValueError, match="full_every"):
        StreamDetector(counting, full_every=0)


def test_for_stream_shares_the_models_and_keeps_its_own_state(tiny_onnx, astronaut_bgr):
    recognizer = EmotionRecognizer(tiny_onnx)
    one, two = recognizer.for_stream(), recognizer.for_stream()
    assert one.classifier is recognizer.classifier and one.detector.detector is recognizer.detector
    assert one.detector is not two.detector and recognizer.detector is not one.detector
    frame = _clip(astronaut_bgr, 1)[0]
    a, b = one(frame), recognizer(frame)
    assert len(a) == len(b) == 1 and a[0].emotion == b[0].emotion


def test_a_smaller_frame_from_the_same_stream_is_searched_whole(retinaface, astronaut_bgr):
    """A camera that switches resolution: known faces outside the new frame count as lost."""
    stream = StreamDetector(retinaface, full_every=10)
    frame = _clip(astronaut_bgr, 1)[0]
    wide = np.full((480, 1280, 3), 100, np.uint8)
    wide[:, 640:] = frame  # the face at x > 640
    assert len(stream.detect(wide)[0]) == 1
    found, _ = stream.detect(np.full((240, 320, 3), 100, np.uint8))
    assert len(found) == 0
    assert len(stream.detect(frame)[0]) == 1


def test_regions_in_one_batched_run_find_what_one_run_each_finds(retinaface, astronaut_bgr):
    frame = _clip(astronaut_bgr, 1, second_from=0)[0]  # two faces
    # squares of different sizes, as at a frame's edges: the batch pads them to the largest
    crops = [
        cv2.resize(frame[100:260, 0:200], (128, 102)),
        cv2.resize(frame[0:280, 400:640], (110, 128)),
        np.full((128, 128, 3), 100, np.uint8),
    ]
    batched = retinaface.detect_many(crops)
    for crop, (boxes, scores) in zip(crops, batched):
        ((expected, expected_scores),) = retinaface.detect_many([crop])  # one run for this region alone
        assert len(boxes) == len(expected)
        if len(boxes):
            assert iou(boxes, expected)[0, 0] > 0.9
            np.testing.assert_allclose(scores, expected_scores, atol=0.02)
    assert [len(b) for b, _ in batched] == [1, 1, 0]


def test_a_stream_of_two_faces_is_the_same_batched_or_not(retinaface, astronaut_bgr):
    frames = _clip(astronaut_bgr, 12, second_from=0)
    batched, one_by_one = StreamDetector(retinaface), StreamDetector(CountingDetector(retinaface))
    for frame in frames:
        a, b = batched.detect(frame)[0], one_by_one.detect(frame)[0]
        assert len(a) == len(b) == 2
        assert np.all(iou(a, b).max(1) > 0.9)


def test_a_stream_recognizer_is_its_own_type_with_its_own_state(tiny_onnx, astronaut_bgr):
    from emolens.inference.recognizer import StreamRecognizer

    recognizer = EmotionRecognizer(tiny_onnx, detector="retinaface")
    one, two = recognizer.for_stream(), recognizer.for_stream()
    assert isinstance(one, StreamRecognizer) and one.recognizer is recognizer  # the models are shared
    assert one.classifier is recognizer.classifier and one.detector.detector is recognizer.detector
    frames = _clip(astronaut_bgr, 3)
    assert [len(one(f)) for f in frames] == [1, 1, 1]
    assert len(one.detector.known_faces) == 1 and len(two.detector.known_faces) == 0  # state is per stream
    one.reset()
    assert len(one.detector.known_faces) == 0
    assert len(recognizer(frames[0])) == 1  # the shared recognizer stays stateless


def test_detectors_return_typed_detections_and_a_users_detector_is_adapted(tiny_onnx, astronaut_bgr, retinaface):
    from emolens.inference.detector import Detections

    frame = _clip(astronaut_bgr, 1)[0]
    for detector in (retinaface, create_detector("haar")):
        found = detector.detect(frame)
        assert isinstance(found, Detections) and found.boxes.shape == (1, 4) and found.scores.shape == (1,)
        assert all(isinstance(d, Detections) for d in detector.detect_many([frame, frame]))

    class OnlyDetect:  # a user's own detector: detect() and nothing else
        def detect(self, image):
            return retinaface.detect(image)

    recognizer = EmotionRecognizer(tiny_onnx, detector=OnlyDetect())
    assert recognizer.detector.framing is None  # no measured framing: the plain square crop
    assert len(recognizer(frame)) == 1 and len(recognizer.for_stream()(frame)) == 1
    with pytest.raises(TypeError, match="a face detector needs a detect"):
        EmotionRecognizer(tiny_onnx, detector=object())


def test_the_anchor_cache_stays_bounded_over_many_region_sizes(retinaface):
    """A stream's face regions come in every size up to 128x128; a cache keyed by size grew for hours."""
    from emolens.inference.detector import _anchor_grid

    _anchor_grid.cache_clear()
    for h in range(40, 129, 2):
        for w in (96, 128):
            retinaface.detect(np.full((h, w, 3), 120, np.uint8))
    info = _anchor_grid.cache_info()
    assert info.misses > 64 and info.currsize <= 64
    grid = _anchor_grid(128, 128, retinaface._STRIDES, retinaface._SIZES)
    assert grid.shape == ((16 * 16 + 8 * 8 + 4 * 4) * 2, 4) and not grid.flags.writeable
