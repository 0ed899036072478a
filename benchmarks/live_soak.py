"""Soak test of the Live page: frames sent per second over minutes, in headless Chromium.

    python benchmarks/live_soak.py [--minutes 5] [--model NAME_OR_ONNX] [--label before] [--busy]

Starts `emolens serve` on a free loopback port, opens the Live page in Debian's headless
Chromium with a fake camera playing a looping 640x480 15 fps clip of three real faces
(scikit-image's astronaut) that move, presses Start and samples once a second: frames the
camera presented (requestVideoFrameCallback), frames the page sent (WebSocket.send), answers,
the time from toBlob to its callback (main-thread encoding only), the page's own stats line and,
where the page has it, its state (`window.emolensLive`). The instrumentation is injected
before the page's scripts run, so it measures the page of any commit alike.

--busy keeps the page's main thread busy with 8 ms tasks back to back, so that it never has
idle time: the condition under which Chromium's canvas.toBlob waits up to 1 s for idle time
before encoding a JPEG.

Writes fps over time, round trips, gaps between sends (max, p99), and stalls (a run of 2 s
or more sending under 3 fps) to benchmarks/results/live_soak_DATE_LABEL.json, with the CPU's
features and the machine's load average, which matters: the page competes for the CPU.
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from _common import emit
from web_load import free_port

from emolens._machine import describe_machine

RESULTS = Path(__file__).parent / "results"

# Runs before any script of the page: counts what the page sends and receives on its socket,
# how long main-thread toBlob takes to call back, and the camera's presented frames.
PROBE = """
(() => {
  const soak = window.__soak = { sends: [], answers: [], toBlobMs: [], camera: 0, cameraStarted: false };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== "string") soak.sends.push(performance.now());
    if (!this.__soaked) {
      this.__soaked = true;
      this.addEventListener("message", () => soak.answers.push(performance.now()));
    }
    return send.call(this, data);
  };
  const toBlob = HTMLCanvasElement.prototype.toBlob;
  HTMLCanvasElement.prototype.toBlob = function (callback, ...rest) {
    const t0 = performance.now();
    return toBlob.call(this, blob => { soak.toBlobMs.push(performance.now() - t0); callback(blob); }, ...rest);
  };
  soak.watchCamera = video => {
    if (soak.cameraStarted) return;
    soak.cameraStarted = true;
    const tick = () => { soak.camera++; video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
  };
})();
"""

# --busy: the page's main thread never idles (8 ms tasks back to back), as on a loaded machine.
BUSY = """(() => {
  const ch = new MessageChannel();
  ch.port1.onmessage = () => {
    const t = performance.now();
    while (performance.now() - t < 8);
    ch.port2.postMessage(0);
  };
  ch.port2.postMessage(0);
})();"""

# One sample: what happened since the last one (the arrays are emptied as they are read).
SAMPLE = """() => {
  const s = window.__soak, take = a => a.splice(0, a.length);
  const video = document.getElementById("camera");
  if (video && video.srcObject) s.watchCamera(video);
  const live = window.emolensLive;
  const out = { now: performance.now(), sends: take(s.sends), answers: take(s.answers), toBlobMs: take(s.toBlobMs),
                camera: s.camera, stats: document.getElementById("stats").textContent,
                hidden: document.hidden, live: live ? JSON.parse(JSON.stringify(live.snapshot())) : null };
  s.camera = 0;
  return out;
}"""


def face_clip(path: Path, *, seconds: int = 8, fps: int = 15, faces: int = 3) -> Path:
    """A Y4M loop of `faces` astronaut faces drifting on smooth closed paths (frame n == frame 0)."""
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:200, 140:310]
    side = 150
    face = cv2.resize(face, (int(side * 170 / 180), side), interpolation=cv2.INTER_AREA)
    h, w = face.shape[:2]
    n = seconds * fps
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(n):
            frame = np.full((480, 640, 3), (90, 110, 120), np.uint8)
            phase = 2 * np.pi * i / n
            for k in range(faces):
                cx = 110 + k * 210 + 40 * np.sin(phase + 2.1 * k)
                cy = 240 + 60 * np.cos(phase + 1.3 * k)
                x, y = int(cx - w / 2), int(cy - h / 2)
                x, y = max(0, min(640 - w, x)), max(0, min(480 - h, y))
                frame[y : y + h, x : x + w] = face if k % 2 == 0 else face[:, ::-1]
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def stalls(sent_per_s: list[int], *, below: int = 3, at_least_s: int = 2) -> list[dict]:
    """Runs of `at_least_s` or more consecutive seconds in which fewer than `below` frames were sent."""
    runs, start = [], None
    for i, n in enumerate([*sent_per_s, below]):  # the sentinel closes a run at the end
        if n < below and start is None:
            start = i
        elif n >= below and start is not None:
            if i - start >= at_least_s:
                runs.append({"from_s": start, "seconds": i - start, "sent": sum(sent_per_s[start:i])})
            start = None
    return runs


def soak(base: str, camera: Path, minutes: float, shots: Path | None, *, busy: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    samples = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.add_init_script(PROBE)
            page.goto(base + "/")
            page.click("#start")
            page.wait_for_function("() => window.__soak.answers.length > 0", timeout=60_000)
            if busy:
                page.evaluate(BUSY)
            page.evaluate(SAMPLE)  # start counting from the first answer
            end = time.monotonic() + 60 * minutes
            next_at = time.monotonic() + 1
            while time.monotonic() < end:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1
                samples.append(page.evaluate(SAMPLE))
            if shots:
                page.screenshot(path=str(shots / "live_soak.png"))
        finally:
            browser.close()
    return {"samples": samples, "page_errors": errors}


def summarise(samples: list[dict]) -> dict:
    sends = [t for s in samples for t in s["sends"]]
    gaps = list(np.diff(sends)) if len(sends) > 1 else []
    t0 = samples[0]["now"] - 1000
    per_s = [0] * len(samples)
    for t in sends:
        per_s[min(len(samples) - 1, max(0, int((t - t0) // 1000)))] += 1
    to_blob = [ms for s in samples for ms in s["toBlobMs"]]
    rtt = [float(m.group(1)) for s in samples if (m := re.search(r"round\strip\s(\d+)\sms", s["stats"]))]
    found = stalls(per_s)
    # Each gap split in two: the answer's wait (last send before an answer -> the answer) and the
    # page's own time (last answer before a send -> the send), to tell server from page stalls.
    answers = [t for s in samples for t in s["answers"]]
    waits = [a - sends[i - 1] for a in answers if (i := bisect.bisect_right(sends, a))]
    own = [t - answers[i - 1] for t in sends if (i := bisect.bisect_right(answers, t))]
    return {
        "seconds": len(samples),
        "frames_sent": len(sends),
        "answers": len(answers),
        "sent_fps_mean": round(len(sends) / max(1, len(samples)), 2),
        "camera_fps_mean": round(sum(s["camera"] for s in samples) / max(1, len(samples)), 2),
        "send_gap_ms": {"p50": percentile(gaps, 50), "p99": percentile(gaps, 99), "max": percentile(gaps, 100)},
        "round_trip_ms_shown": {"p50": percentile(rtt, 50), "max": percentile(rtt, 100)},
        "answer_wait_ms": {"p50": percentile(waits, 50), "p99": percentile(waits, 99), "max": percentile(waits, 100)},
        "page_answer_to_send_ms": {"p50": percentile(own, 50), "p99": percentile(own, 99), "max": percentile(own, 100)},
        "to_blob_ms": {
            "calls": len(to_blob),
            "p50": percentile(to_blob, 50),
            "p99": percentile(to_blob, 99),
            "max": percentile(to_blob, 100),
            "over_900": sum(ms > 900 for ms in to_blob),
        },
        "stalls": {"count": len(found), "seconds": sum(r["seconds"] for r in found), "runs": found},
        "hidden_seconds": sum(bool(s["hidden"]) for s in samples),
        "sent_fps_per_s": per_s,
        "camera_fps_per_s": [s["camera"] for s in samples],
        "stats_every_10_s": [s["stats"].replace("\xa0", " ") for s in samples[::10]],
        "page_state_every_10_s": [s["live"] for s in samples[::10]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--model", default=None, help="a shipped model's name or an ONNX file (default: the server's)")
    parser.add_argument("--label", default="run", help="goes in the file name, e.g. before or after")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/live_soak_DATE_LABEL.json")
    parser.add_argument("--busy", action="store_true", help="keep the page's main thread busy (no idle time)")
    parser.add_argument("--screenshots", type=Path, default=None, help="a folder for a screenshot at the end")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        camera = face_clip(Path(tmp) / "faces.y4m")
        port = free_port()
        cmd = [sys.executable, "-m", "emolens.cli", "serve", "--port", str(port), "--data-dir", f"{tmp}/data"]
        if args.model:
            cmd += ["--model", args.model]
        with open(f"{tmp}/server.log", "wb") as log:
            server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/api/v1/health", timeout=2).read()
                    break
                except OSError:
                    if server.poll() is not None:
                        raise RuntimeError(Path(f"{tmp}/server.log").read_text()) from None
                    time.sleep(0.2)
            run = soak(base, camera, args.minutes, args.screenshots, busy=args.busy)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "label": args.label,
        "machine": describe_machine(),
        "cores": os.cpu_count(),
        "load_avg_1_5_15_before": [round(x, 2) for x in load_before],
        "load_avg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "minutes": args.minutes,
        "busy_main_thread": args.busy,
        "model": args.model or "the server's default",
        "page_errors": run["page_errors"],
        **summarise(run["samples"]),
    }
    out = args.out or RESULTS / f"live_soak_{datetime.date.today().isoformat()}_{args.label}.json"
    emit(result, out)


if __name__ == "__main__":
    main()
