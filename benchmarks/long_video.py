"""`emolens batch` (or `emolens video`) on one long 720p video: its resident memory over the run (issue 18).

    python benchmarks/long_video.py --work /work/tmp/long_video        # 60 min; writes benchmarks/results/
    python benchmarks/long_video.py --every 3 --work DIR             # every 3rd frame analysed
    python benchmarks/long_video.py --smoke                          # a 1-minute video: proves the script runs
    python benchmarks/long_video.py --tool video --minutes 10        # emolens video with CSV, JSON, plot, MP4

Builds (in ``--work``, reused when already there, else a temporary folder) a 1280x720 30 fps
H.264 video of ``--minutes``: a 30 s clip rendered here, three real faces (scikit-image's
astronaut, as in batch.py: three sizes, one mirrored, one darker) gliding over a textured
background on paths that close after 30 s, encoded by ffmpeg (libx264, yuv420p), then looped
by ffmpeg without re-encoding (``-stream_loop N -c copy -t SECONDS``). ffprobe checks the
size and duration. Then runs ``emolens batch VIDEO --out OUT --workers 1 --no-progress`` as
a user does (a subprocess) and every ``--interval`` seconds sums the resident memory (VmRSS)
of that process and all its descendants. With ``--every N`` batch still decodes every frame
and analyses every Nth (the frames between reuse the last faces). ``--tool video`` runs
``emolens video VIDEO -o OUT/annotated.mp4 --csv --json --plot`` instead: the path of the web
UI's video jobs (the same ``process_video`` call), annotated video and timeline plot included.

Reported: the video (size, fps, duration, bytes), the command, wall time, exit status, the
memory samples (MiB), their peak, the memory at 10%, 50% and 90% of the run, the slope over
the run's last half (MiB per 10 min), the kernel's own peak (ru_maxrss of the batch process,
which catches a peak between two samples), and the faces table's rows and frames analysed.

Target (issue 18): a 1-hour 720p video, peak memory <= 1.5 GB, steady.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _common import emit
from batch import astronaut_face, cpu_flags, result_path

from emolens._machine import describe_machine

WIDTH, HEIGHT, FPS = 1280, 720, 30
CLIP_SECONDS = 30
MIB = 1024 * 1024


def render_clip(path: Path, seconds: int = CLIP_SECONDS) -> Path:
    """1280x720 at 30 fps: three faces on Lissajous paths whose periods divide the clip, so
    that the clip loops without a jump (no false scene cut at each loop)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (9, 16, 3)).astype(np.float32)
    texture = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(70, 150, WIDTH, dtype=np.float32)[None, :, None]
    background = np.clip(ramp + 25 * texture, 0, 255).astype(np.uint8)
    face = astronaut_face()
    sprites = [
        cv2.resize(face, (113, 120), interpolation=cv2.INTER_AREA),
        cv2.resize(face[:, ::-1], (170, 180), interpolation=cv2.INTER_AREA),
        np.clip(cv2.resize(face, (226, 240), interpolation=cv2.INTER_AREA) * 0.7, 0, 255).astype(np.uint8),
    ]
    # (left edge of the face's lane, lane width, x cycles per clip, y cycles per clip)
    lanes = [(20, 360, 2, 3), (430, 380, 1, 2), (860, 400, 3, 1)]
    frames = seconds * FPS
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24"]
    cmd += ["-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast"]
    cmd += ["-crf", "23", "-pix_fmt", "yuv420p", "-g", str(2 * FPS), str(path)]
    encoder = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for i in range(frames):
        canvas = background.copy()
        phase = 2 * np.pi * i / frames
        for sprite, (left, lane, fx, fy) in zip(sprites, lanes):
            h, w = sprite.shape[:2]
            x = left + int((lane - w) * (0.5 + 0.5 * np.sin(fx * phase)))
            y = 20 + int((HEIGHT - 40 - h) * (0.5 + 0.5 * np.cos(fy * phase)))
            canvas[y : y + h, x : x + w] = sprite
        encoder.stdin.write(canvas.tobytes())
    encoder.stdin.close()
    if encoder.wait() != 0:
        raise SystemExit(f"ffmpeg could not encode {path}")
    return path


def probe(path: Path) -> dict:
    """Width, height, fps, duration (s) and bytes of a video, as ffprobe reads them."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries"]
    cmd += ["stream=width,height,avg_frame_rate:format=duration,size", "-of", "json", str(path)]
    found = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    stream, fmt = found["streams"][0], found["format"]
    num, den = map(int, stream["avg_frame_rate"].split("/"))
    return {
        "width": stream["width"],
        "height": stream["height"],
        "fps": round(num / den, 3),
        "duration_s": round(float(fmt["duration"]), 2),
        "bytes": int(fmt["size"]),
    }


def build_video(work: Path, minutes: float) -> tuple[Path, dict]:
    """The long video in ``work`` (reused if there and right), checked with ffprobe."""
    seconds = round(minutes * 60)
    long = work / f"long_{WIDTH}x{HEIGHT}_{seconds}s.mp4"
    if not long.exists():
        clip = work / f"clip_{WIDTH}x{HEIGHT}_{CLIP_SECONDS}s.mp4"
        if not clip.exists():
            render_clip(clip)
        loops = -(-seconds // CLIP_SECONDS)  # -stream_loop counts the repeats after the first play
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1)]
        cmd += ["-i", str(clip), "-c", "copy", "-t", str(seconds), str(long)]
        subprocess.run(cmd, check=True)
    spec = probe(long)
    if (spec["width"], spec["height"]) != (WIDTH, HEIGHT) or abs(spec["duration_s"] - seconds) > 2:
        raise SystemExit(f"{long}: ffprobe reads {spec}, not {WIDTH}x{HEIGHT} for {seconds} s")
    return long, spec


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, by the parent links in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rpartition(")")[2].split()[1])  # the command name may hold spaces and ')'
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_mib(pid: int) -> float:
    """VmRSS of one process in MiB; 0 once it is gone (or for a zombie)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_sampled(cmd: list[str], log: Path, interval: float) -> dict:
    """Run ``cmd``, sampling its process tree's resident memory every ``interval`` seconds."""
    samples: list[list[float]] = []  # [seconds since start, MiB summed over the tree]
    per_process: dict[int, float] = {}  # the largest sample of each process
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        next_sample = started
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now >= next_sample:
                tree = {p: rss_mib(p) for p in process_tree(proc.pid)}
                for p, mib in tree.items():
                    per_process[p] = max(per_process.get(p, 0.0), mib)
                samples.append([round(now - started, 1), round(sum(tree.values()), 1)])
                next_sample += interval
            time.sleep(0.2)
        wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 1),
        "exit_code": os.waitstatus_to_exitcode(status),
        "samples": samples,
        "processes": len(per_process),
        "peak_per_process_mib": round(max(per_process.values(), default=0.0), 1),
        "ru_maxrss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux: the measured process's own peak
    }


def curve(samples: list[list[float]], wall: float) -> dict:
    """Peak, the samples nearest 10/50/90% of the run, and the slope over its last half."""
    times = np.array([t for t, _ in samples])
    mib = np.array([m for _, m in samples])
    at = {f"mib_at_{p}pct": float(mib[np.abs(times - wall * p / 100).argmin()]) for p in (10, 50, 90)}
    late = times >= wall / 2
    slope = float(np.polyfit(times[late], mib[late], 1)[0]) * 600 if late.sum() >= 3 else None
    return {
        "peak_mib": float(mib.max()),
        "peak_at_s": float(times[mib.argmax()]),
        **at,
        "slope_last_half_mib_per_10min": None if slope is None else round(slope, 2),
    }


def outputs(out: Path) -> dict:
    """Rows of OUT/faces.parquet and the video's frames and status from OUT/files.csv."""
    import pyarrow.parquet as pq

    found: dict = {"rows": None, "frames": None, "status": None}
    if (out / "faces.parquet").exists():
        found["rows"] = pq.read_metadata(out / "faces.parquet").num_rows
    if (out / "files.csv").exists():
        with open(out / "files.csv", newline="") as f:
            row = next(csv.DictReader(f), {})
        found.update(frames=int(row.get("frames") or 0), status=row.get("status"), error=row.get("error") or None)
    return found


def video_outputs(out: Path) -> dict:
    """``emolens video``'s outputs: the rows of OUT/frames.csv and which files exist."""
    rows = None
    if (out / "frames.csv").exists():
        with open(out / "frames.csv", newline="") as f:
            rows = sum(1 for _ in csv.reader(f)) - 1
    return {"rows": rows, "outputs": sorted(p.name for p in out.iterdir())}


def command(tool: str, video: Path, out: Path, every: int) -> list[str]:
    cmd = [sys.executable, "-m", "emolens.cli", tool, str(video)]
    if tool == "batch":
        return [*cmd, "--out", str(out), "--workers", "1", "--every", str(every), "--no-progress"]
    out.mkdir(parents=True)
    files = ["-o", out / "annotated.mp4", "--csv", out / "frames.csv", "--json", out / "video.json"]
    return [*cmd, *map(str, files), "--plot", str(out / "timeline.png"), "--every", str(every)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60, help="length of the video")
    parser.add_argument("--every", type=int, default=1, help="batch's --every: analyse every Nth frame")
    parser.add_argument("--tool", choices=("batch", "video"), default="batch", help="the command measured")
    parser.add_argument("--interval", type=float, default=5, help="seconds between memory samples")
    parser.add_argument("--work", type=Path, help="keep the videos and outputs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="where to write the results (default: benchmarks/results/)")
    parser.add_argument("--smoke", action="store_true", help="a 1-minute video; no JSON unless --json")
    args = parser.parse_args()
    if args.smoke:
        args.minutes = 1
    with tempfile.TemporaryDirectory(prefix="emolens-bench-long-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        video, spec = build_video(work, args.minutes)
        out = work / f"out_{args.tool}_{video.stem}_every{args.every}"
        shutil.rmtree(out, ignore_errors=True)  # else batch would skip the finished file
        cmd = command(args.tool, video, out, args.every)
        run = run_sampled(cmd, work / f"{out.name}.log", args.interval)
        log = (work / f"{out.name}.log").read_text().strip().splitlines()
        result = {
            "machine": describe_machine(),
            "cpu_flags": cpu_flags(),
            "smoke": args.smoke,
            "video": {**spec, "codec": "h264 (libx264, yuv420p)", "clip_s": CLIP_SECONDS, "faces": 3},
            "tool": args.tool,
            "every": args.every,
            "every_used": args.every > 1,
            "note": "every frame is decoded; with every > 1 only every Nth is analysed" if args.every > 1 else "",
            "command": " ".join(["emolens", *cmd[3:]]),
            "wall_s": run["wall_s"],
            "exit_code": run["exit_code"],
            "summary_line": log[-1] if log else "",
            **(outputs(out) if args.tool == "batch" else video_outputs(out)),
            "interval_s": args.interval,
            **curve(run["samples"], run["wall_s"]),
            "ru_maxrss_mib": run["ru_maxrss_mib"],
            "processes": run["processes"],
            "peak_per_process_mib": run["peak_per_process_mib"],
            "rss_samples_mib": run["samples"],
        }
    emit(result, result_path("long_video", args.json, smoke=args.smoke))


if __name__ == "__main__":
    main()
