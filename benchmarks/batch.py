"""`emolens batch`: scaling over processes and Ray, resume after kill -9, re-run of a finished batch.

    python benchmarks/batch.py                 # on an idle machine; writes benchmarks/results/batch_<date>_<cpu>.json
    python benchmarks/batch.py --smoke         # tiny sizes: proves the script runs; measures nothing
    python benchmarks/batch.py --photos 480 --videos 24 --repeat 3   # medians of 3 rounds, a larger archive

Builds, in a temporary folder, a realistic archive: multi-face photos composited from
scikit-image's astronaut photo (a real face: several sizes, mirrored, lighter and darker, on
640x480 to 1920x1080 canvases) and short 640x480 H.264 videos whose faces move. Then times
the command as a user runs it (a subprocess: start-up and model loads included):

1. the archive with ``--workers 1``, ``--workers 2`` and ``--ray --workers 2`` (a local Ray),
   checking that the three faces tables agree; with ``--repeat N``, N rounds of the three in
   turn and their medians (single runs on a shared 2-core machine vary by up to 20%);
2. resume: ``--resume-images`` small photos with ``--workers 2``, ``kill -9`` of the whole
   process group once half the files are committed, then the same command again. The
   ``.partial-`` folders left are the files that were in flight, i.e. the work redone;
3. the same command once more over the finished batch (the "nothing to do" time).

Targets (issue 18): workers 2 >= 1.6x workers 1; Ray within 15% of workers 2; a resume
redoes <= 2% of the files; the second run over a finished batch <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
from _common import emit

from emolens._machine import describe_machine

RESULTS = Path(__file__).parent / "results"


def cpu_flags() -> list[str]:
    """What ``grep -o -m1 -E 'avx512_bf16|avx512_vnni|avx2' /proc/cpuinfo`` prints, as a list."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return re.findall(r"avx512_bf16|avx512_vnni|avx2", flags)


def cpu_tag() -> str:
    """The result file's suffix, as the other results name it: avx512, avx2 or cpu."""
    flags = cpu_flags()
    return "avx512" if any(f.startswith("avx512") for f in flags) else "avx2" if "avx2" in flags else "cpu"


def result_path(name: str, given: Path | None, *, smoke: bool) -> Path | None:
    """Where a benchmark writes its JSON: ``given``, else results/<name>_<date>_<cpu>.json (none for a smoke run)."""
    if given is not None or smoke:
        return given
    return RESULTS / f"{name}_{date.today().isoformat()}_{cpu_tag()}.json"


def astronaut_face() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:200, 140:310]


def group_photo(rng: np.random.Generator, face: np.ndarray, size: tuple[int, int], faces: int) -> np.ndarray:
    """``faces`` copies of the face, side by side without overlap, each its own size and light."""
    width, height = size
    canvas = np.clip(rng.normal(110, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    slot = width // faces
    for i in range(faces):
        side = int(rng.uniform(0.35, 0.9) * min(slot, height))
        patch = cv2.resize(face, (int(side * 170 / 180), side), interpolation=cv2.INTER_AREA)
        patch = patch[:, ::-1] if rng.random() < 0.5 else patch
        patch = np.clip(patch * rng.uniform(0.6, 1.3), 0, 255).astype(np.uint8)
        x = i * slot + int(rng.integers(0, max(1, slot - patch.shape[1])))
        y = int(rng.integers(0, max(1, height - side)))
        canvas[y : y + side, x : x + patch.shape[1]] = patch
    return canvas


def write_video(path: Path, face: np.ndarray, frames: int, fps: int = 25) -> None:
    """640x480 H.264: two faces drifting and bobbing over a plain background."""
    import av

    a = cv2.resize(face, (120, 127))
    b = cv2.resize(face[:, ::-1], (150, 159))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(frames):
            canvas = np.full((480, 640, 3), 95, np.uint8)
            t = i / fps
            ax, ay = int(40 + 120 * (1 + np.sin(t))), int(60 + 30 * np.sin(2 * t))
            bx, by = int(330 + 60 * (1 + np.cos(t))), int(250 + 30 * np.cos(1.5 * t))
            canvas[ay : ay + 127, ax : ax + 120] = a
            canvas[by : by + 159, bx : bx + 150] = b
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def build_archive(root: Path, photos: int, videos: int, video_frames: int) -> Path:
    rng = np.random.default_rng(0)
    face = astronaut_face()
    sizes = [(640, 480), (1280, 720), (1920, 1080)]
    for i in range(photos):
        image = group_photo(rng, face, sizes[i % len(sizes)], faces=int(rng.integers(2, 6)))
        cv2.imwrite(str(root / "photos" / f"group{i:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    for i in range(videos):
        write_video(root / "videos" / f"interview{i:02d}.mp4", face, video_frames)
    return root


def build_small_photos(root: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    face = astronaut_face()
    for i in range(n):
        image = group_photo(rng, face, (640, 480), faces=int(rng.integers(1, 4)))
        cv2.imwrite(str(root / f"photo{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return root


def batch_command(inputs: Path, out: Path, model: str, *extra: str) -> list[str]:
    cli = [sys.executable, "-m", "emolens.cli", "batch", str(inputs), "--out", str(out), "--model", model]
    return [*cli, *extra, "--no-progress"]


def run(cmd: list[str]) -> tuple[float, str, float]:
    """Seconds the command took, its summary line and the CPU seconds it and its worker
    processes used (Ray's workers are not its children: not counted); a failed command stops
    the benchmark."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout.strip().splitlines()[-1], _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def counts(summary: str) -> dict[str, int]:
    """'12 file(s): 10 analysed, 2 done before, 0 failed, ...' -> {'files': 12, 'analysed': 10, ...}."""
    found = re.match(r"(\d+) file\(s\): (\d+) analysed, (\d+) done before, (\d+) failed", summary)
    if not found:
        raise SystemExit(f"unexpected summary line: {summary}")
    return dict(zip(("files", "analysed", "done_before", "failed"), map(int, found.groups())))


def compare_tables(a: Path, b: Path) -> dict:
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a / "faces.parquet"), pq.read_table(b / "faces.parquet")
    same_rows = ta.num_rows == tb.num_rows
    scores = ("confidence", "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    same_keys = same_rows and all(ta[c].equals(tb[c]) for c in ta.column_names if c not in scores)
    diff = 0.0
    if same_rows and ta.num_rows:
        diff = max(float(np.abs(ta[c].to_numpy() - tb[c].to_numpy()).max()) for c in scores)
    return {"rows": [ta.num_rows, tb.num_rows], "same_boxes_and_tracks": same_keys, "max_score_difference": diff}


def scaling(archive: Path, work: Path, model: str, ray: bool, repeat: int = 1) -> dict:
    """The archive with each setting, ``repeat`` rounds in turn (one run of each per round), so
    that a slow spell of a shared machine falls on every setting alike; medians compared. Each
    setting's summary line and CPU figures are its last round's."""
    runs = [("workers_1", ["--workers", "1"]), ("workers_2", ["--workers", "2"])]
    if ray:
        runs.append(("ray_2", ["--ray", "--workers", "2"]))
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    result: dict = {}
    for _ in range(repeat):
        for name, extra in runs:
            shutil.rmtree(work / name, ignore_errors=True)  # a finished batch would be skipped
            machine_before = machine_cpu_seconds()
            seconds, summary, cpu = run(batch_command(archive, work / name, model, *extra))
            times[name].append(round(seconds, 2))
            machine = machine_cpu_seconds() - machine_before
            result[name] = {"summary": summary, "machine_cpu_seconds": round(machine, 1)}
            if not name.startswith("ray"):  # Ray's workers are not children of the command
                result[name] |= {"cpu_seconds": round(cpu, 1), "busy_cores": round(cpu / seconds, 2)}
    for name, seconds in times.items():
        result[name] |= {"seconds": statistics.median(seconds), "every_round": seconds}
    result["speedup_workers_2"] = round(result["workers_1"]["seconds"] / result["workers_2"]["seconds"], 3)
    result["workers_2_vs_1_tables"] = compare_tables(work / "workers_1", work / "workers_2")
    if ray:
        result["ray_over_workers_2"] = round(result["ray_2"]["seconds"] / result["workers_2"]["seconds"], 3)
        result["ray_over_workers_2_every_round"] = [round(r / w, 3) for r, w in zip(times["ray_2"], times["workers_2"])]
        result["ray_vs_workers_1_tables"] = compare_tables(work / "workers_1", work / "ray_2")
    return result


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (Linux /proc/stat), Ray's processes included."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def committed(out: Path) -> tuple[int, int]:
    """(finished file folders, .partial- folders) under OUT/files."""
    files = out / "files"
    if not files.is_dir():
        return 0, 0
    names = [p.name for p in files.iterdir()]
    partial = sum(1 for n in names if n.startswith(".partial-"))
    return len(names) - partial, partial


def resume(photos: Path, n: int, work: Path, model: str) -> dict:
    out = work / "resume"
    cmd = batch_command(photos, out, model, "--workers", "2")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while committed(out)[0] < n // 2:
        if proc.poll() is not None:
            raise SystemExit("the batch ended before half of it was done: use more --resume-images")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, like a power cut
    proc.wait()
    first = time.perf_counter() - started
    done, in_flight = committed(out)
    seconds, summary, _ = run(cmd)
    again = counts(summary)
    rerun_seconds, rerun_summary, _ = run(cmd)
    return {
        "images": n,
        "seconds_until_kill": round(first, 2),
        "finished_before_kill": done,
        "in_flight_at_kill": in_flight,
        "resume_seconds": round(seconds, 2),
        "resume_analysed": again["analysed"],
        "resume_done_before": again["done_before"],
        "redone_files": in_flight,
        "redone_share": round(in_flight / n, 4),
        "finished_batch_rerun_seconds": round(rerun_seconds, 2),
        "finished_batch_rerun_summary": rerun_summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=120, help="multi-face photos in the scaling archive")
    parser.add_argument("--videos", type=int, default=6, help="videos in the scaling archive")
    parser.add_argument("--video-frames", type=int, default=250, help="frames per video (25 fps)")
    parser.add_argument("--resume-images", type=int, default=1000)
    parser.add_argument("--model", default="accurate", help="accurate, compact or an ONNX file")
    parser.add_argument("--skip-ray", action="store_true", help="no Ray run (without the [ray] extra)")
    parser.add_argument("--smoke", action="store_true", help="4 photos, 1 short video, 40 resume images; no JSON")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the scaling runs (medians reported)")
    parser.add_argument("--json", type=Path, help="where to write the results (default: benchmarks/results/)")
    parser.add_argument("--work", type=Path, help="keep the archive and outputs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.smoke:
        args.photos, args.videos, args.video_frames, args.resume_images = 4, 1, 20, 40
    with tempfile.TemporaryDirectory(prefix="emolens-bench-batch-") as tmp:
        work = args.work or Path(tmp)
        for folder in ("archive/photos", "archive/videos", "small"):
            (work / folder).mkdir(parents=True, exist_ok=True)
        archive = build_archive(work / "archive", args.photos, args.videos, args.video_frames)
        small = build_small_photos(work / "small", args.resume_images)
        result = {
            "machine": describe_machine(),
            "cpu_flags": cpu_flags(),
            "smoke": args.smoke,
            "model": args.model,
            "archive": {"photos": args.photos, "videos": args.videos, "video_frames": args.video_frames},
            "scaling": scaling(archive, work, args.model, ray=not args.skip_ray, repeat=args.repeat),
            "resume": resume(small, args.resume_images, work, args.model),
        }
    emit(result, result_path("batch", args.json, smoke=args.smoke))


if __name__ == "__main__":
    main()
