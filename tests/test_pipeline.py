"""StreamProcessor and run_stream: the per-frame step every source shares."""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time

import cv2
import numpy as np
import pytest

from emolens.inference.pipeline import Frame, StreamProcessor, run_stream
from emolens.inference.recognizer import EmotionRecognizer
from emolens.labels import EMOTIONS
from emolens.results import FaceRecord


@pytest.fixture(scope="module")
def recognizer(tiny_onnx):
    return EmotionRecognizer(tiny_onnx, detector="haar")


def frames(image: np.ndarray, n: int, *, start: int = 0) -> list[Frame]:
    return [Frame(image, (start + i) / 10, start + i, 1_700_000_000 + (start + i) / 10) for i in range(n)]


@pytest.fixture(scope="module")
def scene(astronaut_bgr):
    canvas = np.full((240, 352, 3), 90, np.uint8)
    canvas[40:200, 100:250] = astronaut_bgr[30:190, 150:300]
    return canvas


def test_every_nth_frame_is_analysed_and_the_others_carry_its_faces(recognizer, scene):
    processor = StreamProcessor(recognizer, every_nth=3)
    results = [processor.step(f) for f in frames(scene, 7)]
    assert [r.analysed for r in results] == [True, False, False, True, False, False, True]
    assert all(len(r.faces) == 1 and r.faces[0].track_id == 1 for r in results)
    assert [len(r.records) for r in results] == [1, 0, 0, 1, 0, 0, 1]
    first = results[0].records[0]
    assert first.frame == 0 and first.shot == 0 and "wall_time" not in first.to_dict()
    assert processor.frames_analysed == 3 and processor.frames_seen == 7


def test_live_records_carry_wall_time(recognizer, scene):
    result = StreamProcessor(recognizer, wall_time=True).step(frames(scene, 1, start=5)[0])
    assert result.records[0].wall_time == 1_700_000_000.5 and result.records[0].time == 0.5
    assert result.done_time >= result.frame.wall_time


def test_a_record_is_frozen_and_its_json_keeps_the_dict_shape(recognizer, scene):
    (record,) = StreamProcessor(recognizer, wall_time=True).step(frames(scene, 1)[0]).records
    d = record.to_dict()
    assert list(d) == [
        "time", "frame", "shot", "wall_time", "track_id", "box", "detection_score",
        "emotion", "confidence", "uncertain", "scores",
    ]  # fmt: skip
    assert d["scores"] == dict(zip(EMOTIONS, record.probabilities)) and d["confidence"] == max(record.probabilities)
    assert pickle.loads(pickle.dumps(record)) == record  # plain data: a record can go to another process
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.track_id = 2
    with pytest.warns(FutureWarning, match="record.emotion"):
        assert record["emotion"] == record.emotion  # dict-style access from before records were typed
    with pytest.raises(TypeError, match="neither a sequence nor a mapping"):
        "emotion" in record  # noqa: B015
    with pytest.raises(ValueError, match="one value per emotion"):
        FaceRecord(0.0, 0, 0, 1, record.box, None, record.probabilities[:6])


def test_a_cut_is_analysed_at_once_and_ends_the_tracks(recognizer, scene, astronaut_bgr):
    processor = StreamProcessor(recognizer, every_nth=5)
    before = [processor.step(f) for f in frames(scene, 3)]
    other = np.full_like(scene, 200)  # another shot: someone else, elsewhere, on a light wall
    other[60:220, 0:150] = cv2.flip(astronaut_bgr[30:190, 150:300], 1)
    after = processor.step(frames(other, 1, start=3)[0])
    assert after.cut and after.analysed and after.shot == 1
    assert before[-1].faces[0].track_id == 1 and after.faces and all(tf.track_id != 1 for tf in after.faces)
    processor.reset()
    again = processor.step(frames(scene, 1)[0])
    assert again.shot == 0 and again.faces[0].track_id == 1  # a new stream: ids from 1


def test_run_stream_stops_on_request_or_after_a_duration(recognizer, scene):
    processor = StreamProcessor(recognizer)
    assert run_stream(frames(scene, 4), processor) == 4
    stop = threading.Event()
    seen = []

    def on_result(result):
        seen.append(result.frame.index)
        if len(seen) == 2:
            stop.set()

    assert run_stream(frames(scene, 10), processor, stop=stop, on_result=on_result) == 2 and seen == [0, 1]

    def slow():
        for frame in frames(scene, 100):
            time.sleep(0.05)
            yield frame

    started = time.monotonic()
    assert 0 < run_stream(slow(), processor, duration=0.3) < 100
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("every_nth, full_every", [(0, 10), (1, 0)])
def test_bad_settings_are_named(recognizer, every_nth, full_every):
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        StreamProcessor(recognizer, every_nth=every_nth, full_every=full_every)
