"""emolens.batch and `emolens batch`: inputs, tables, resume, interruption, workers, Ray."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolens.batch import BatchSettings, expand_inputs, run_batch
from emolens.batch._tables import FACE_COLUMNS, FILE_COLUMNS
from emolens.cli import main
from emolens.labels import EMOTIONS
from emolens.results import FaceBox, FaceResult

pa = pytest.importorskip("pyarrow")  # CI installs it: .[train,dev,ray] (ray pulls the batch extra)
pq = pytest.importorskip("pyarrow.parquet")


def group_photo(astronaut_bgr: np.ndarray, tile: int = 256) -> np.ndarray:
    """Four faces: the astronaut at ``tile`` px, mirrored on the diagonal (Haar finds all four)."""
    t = cv2.resize(astronaut_bgr, (tile, tile), interpolation=cv2.INTER_AREA)
    return np.vstack([np.hstack([t, t[:, ::-1]]), np.hstack([t[:, ::-1], t])])


@pytest.fixture(scope="module")
def archive(tmp_path_factory, astronaut_bgr) -> Path:
    """A mixed folder: a portrait, a group photo in a subfolder, a short video, a corrupt JPEG, a note."""
    from test_video import make_clip

    root = tmp_path_factory.mktemp("archive")
    cv2.imwrite(str(root / "portrait.jpg"), astronaut_bgr)
    (root / "events").mkdir()
    cv2.imwrite(str(root / "events" / "group.png"), group_photo(astronaut_bgr))
    make_clip(root / "interview.mp4", astronaut_bgr, frames=6, audio=False)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("shot in 1969\n")
    return root


@pytest.fixture(scope="module")
def settings(tiny_onnx) -> BatchSettings:
    return BatchSettings(model=str(tiny_onnx), detector="haar")


@pytest.fixture(scope="module")
def serial(archive, settings, tmp_path_factory):
    """The archive analysed in this process: the reference the other executors must match."""
    return run_batch([str(archive)], tmp_path_factory.mktemp("serial"), settings=settings, workers=1)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def outcomes(report) -> list[tuple]:
    return [(f.source, f.status, f.faces) for f in report.files]


@pytest.fixture
def analysed(monkeypatch) -> list[str]:
    """Names of the files this process analyses from now on (in-process runs only: workers=1)."""
    from emolens.batch import _executors

    names: list[str] = []
    real = _executors.analyze_file

    def counting(item, *args, **kwargs):
        names.append(Path(item.path).name)
        return real(item, *args, **kwargs)

    monkeypatch.setattr(_executors, "analyze_file", counting)
    return names


def assert_same_faces(a, b) -> None:
    """Same rows in the same order; scores equal up to float rounding (thread counts differ)."""
    assert a.column_names == b.column_names and a.num_rows == b.num_rows
    for name in a.column_names:
        if name in ("confidence", *EMOTIONS):
            np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), atol=1e-5)
        else:
            assert a[name].to_pylist() == b[name].to_pylist(), name


def test_mixed_folder_gives_tables_per_file_results_and_exit_status(archive, tiny_onnx, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["batch", str(archive), "--out", str(out), "--model", str(tiny_onnx), "--detector", "haar"]
    code = main([*args, "--workers", "1", "--no-progress"])
    stdout, stderr = capsys.readouterr()
    assert code == 1  # one failed file
    assert stderr.count("emolens: error:") == 1 and "broken.jpg: not a readable image" in stderr
    assert "Traceback" not in stderr
    assert "5 file(s): 3 analysed, 0 done before, 1 failed, 1 ignored" in stdout

    files = {Path(r["source"]).name: r for r in read_csv(out / "files.csv")}
    assert list(read_csv(out / "files.csv")[0]) == list(FILE_COLUMNS)
    assert {n: (r["kind"], r["status"]) for n, r in files.items()} == {
        "broken.jpg": ("image", "failed"),
        "group.png": ("image", "ok"),
        "interview.mp4": ("video", "ok"),
        "notes.txt": ("other", "ignored"),
        "portrait.jpg": ("image", "ok"),
    }
    assert "broken.jpg" in files["broken.jpg"]["error"]
    assert files["group.png"]["faces"] == "4" and files["portrait.jpg"]["faces"] == "1"
    assert (files["interview.mp4"]["frames"], files["interview.mp4"]["tracks"]) == ("6", "1")
    assert files["group.png"]["tracks"] == "0"

    faces = pq.read_table(out / "faces.parquet")
    assert faces.column_names == list(FACE_COLUMNS)
    rows = faces.to_pylist()
    assert len(rows) == sum(int(r["faces"]) for r in files.values())
    by_name = {}
    for r in rows:
        by_name.setdefault(Path(r["source"]).name, []).append(r)
    assert [r["face"] for r in by_name["group.png"]] == [0, 1, 2, 3]
    assert all(r["frame"] == 0 and r["time"] is None and r["track_id"] is None for r in by_name["group.png"])
    video = by_name["interview.mp4"]
    assert [r["frame"] for r in video] == list(range(6)) and video[-1]["time"] == pytest.approx(0.5)
    assert {r["track_id"] for r in video} == {1}
    for r in rows:
        assert sum(r[e] for e in EMOTIONS) == pytest.approx(1, abs=1e-4)
        assert r["emotion"] == max(EMOTIONS, key=r.get) and r["x2"] > r["x1"] and r["detection_score"] > 0
    assert len(read_csv(out / "faces.csv")) == len(rows)

    folder = out / files["interview.mp4"]["output"]
    assert {p.name for p in folder.iterdir()} == {"faces.parquet", "frames.csv", "video.json", "status.json"}
    assert "1" in json.loads((folder / "video.json").read_text())["summary"]["tracks"]
    group = json.loads((out / files["group.png"]["output"] / "faces.json").read_text())
    assert len(group["faces"]) == 4 and group["width"] == 512
    assert not list(out.rglob("annotated.*"))  # only with --annotate


def test_annotate_writes_copies_which_are_never_inputs(archive, tiny_onnx, tmp_path, monkeypatch):
    folder = tmp_path / "shoot"
    folder.mkdir()
    shutil.copy(archive / "portrait.jpg", folder)
    shutil.copy(archive / "interview.mp4", folder)
    monkeypatch.chdir(folder)
    args = ["batch", ".", "--out", "results", "--model", str(tiny_onnx), "--detector", "haar", "--annotate"]
    assert main([*args, "--workers", "1"]) == 0
    assert sorted(p.name for p in (folder / "results").rglob("annotated.*")) == ["annotated.mp4", "annotated.png"]
    assert main([*args, "--workers", "1"]) == 0  # results/ is inside the input folder: not read as input
    sources = [r["source"] for r in read_csv(folder / "results" / "files.csv")]
    assert [Path(s).name for s in sources] == ["interview.mp4", "portrait.jpg"]


def test_rerun_skips_finished_files_and_redoes_missing_or_changed_ones(archive, settings, tmp_path, analysed):
    archive_copy = shutil.copytree(archive, tmp_path / "archive")
    out = tmp_path / "out"
    first = run_batch([str(archive_copy)], out, settings=settings, workers=1)
    analysed.clear()
    written = (out / "faces.parquet").stat().st_mtime_ns
    again = run_batch([str(archive_copy)], out, settings=settings, workers=1)
    assert analysed == [] and again.skipped == 4 and again.failed == 1  # the corrupt file stays recorded
    assert (out / "faces.parquet").stat().st_mtime_ns == written  # nothing new: the tables are kept
    assert_same_faces(first.faces_table(), again.faces_table())

    next((out / "files").glob("portrait-*/faces.parquet")).unlink()
    os.utime(archive_copy / "events" / "group.png", ns=(1, 1))  # changed since
    (out / "files" / ".partial-interview-0123-999").mkdir()  # left by a killed run
    third = run_batch([str(archive_copy)], out, settings=settings, workers=1)
    assert sorted(analysed) == ["group.png", "portrait.jpg"] and third.analysed == 2 and third.skipped == 2
    assert not [p for p in (out / "files").iterdir() if p.name.startswith(".partial-")]
    assert_same_faces(first.faces_table(), third.faces_table())

    analysed.clear()
    run_batch([str(archive_copy)], out, settings=settings, workers=1, retry_failed=True)
    assert analysed == ["broken.jpg"]
    every_2nd = BatchSettings(model=settings.model, detector="haar", every_nth=2)
    run_batch([str(archive_copy)], out, settings=every_2nd, workers=1)
    assert "interview.mp4" in analysed  # other settings, other results: redone


def test_a_file_is_redone_only_when_its_own_kinds_detection_size_changes(archive, settings, tmp_path, analysed):
    out, images = tmp_path / "out", {"portrait.jpg", "group.png"}
    run_batch([str(archive)], out, settings=replace(settings, detect_size=640), workers=1)
    analysed.clear()
    run_batch([str(archive)], out, settings=replace(settings, detect_size=640, photo_detect_size=960), workers=1)
    assert images <= set(analysed) and "interview.mp4" not in analysed
    analysed.clear()
    run_batch([str(archive)], out, settings=replace(settings, detect_size=320, photo_detect_size=960), workers=1)
    assert analysed == ["interview.mp4"]
    analysed.clear()
    run_batch(
        [str(archive)], out, settings=replace(settings, detect_size=320, photo_detect_size=960, every_nth=2), workers=1
    )
    assert analysed == ["interview.mp4"]  # a photo has no frames to skip


def test_workers_2_give_the_same_table_as_1(archive, settings, serial, tmp_path):
    pooled = run_batch([str(archive)], tmp_path / "out", settings=settings, workers=2)
    assert outcomes(pooled) == outcomes(serial)
    assert_same_faces(serial.faces_table(), pooled.faces_table())


def test_library_call_returns_a_table(serial):
    table = serial.faces_table()
    assert isinstance(table, pa.Table) and table.num_rows == serial.faces == 4 + 1 + 6
    assert table.schema.field("time").type == pa.float64()


def _photos(folder: Path, astronaut_bgr, n: int) -> Path:
    folder.mkdir()
    photo = group_photo(astronaut_bgr, tile=512)
    for i in range(n):
        cv2.imwrite(str(folder / f"photo{i:02d}.png"), np.roll(photo, i, axis=1))
    return folder


def _committed(out: Path) -> list[Path]:
    files = out / "files"
    return [p for p in files.iterdir() if not p.name.startswith(".")] if files.is_dir() else []


def _batch_process(photos: Path, out: Path, tiny_onnx, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "emolens.cli", "batch", str(photos), "--out", str(out), "--model", str(tiny_onnx)]
    cmd += ["--detector", "haar", "--workers", str(workers), "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_kill_9_halfway_loses_only_the_file_in_flight(astronaut_bgr, tiny_onnx, settings, tmp_path, analysed):
    photos = _photos(tmp_path / "photos", astronaut_bgr, 10)
    out = tmp_path / "out"
    proc = _batch_process(photos, out, tiny_onnx, workers=1)
    _wait_for(lambda: len(_committed(out)) >= 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = _committed(out)
    assert 3 <= len(done) < 10, "the batch finished before it was killed: make the photos larger"
    for folder in done:  # every committed folder is complete
        status = json.loads((folder / "status.json").read_text())
        assert status["status"] == "ok" and pq.read_table(folder / "faces.parquet").num_rows == status["faces"] >= 4
    report = run_batch([str(photos)], out, settings=settings, workers=1)
    assert len(analysed) == 10 - len(done) and report.skipped == len(done) and report.failed == 0
    assert report.faces_table().num_rows == report.faces >= 40


def test_a_worker_killed_mid_batch_is_replaced_and_its_file_redone(astronaut_bgr, tiny_onnx, tmp_path):
    photos = _photos(tmp_path / "photos", astronaut_bgr, 8)
    out = tmp_path / "out"
    proc = _batch_process(photos, out, tiny_onnx, workers=2)
    _wait_for(lambda: len(_committed(out)) >= 2, proc)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    workers = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert workers, children
    os.kill(int(workers[0]), signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "8 file(s): 8 analysed, 0 done before, 0 failed" in stdout
    faces = sum(int(r["faces"]) for r in read_csv(out / "files.csv"))
    assert pq.read_table(out / "faces.parquet").num_rows == faces >= 32


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")  # CI installs it (.[train,dev,ray])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_table_and_layout_as_the_process_pool(archive, settings, serial, local_ray, tmp_path):
    import tempfile

    neighbour = Path(tempfile.mkdtemp(prefix="not-emolens-"))  # the actors' temp folders have neighbours
    report = run_batch([str(archive)], tmp_path / "out", settings=settings, ray=True, workers=2)
    assert neighbour.is_dir()
    neighbour.rmdir()
    assert outcomes(report) == outcomes(serial)
    assert_same_faces(serial.faces_table(), report.faces_table())
    layout = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert layout == sorted(p.relative_to(serial.out).as_posix() for p in serial.out.rglob("*"))


def test_expand_inputs_reads_lists_globs_and_names_bad_inputs(archive, tmp_path):
    listing = tmp_path / "list.txt"
    relative = os.path.relpath(archive / "portrait.jpg", tmp_path)
    listing.write_text(f"# interviews\n\n{archive / 'interview.mp4'}\n{relative}\n")
    items = expand_inputs(
        [
            f"@{listing}",
            str(archive / "**" / "*.png"),
            str(archive / "portrait.jpg"),  # twice: once in the result
            str(archive / "notes.txt"),  # a .txt given by name is a list: its line is no file
            str(tmp_path / "missing.jpg"),
            str(tmp_path / "*.gif"),
        ]
    )
    got = [(Path(i.path).name, i.kind) for i in items]
    assert dict(got) == {
        "interview.mp4": "video",
        "portrait.jpg": "image",
        "group.png": "image",
        "shot in 1969": "failed",
        "missing.jpg": "failed",
        "*.gif": "failed",
    }
    assert [i.path for i in items] == sorted(i.path for i in items)
    errors = " | ".join(i.error for i in items if i.error)
    assert "missing.jpg: no such file or folder" in errors and "*.gif: no file matches this pattern" in errors


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--workers", "0"], "--workers must be 1 or more, got 0"),
        (["--every", "0"], "--every must be 1 or more, got 0"),
        (["--detect-size", "10"], "--detect-size must be at least 64 pixels, got 10"),
        (["--photo-detect-size", "10"], "--photo-detect-size must be at least 64 pixels, got 10"),
        (["--model", "nowhere.onnx"], "nowhere.onnx: no such model file"),
        (["--model", "{broken}", "--workers", "2"], "{broken}: cannot load ONNX model"),
    ],
)
def test_batch_arguments_are_named_in_errors(extra, message, archive, tmp_path, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    extra = [arg.format(broken=broken) for arg in extra]
    inputs = [str(archive / "portrait.jpg"), str(archive / "events" / "group.png")]
    assert main(["batch", *inputs, "--out", str(tmp_path / "o"), *extra]) == 1
    assert capsys.readouterr().err.strip().startswith(f"emolens: error: {message.format(broken=broken)}")


def test_ray_swallowing_an_input_is_explained(archive, tmp_path, capsys):
    assert main(["batch", str(archive / "portrait.jpg"), "--out", str(tmp_path / "o"), "--ray", str(archive)]) == 1
    assert "put --ray after the inputs" in capsys.readouterr().err


@pytest.mark.parametrize("module, extra", [("pyarrow", "emolens[batch]"), ("ray", "emolens[ray]")])
def test_a_missing_extra_is_named(module, extra, archive, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    args = ["batch", str(archive / "portrait.jpg"), "--out", str(tmp_path / "o"), "--workers", "1"]
    assert main([*args, "--ray"] if module == "ray" else args) == 2
    err = capsys.readouterr().err
    assert err.startswith("emolens: ") and f"pip install '{extra}'" in err and "Traceback" not in err


class _FakeRay:
    """Ray's calls run_ray makes, in one process: an actor dies running a file named ``crash*``
    (every later call on it fails too)."""

    class exceptions:  # noqa: N801 - the shape of ray.exceptions
        class RayActorError(Exception):
            pass

    def __init__(self):
        self.actors, self.killed = [], []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2}

    def remote(self, num_cpus):
        fake = self

        class Actor:
            def __init__(self):
                self.dead, self.ran = False, []
                fake.actors.append(self)
                self.analyze = self

            def remote(self, item):  # actor.analyze.remote(item)
                if not self.dead and Path(item.path).name.startswith("crash"):
                    self.dead = True
                    return ("died", item)
                if self.dead:
                    return ("died", item)
                self.ran.append(item.path)
                return ("ok", item)

        return lambda cls: type("ActorClass", (), {"remote": staticmethod(lambda settings: Actor())})

    def wait(self, refs, num_returns):
        return [refs[-1]], refs[:-1]

    def get(self, ref):
        state, item = ref
        if state == "died":
            raise self.exceptions.RayActorError(item.path)
        from emolens.batch._ledger import FileOutcome

        return FileOutcome(item.path, "image", "ok", frames=1), {}

    def kill(self, actor):
        self.killed.append(actor)


def test_ray_retries_the_file_an_actor_died_on_with_a_fresh_actor_then_fails_it(monkeypatch, tmp_path):
    from emolens.batch import _ray
    from emolens.batch._inputs import InputFile
    from emolens.batch._worker import BatchSettings

    fake = _FakeRay()
    monkeypatch.setattr(_ray, "require_ray", lambda: fake)
    names = ["a.jpg", "crash.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    tasks = [(InputFile(str(tmp_path / n), "image"), tmp_path / "out" / n) for n in names]
    results = {item.path: outcome for item, _, outcome in _ray.run_ray(tasks, BatchSettings(), workers=2)}
    assert set(results) == {str(tmp_path / n) for n in names}
    failed = {Path(p).name: o.error for p, o in results.items() if o.status == "failed"}
    assert list(failed) == ["crash.jpg"] and "died while analysing it, 3 times" in failed["crash.jpg"]
    # two actors at first, then one fresh actor per death (each of crash.jpg's three attempts)
    assert len(fake.actors) == 2 + 3 and len(fake.killed) == len(fake.actors)
    ran = sorted(Path(p).name for actor in fake.actors for p in actor.ran)
    assert ran == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]  # each innocent file exactly once


def test_tables_are_written_a_row_group_at_a_time(tmp_path, monkeypatch):
    """A long video's rows go to Parquet and into the combined tables in bounded pieces, and
    the tables hold the rows as added (faces numbered within each frame); no files still gives the header."""
    from emolens.batch import _tables

    monkeypatch.setattr(_tables, "ROW_GROUP", 4)
    rows = [10, 0, 7]
    files = []
    for i, n in enumerate(rows):
        columns = {name: [] for name in FACE_COLUMNS}
        with _tables.FaceRows(tmp_path / f"{i}.parquet", f"v{i}.mp4", "video") as writer:
            for frame in range(n):
                scores = dict(zip(EMOTIONS, [0.05, 0.05, 0.1, 0.5, 0.1, 0.1, 0.1]))
                face = FaceResult(FaceBox(1, 2, 30, 40), scores, 0.9)
                writer.add(frame // 2, frame / 30, 1 + frame % 2, face)  # two faces a frame
                values = {"source": f"v{i}.mp4", "kind": "video", "frame": frame // 2, "time": frame / 30}
                values |= {"track_id": 1 + frame % 2, "face": frame % 2, "x1": 1, "y1": 2, "x2": 30, "y2": 40}
                values |= {"detection_score": 0.9, "emotion": "happy", "confidence": 0.5} | scores
                for name in FACE_COLUMNS:
                    columns[name].append(values[name])
        assert pq.read_table(tmp_path / f"{i}.parquet").equals(pa.table(columns, schema=_tables.schema()))
        assert pq.ParquetFile(tmp_path / f"{i}.parquet").metadata.num_row_groups == max(1, -(-n // 4))
        files.append(tmp_path / f"{i}.parquet")
    assert _tables.combine(files, tmp_path) == 17
    whole = pa.concat_tables([pq.read_table(f) for f in files])
    assert pq.read_table(tmp_path / "faces.parquet").equals(whole)
    text = (tmp_path / "faces.csv").read_text()
    assert text.splitlines()[0] == ",".join(f'"{name}"' for name in FACE_COLUMNS) and len(text.splitlines()) == 18
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _tables.combine([], empty) == 0
    assert (empty / "faces.csv").read_text().splitlines() == [",".join(f'"{name}"' for name in FACE_COLUMNS)]
    assert pq.read_table(empty / "faces.parquet").num_rows == 0


def test_a_video_that_fails_leaves_no_faces_table(settings, tmp_path):
    """A video whose analysis fails has its error recorded and no faces table in its folder."""
    from emolens.batch._inputs import InputFile
    from emolens.batch._worker import analyze_file, build_recognizer

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    outcome = analyze_file(InputFile(str(broken), "video"), settings, build_recognizer(settings), tmp_path / "work")
    assert outcome.status == "failed" and "broken.mp4" in outcome.error
    assert list((tmp_path / "work").iterdir()) == []
