from __future__ import annotations

import csv
import json
import threading
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from emolens.errors import Cancelled, VideoOpenError
from emolens.inference.recognizer import EmotionRecognizer
from emolens.inference.tracker import FaceTracker
from emolens.inference.video import Cut, VideoInfo, VideoResult, process_video
from emolens.labels import EMOTIONS
from emolens.results import FaceBox, FaceRecord, FaceResult


def make_clip(path, astronaut_bgr, *, frames=20, fps=10, audio=True, size=(352, 240)):
    """A clip of the astronaut's face moving left to right over a plain background, with a tone."""
    face = astronaut_bgr[30:190, 150:300]
    w, h = size
    images = []
    for i in range(frames):
        canvas = np.full((h, w, 3), 90, np.uint8)
        x = 10 + (i * 8) % (w - 170)  # left to right, then again
        canvas[40:200, x : x + 150] = face
        images.append(canvas)
    return write_clip(path, images, fps=fps, tone=audio)


def write_clip(path, frames, *, fps=10, tone=False):
    """An H.264 MP4 of BGR frames, with a 440 Hz AAC tone as long as the video if ``tone``."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = out.add_stream("aac", rate=16000) if tone else None
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            n = int(16000 * len(frames) / fps)
            wave = (0.2 * np.sin(np.arange(n) * 2 * np.pi * 440 / 16000)).astype(np.float32)[None, :]
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(wave[:, start : start + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut_bgr):
    return make_clip(tmp_path_factory.mktemp("video") / "moving.mp4", astronaut_bgr)


@pytest.fixture(scope="module")
def recognizer(tiny_onnx):
    return EmotionRecognizer(tiny_onnx, detector="haar")


def test_annotated_video_csv_json_plot(clip, recognizer, tmp_path):
    progress = []
    result = process_video(
        clip,
        recognizer,
        target=tmp_path / "out.mp4",
        csv_path=tmp_path / "f.csv",
        json_path=tmp_path / "f.json",
        plot_path=tmp_path / "t.png",
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert progress[-1][0] == 20
    with av.open(str(tmp_path / "out.mp4")) as out:
        stream = out.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        decoded = [f.to_ndarray(format="bgr24") for f in out.decode(stream)]
        assert len(decoded) == 20
        assert float(out.duration / 1e6) == pytest.approx(2.0, abs=0.15)
        assert len(out.streams.audio) == 1  # the sound is kept
    # Inside the face, away from the drawn box and label, the picture is the source's, colours
    # included (a channel swap or a wrong YUV matrix fails this).
    with av.open(str(clip)) as src:
        first = next(src.decode(video=0)).to_ndarray(format="bgr24")

    def colour(image):
        return image[110:170, 50:120].reshape(-1, 3).mean(axis=0)

    assert np.abs(colour(decoded[0]) - colour(first)).max() < 3
    # one face, tracked with one id through the whole clip
    assert {r.track_id for r in result.records} == {1} and len(result.records) == 20
    rows = list(csv.DictReader((tmp_path / "f.csv").read_text().splitlines()))
    assert len(rows) == 20 and set(EMOTIONS) <= set(rows[0]) and rows[0]["track_id"] == "1"
    assert all(float(row["detection_score"]) > 0 for row in rows)  # the Haar cascade's weight, per frame
    text = (tmp_path / "f.json").read_text()  # written a record at a time, as json.dumps writes it whole
    assert text == json.dumps({"summary": result.summary(), "frames": [r.to_dict() for r in result.records]}) + "\n"
    data = json.loads(text)
    track = data["summary"]["tracks"]["1"]
    assert track["frames"] == 20 and sum(track["share"].values()) == pytest.approx(1)
    assert track["dominant_emotion"] in EMOTIONS
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*partial*"))


def test_every_nth(clip, recognizer):
    result = process_video(clip, recognizer, every_nth=4)
    assert result.frames_processed == 5 and [r.frame for r in result.records] == [0, 4, 8, 12, 16]


def test_cancel_leaves_nothing(clip, recognizer, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        process_video(clip, recognizer, target=tmp_path / "out.mp4", csv_path=tmp_path / "f.csv", cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_encoder_failure_reaches_the_caller(clip, recognizer, tmp_path, monkeypatch):
    from emolens.inference import video

    def broken(self, image, pts):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(video._AnnotatedWriter, "_to_frame", broken)  # fails on the encoder thread
    with pytest.raises(RuntimeError, match="encoder exploded"):
        process_video(clip, recognizer, target=tmp_path / "out.mp4", csv_path=tmp_path / "f.csv")
    assert list(tmp_path.iterdir()) == []


def test_video_info(clip):
    info = VideoInfo.from_path(clip)
    assert (info.width, info.height, info.frames, info.has_audio) == (352, 240, 20, True)
    assert info.fps == pytest.approx(10)


def test_a_4k_video_is_annotated_at_1080p(tmp_path, astronaut_bgr, recognizer):
    """The web server takes 4K uploads and writes their annotated copy at 1080p."""
    big = make_clip(tmp_path / "4k.mp4", astronaut_bgr, frames=3, size=(3840, 2160), audio=False)
    result = process_video(big, recognizer, target=tmp_path / "out.mp4", max_output_pixels=1920 * 1080)
    assert result.info.width == 3840 and result.frames_processed == 3
    with av.open(str(tmp_path / "out.mp4")) as out:
        stream = out.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1920, 1080)
        assert len(list(out.decode(stream))) == 3


def test_bad_videos(tmp_path, clip, recognizer):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoOpenError, match="not a readable video"):
        process_video(junk, recognizer)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[:600])
    with pytest.raises(VideoOpenError):
        process_video(truncated, recognizer, target=tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((10, 10), np.uint8))
    audio_only = tmp_path / "sound.m4a"
    with av.open(str(audio_only), "w") as out:
        s = out.add_stream("aac", rate=16000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        f.sample_rate = 16000
        for p in [*s.encode(f), *s.encode()]:
            out.mux(p)
    with pytest.raises(VideoOpenError, match="no video stream"):
        process_video(audio_only, recognizer)


def _face(x, p_happy):
    scores = {e: (1 - p_happy) / 6 for e in EMOTIONS}
    scores["happy"] = p_happy
    return FaceResult(FaceBox(x, 10, x + 50, 60), scores)


def test_tracker_ids_and_smoothing():
    tracker = FaceTracker(smoothing=0.5)
    a = tracker.update([_face(0, 0.9), _face(200, 0.9)])
    b = tracker.update([_face(205, 0.1), _face(4, 0.9)])  # order swapped, both moved a little
    assert [t.track_id for t in a] == [1, 2]
    assert [t.track_id for t in b] == [2, 1]
    assert b[0].face.scores["happy"] == pytest.approx(0.5)  # smoothed: (0.9 + 0.1) / 2
    c = tracker.update([_face(400, 0.9)])  # a new face far away
    assert c[0].track_id == 3


def test_cli_video(clip, tiny_onnx, tmp_path, capsys, monkeypatch):
    from emolens.cli import main
    from emolens.inference import classifier

    spinning = []  # the decoder and encoder threads get the cores between runs: no spinning
    real = classifier.cpu_session
    monkeypatch.setattr(
        classifier, "cpu_session", lambda path, **kw: spinning.append(kw["spinning"]) or real(path, **kw)
    )

    out, table = tmp_path / "out.mp4", tmp_path / "frames.csv"
    args = ["video", str(clip), "-o", str(out), "--csv", str(table), "--model", str(tiny_onnx), "--detector", "haar"]
    assert main(args) == 0
    assert "1 shot(s), 1 face track(s)\n" in capsys.readouterr().out
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 20
    with table.open() as rows:
        assert len(list(csv.DictReader(rows))) > 0
    assert spinning == [False]
    capsys.readouterr()
    assert main(["video", str(tmp_path / "missing.mp4"), "--model", str(tiny_onnx)]) == 1
    assert "missing.mp4" in capsys.readouterr().err


def test_stream_detection_finds_the_faces_that_every_frame_detection_finds(clip, tiny_onnx):
    from emolens.inference.tracker import iou

    recognizer = EmotionRecognizer(tiny_onnx, detector="retinaface")
    whole = process_video(clip, recognizer, full_every=1).records
    stream = process_video(clip, recognizer).records  # the whole frame every 10th, regions between
    assert len(whole) == 20 and [r.frame for r in stream] == [r.frame for r in whole]
    assert {r.track_id for r in stream} == {r.track_id for r in whole}
    for a, b in zip(stream, whole):
        assert iou(np.array(a.box.to_list()), np.array(b.box.to_list()))[0, 0] > 0.7, a.frame


@pytest.fixture(scope="module")
def edited_clip(tmp_path_factory, astronaut_bgr):
    return make_edited_clip(tmp_path_factory.mktemp("edited") / "edited.mp4", astronaut_bgr)


def make_edited_clip(path, astronaut_bgr):
    """An edited clip: 10 frames of the astronaut in his photo, a hard cut to 10 frames of
    another picture with his mirrored, warmer face at the same place, and a cut back for 2 frames."""
    from skimage import data

    face = astronaut_bgr[30:190, 150:300]
    first = cv2.resize(astronaut_bgr, (352, 240), interpolation=cv2.INTER_AREA)
    first[40:200, 100:250] = face
    second = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (352, 240), interpolation=cv2.INTER_AREA)
    second[40:200, 100:250] = np.clip(face[:, ::-1] * [0.85, 1.0, 1.15], 0, 255).astype(np.uint8)
    return write_clip(path, [first] * 10 + [second] * 10 + [first] * 2)


@pytest.mark.parametrize("every_nth", [1, 3])
def test_no_track_spans_a_scene_cut(edited_clip, recognizer, tmp_path, every_nth):
    """Issue 19: one id was an audience member, then the performer, then another person."""
    result = process_video(edited_clip, recognizer, every_nth=every_nth, json_path=tmp_path / "f.json")
    assert result.cuts == [Cut(frame=10, time=1.0), Cut(frame=20, time=2.0)]
    shots = {tid: {r.shot for r in rows} for tid, rows in result.by_track().items()}
    assert sorted(shots.values(), key=min) == [{0}, {1}, {2}]  # one track per shot, none across
    assert {r.frame for r in result.records} >= {10, 20}  # each shot's first frame, even between Nth ones
    summary = json.loads((tmp_path / "f.json").read_text())["summary"]
    assert summary["video"]["cuts"] == [{"frame": 10, "time": 1.0}, {"frame": 20, "time": 2.0}]
    tracks = sorted(summary["tracks"].values(), key=lambda t: t["shot"])
    assert [t["short"] for t in tracks] == [False, False, True]  # the 2-frame shot's face is too short
    assert summary["video"]["faces"] == 2
    assert len(result.by_track()) == 3  # the short track keeps its per-frame records


def test_no_cut_in_a_moving_clip_with_an_exposure_ramp(tmp_path, astronaut_bgr, recognizer):
    face = astronaut_bgr[30:190, 150:300]
    frames = []
    for i in range(30):
        canvas = np.full((240, 352, 3), 90, np.uint8)
        canvas[:, :, 1] = np.linspace(40, 160, 352, dtype=np.uint8)  # some background structure
        x = 10 + 6 * i % 180
        canvas[40:200, x : x + 150] = face
        frames.append(np.clip(canvas * (0.6 + 0.025 * i), 0, 255).astype(np.uint8))  # the camera opens up
    result = process_video(write_clip(tmp_path / "ramp.mp4", frames), recognizer)
    assert result.cuts == [] and {r.shot for r in result.records} == {0}
    assert {r.track_id for r in result.records} == {1} and len(result.records) == 30


def test_short_tracks_are_marked_not_dropped(clip):
    info = VideoInfo.from_path(clip)

    def rows(tid, times):
        happy = tuple(0.4 if e == "happy" else 0.1 for e in EMOTIONS)
        return [FaceRecord(t, int(10 * t), 0, tid, FaceBox(0, 0, 10, 10), None, happy) for t in times]

    result = VideoResult(info, rows(1, [0.0, 0.1, 0.2, 0.6]) + rows(2, [0.0, 0.1]) + rows(3, [0.0, 0.1, 0.2]), 7)
    tracks = result.summary()["tracks"]
    assert {tid: t["short"] for tid, t in tracks.items()} == {"1": False, "2": True, "3": True}
    assert result.summary()["video"]["faces"] == 1 and len(result.records) == 9


def test_tracker_end_all_and_reset():
    tracker = FaceTracker()
    tracker.update([_face(0, 0.9)])
    tracker.end_all()  # a cut: the same place is someone else now
    assert [t.track_id for t in tracker.update([_face(0, 0.9)])] == [2]  # a new id, never a reused one
    tracker.reset()
    assert [t.track_id for t in tracker.update([_face(0, 0.9)])] == [1]


def test_timeline_panels_share_one_time_axis(edited_clip, recognizer, tmp_path):
    """Issue 19: stacked panels had their own time axes, so a moment did not line up across faces."""
    from emolens.inference.timeline import timeline_figure

    result = process_video(edited_clip, recognizer)
    axes = timeline_figure(result).axes[:3]
    assert len({ax.get_xlim() for ax in axes}) == 1 and axes[0].get_xlim()[0] == 0
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    assert [ax.get_xlabel() for ax in axes][:-1] == ["", ""] and axes[-1].get_xlabel().startswith("time (s)")
    assert sum("short" in ax.get_ylabel() for ax in axes) == 1  # the 2-frame shot's face
    cut_lines = [line.get_xdata()[0] for line in axes[0].lines]
    assert cut_lines == [1.0, 2.0]


def test_plot_timeline_changes_no_global_matplotlib_state(tmp_path):
    """The library draws on a Figure of its own: no pyplot, no backend switch for the caller."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib; matplotlib.use('svg'); from pathlib import Path;"
        "from emolens.inference.video import VideoInfo, VideoResult;"
        "from emolens.inference.timeline import plot_timeline;"
        "info = VideoInfo(64, 48, 10.0, 10, 1.0, 0, False);"
        f"plot_timeline(VideoResult(info, [], 0), Path({str(tmp_path / 't.png')!r}));"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend();"
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_json_of_a_video_without_faces(tmp_path):
    from emolens.inference.video import _PartialFiles, _RecordWriters

    result = VideoResult(VideoInfo(64, 48, 25.0, 10, 0.4, 0, False), [], 10)
    with _PartialFiles() as files, _RecordWriters(files, None, tmp_path / "f.json") as writers:
        writers.write([])
        writers.finish(result.summary())
        files.commit()
    assert (tmp_path / "f.json").read_text() == json.dumps({"summary": result.summary(), "frames": []}) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_records_not_kept_give_the_same_files_and_summary(clip, recognizer, tmp_path):
    """Without keeping records (an hour of video), the CSV, JSON and summary are those of a
    run that keeps them, every record still reaches ``on_records``, and no scratch is left."""
    kept = process_video(
        clip, recognizer, csv_path=tmp_path / "a.csv", json_path=tmp_path / "a.json", plot_path=tmp_path / "a.png"
    )
    seen: list[FaceRecord] = []
    streamed = process_video(
        clip,
        recognizer,
        csv_path=tmp_path / "b.csv",
        json_path=tmp_path / "b.json",
        plot_path=tmp_path / "b.png",
        on_records=seen.extend,
        keep_records=False,
    )
    assert streamed.records == [] and seen == kept.records and len(seen) == 20
    assert streamed.summary() == kept.summary() and streamed.face_count == 20
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()  # the plot needs no records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json", "a.png", "b.csv", "b.json", "b.png"]


def test_track_totals_match_the_records():
    """The running per-track totals give what the records give when summed whole."""
    info = VideoInfo(64, 48, 25.0, 10, 0.4, 0, False)

    def record(track, time, probabilities):
        return FaceRecord(time, int(time * 10), 0, track, FaceBox(0, 0, 9, 9), 0.9, probabilities)

    sad, happy = (0.1, 0.0, 0.1, 0.1, 0.5, 0.1, 0.1), (0.0, 0.0, 0.1, 0.7, 0.1, 0.0, 0.1)
    records = [record(1, 0.0, sad), record(2, 0.0, happy), record(1, 0.1, happy), record(1, 0.7, happy)]
    track = VideoResult(info, records, 3).summary()["tracks"]["1"]
    assert track["frames"] == 3 and (track["start"], track["end"]) == (0.0, 0.7) and not track["short"]
    assert track["share"]["happy"] == pytest.approx(2 / 3) and track["dominant_emotion"] == "happy"
    assert track["mean_scores"]["sad"] == pytest.approx((0.5 + 0.1 + 0.1) / 3)


def test_free_heap_is_released_on_glibc():
    """The annotated writer trims glibc's heaps (see emolens._memory): the call must work on
    the CI's Linux, and be a quiet no-op elsewhere."""
    import platform

    from emolens._memory import release_free_heap

    assert release_free_heap() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
