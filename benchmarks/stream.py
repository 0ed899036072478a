"""A live stream analysed as `emolens watch` does: speed, latency, memory over time, recovery.

    python benchmarks/stream.py --seconds 600 [--out benchmarks/results/stream_DATE.json]

Debian's ffmpeg serves a 640x360 30 fps H.264 clip in a loop as live MPEG-TS over HTTP
(``-re``: at its real rate); the clip's real faces (scikit-image's astronaut) number 1, 2
and 3 in turn, sliding slowly. The stream is read by :class:`LiveSource` (newest frame
only) and analysed by :class:`StreamProcessor` with the default stream model, RetinaFace,
every frame it is handed. Reported: frames analysed per second, frames dropped, capture ->
result latency p50/p95 (from the frame's decoding here to its faces being ready; the
camera's and network's own delay come on top), the process's resident memory at the start
and end, and, with ``--recovery``, how long after the server is restarted results resume.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit
from pipeline import face_frame

from emolens._machine import describe_machine
from emolens.inference.live_source import LiveSource, SourceState
from emolens.inference.pipeline import StreamProcessor
from emolens.inference.recognizer import EmotionRecognizer
from emolens.shipped import STREAM_MODEL


def make_clip(path: Path, seconds: int = 12, fps: int = 30) -> Path:
    """640x360 at 30 fps: 1, 2 then 3 faces, a third of the clip each, sliding 1 px a frame."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.gop_size = fps
        per_part = seconds * fps // 3
        for faces in (1, 2, 3):
            base = face_frame(640, 360, faces)
            for i in range(per_part):
                shift = i % 40 if i % 80 < 40 else 40 - i % 40  # back and forth, no jump
                frame = np.roll(base, shift - 20, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def serve(clip: Path, port: int) -> subprocess.Popen:
    """ffmpeg serving the clip in a loop, live; returns once it listens (without connecting)."""
    url = f"http://127.0.0.1:{port}/live.ts"
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip)]
    proc = subprocess.Popen([*cmd, "-c:v", "copy", "-f", "mpegts", "-listen", "1", url], stdin=subprocess.DEVNULL)
    while f":{port:04X} 00000000:0000 0A" not in Path("/proc/net/tcp").read_text():
        if proc.poll() is not None:
            raise RuntimeError("ffmpeg could not serve the clip")
        time.sleep(0.05)
    return proc


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(source: LiveSource, processor: StreamProcessor, seconds: float, samples: list) -> dict:
    """Analyse for ``seconds``; latencies (s) and per-10-s memory samples."""
    latencies, analysed, dropped, faces = [], 0, 0, []
    end = time.monotonic() + seconds
    next_sample = time.monotonic()
    while time.monotonic() < end:
        frame = source.read(timeout=0.5)
        if frame is None:
            continue
        result = processor.step(frame)
        latencies.append(result.done_time - frame.wall_time)
        analysed += 1
        dropped += frame.dropped
        faces.append(len(result.faces))
        if time.monotonic() >= next_sample:
            samples.append(round(rss_mib(), 1))
            next_sample += 10
    return {"analysed": analysed, "dropped": dropped, "latencies": latencies, "faces": faces}


def recovery(source: LiveSource, clip: Path, port: int, server: subprocess.Popen) -> tuple[dict, subprocess.Popen]:
    """Kill the server, wait for `reconnecting`, restart it 2 s later: seconds until frames come again."""
    server.kill()
    server.wait()
    killed = time.monotonic()
    while source.state is not SourceState.RECONNECTING and time.monotonic() - killed < 30:
        source.read(timeout=0.2)
    noticed = time.monotonic() - killed
    time.sleep(2)
    server = serve(clip, port)
    restarted = time.monotonic()
    while source.read(timeout=0.2) is None and time.monotonic() - restarted < 60:
        pass
    return {
        "drop_noticed_s": round(noticed, 2),
        "results_resume_after_restart_s": round(time.monotonic() - restarted, 2),
        "state_after": source.state.value,
    }, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long to analyse the stream")
    parser.add_argument("--model", default=STREAM_MODEL)
    parser.add_argument("--recovery", action="store_true", help="then kill and restart the server, timing recovery")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs Debian's ffmpeg as the stream server: apt-get install ffmpeg")
    processor = StreamProcessor(EmotionRecognizer(args.model, spinning=False))  # as `emolens watch` does
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        clip = make_clip(Path(tmp) / "faces.mp4")
        server = serve(clip, port)
        try:
            with LiveSource(f"http://127.0.0.1:{port}/live.ts", backoff=(0.5, 8.0)) as source:
                run(source, processor, 5, [])  # warm-up: connect, first whole-frame passes
                samples = [round(rss_mib(), 1)]
                started = time.monotonic()
                measured = run(source, processor, args.seconds, samples)
                elapsed = time.monotonic() - started
                samples.append(round(rss_mib(), 1))
                recovered = None
                if args.recovery:
                    recovered, server = recovery(source, clip, port, server)
        finally:
            server.kill()
            server.wait()
    lat = np.array(measured["latencies"]) * 1000
    emit(
        {
            "machine": describe_machine(),
            "stream": "640x360 30 fps H.264 MPEG-TS over HTTP from ffmpeg -re, 1-3 faces",
            "model": args.model,
            "seconds": round(elapsed, 1),
            "analysed_fps": round(measured["analysed"] / elapsed, 2),
            "dropped_share": round(measured["dropped"] / max(1, measured["analysed"] + measured["dropped"]), 3),
            "faces_per_frame": {str(n): measured["faces"].count(n) for n in sorted(set(measured["faces"]))},
            "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 1) for q in (50, 95)},
            "rss_mib": {"start": samples[0], "end": samples[-1], "max": max(samples), "every_10_s": samples},
            "recovery": recovered,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
