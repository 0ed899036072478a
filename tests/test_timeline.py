"""The timeline plot's per-track series: exact for short tracks, bounded for long ones."""

import numpy as np
import pytest

from emolens.inference.timeline import TrackSeries


def _scores(i: int) -> np.ndarray:
    scores = np.full(7, 0.05)
    scores[i % 7] = 0.7
    return scores


def test_a_short_track_is_drawn_as_recorded():
    series = TrackSeries(points=4)
    for i in range(7):  # under 2 * points
        series.add(i * 0.04, _scores(i))
    times, scores = series.samples()
    assert times.tolist() == pytest.approx([i * 0.04 for i in range(7)])
    assert np.allclose(scores, [_scores(i) for i in range(7)])


def test_a_long_track_keeps_bounded_means_of_consecutive_records():
    """10,000 records in at most 2 * points samples, each the mean of one block of consecutive
    records (so nothing is dropped or counted twice), the last one partial."""
    series = TrackSeries(points=8)
    n = 10_000
    for i in range(n):
        series.add(float(i), _scores(i))
    times, scores = series.samples()
    per = series.per_sample
    assert len(times) <= 2 * series.points and per == 1024  # halved until 10,000 / per < 16
    full = n // per
    assert times[:full].tolist() == [k * per + (per - 1) / 2 for k in range(full)]
    assert times[full] == pytest.approx(np.mean(np.arange(full * per, n)))  # the partial last block
    expected = np.mean([_scores(i) for i in range(per)], axis=0)
    assert np.allclose(scores[0], expected) and np.allclose(scores.sum(axis=1), 1.0)


def test_points_must_be_positive():
    with pytest.raises(ValueError, match="points"):
        TrackSeries(points=0)


def test_series_json_has_every_track_in_columns(tmp_path):
    import json

    from emolens.inference.timeline import write_series
    from emolens.inference.video import VideoInfo, VideoResult
    from emolens.labels import EMOTIONS
    from emolens.results import FaceBox, FaceRecord

    happy = tuple(0.4 if e == "happy" else 0.1 for e in EMOTIONS)
    box = FaceBox(0, 0, 9, 9)
    records = [FaceRecord(t, int(t * 10), 0, tid, box, 0.9, happy) for tid in (1, 2) for t in (0.0, 0.1)]
    write_series(VideoResult(VideoInfo(64, 48, 10.0, 2, 0.2, 0, False), records, 2), tmp_path / "s.json")
    tracks = json.loads((tmp_path / "s.json").read_text())["tracks"]
    assert list(tracks) == ["1", "2"] and tracks["1"]["time"] == [0.0, 0.1]
    assert list(tracks["1"]["scores"]) == list(EMOTIONS) and tracks["2"]["scores"]["happy"] == [0.4, 0.4]
