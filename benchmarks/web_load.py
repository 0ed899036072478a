"""Web server load and fuzz run over loopback (run by hand; figures go in the README).

    python benchmarks/web_load.py [--seconds 15] [--fuzz N] [--detect-size PX]

Starts `emolens serve` on a free loopback port with a temporary data dir, then measures:
live WebSocket round trips for 1, 4 and 8 clients streaming 640x480 JPEG frames at up to
15 fps each (one frame in flight per client); POST /api/v1/images requests per second; and
a fuzz run of malformed and hostile uploads, counting 5xx answers and server crashes.
All traffic goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile

import cv2

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from pipeline import face_frame  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base: str, path: str, field: str, name: str, data: bytes, timeout: float = 60) -> int:
    boundary = "bench" + str(random.getrandbits(32))
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        base + path, data=body, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def live_clients(port: int, clients: int, seconds: float, jpeg: bytes) -> dict:
    import simple_websocket

    rtts: list[float] = []
    counts = [0] * clients
    errors = [0]
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{port}/ws/live")
        except Exception:
            with lock:
                errors[0] += 1
            return
        end = time.perf_counter() + seconds
        try:
            while time.perf_counter() < end:
                t = time.perf_counter()
                ws.send(jpeg)
                msg = ws.receive(timeout=10)
                rtt = time.perf_counter() - t
                if msg is None or "error" in json.loads(msg):
                    with lock:
                        errors[0] += 1
                    continue
                with lock:
                    rtts.append(rtt)
                counts[i] += 1
                time.sleep(max(0.0, 1 / 15 - rtt))  # at most 15 fps
        finally:
            ws.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rtts.sort()
    return {
        "clients": clients,
        "p50_ms": round(1000 * statistics.median(rtts), 1),
        "p95_ms": round(1000 * rtts[int(0.95 * (len(rtts) - 1))], 1),
        "fps_per_client_min": round(min(counts) / seconds, 1),
        "errors": errors[0],
    }


def image_rps(base: str, seconds: float, jpeg: bytes, threads: int = 4) -> float:
    done = [0]
    end = time.perf_counter() + seconds

    def run():
        while time.perf_counter() < end:
            assert post(base, "/api/v1/images", "image", "a.jpg", jpeg) == 200
            done[0] += 1

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] / seconds


def hostile_payloads(jpeg: bytes, png: bytes, mp4: bytes, n: int, rng: random.Random):
    """(field, filename, bytes) triples: random, truncated, bit-flipped, bombs, wrong types."""
    import zlib

    def png_header(w, h):
        def chunk(kind, body):
            return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

        ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
        idat = chunk(b"IDAT", zlib.compress(b"\0" * 100000))
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")

    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.bin", b"\0" * 50_000_000)
    zip_bomb = zbuf.getvalue()
    kinds = []
    for i in range(n):
        field = "image" if i % 2 == 0 else "video"
        source = rng.choice([jpeg, png, mp4])
        choice = i % 9
        if choice == 0:
            data = rng.randbytes(rng.randint(1, 200_000))
        elif choice == 1:
            data = source[: rng.randint(1, len(source) - 1)]
        elif choice == 2:
            data = bytearray(source)
            for _ in range(rng.randint(1, 50)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        elif choice == 3:
            data = png_header(rng.choice([65535, 100000, 30000]), rng.choice([65535, 100000, 30000]))
        elif choice == 4:
            data = zip_bomb
        elif choice == 5:
            data = b""
        elif choice == 6:
            data = source  # valid content, wrong field/extension
        elif choice == 7:
            data = b"GIF89a" + rng.randbytes(500)
        else:
            data = mp4[:64] + rng.randbytes(5000)
        name = rng.choice(["a.jpg", "a.png", "a.mp4", "../../etc/passwd", "x" * 300, "a.exe", ""])
        kinds.append((field, name or "blank", data))
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--fuzz", type=int, default=540)
    parser.add_argument("--detect-size", type=int, help="passed to `emolens serve`")
    args = parser.parse_args()
    frame = face_frame(640, 480, 1)
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    png = cv2.imencode(".png", frame)[1].tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        from pipeline import make_clip

        mp4 = make_clip(__import__("pathlib").Path(tmp) / "c.mp4", seconds=1).read_bytes()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "emolens.cli", "serve", "--port", str(port), "--data-dir", f"{tmp}/data"]
            + (["--detect-size", str(args.detect_size)] if args.detect_size else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/api/v1/health", timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.2)
            result = {"live": [live_clients(port, n, args.seconds, jpeg) for n in (1, 4, 8)]}
            result["post_images_per_s"] = round(image_rps(base, args.seconds, jpeg), 1)
            statuses: dict[int, int] = {}
            for field, name, data in hostile_payloads(jpeg, png, mp4, args.fuzz, random.Random(0)):
                path = "/api/v1/images" if field == "image" else "/api/v1/videos"
                try:
                    code = post(base, path, field, name, data)
                except OSError:
                    code = -1  # connection failure
                statuses[code] = statuses.get(code, 0) + 1
            alive = server.poll() is None
            health = urllib.request.urlopen(base + "/api/v1/health", timeout=10).status if alive else None
            result["fuzz"] = {
                "uploads": args.fuzz,
                "statuses": statuses,
                "5xx": sum(v for k, v in statuses.items() if k >= 500),
                "connection_failures": statuses.get(-1, 0),
                "server_alive": alive,
                "health_after": health,
            }
        finally:
            server.terminate()
            server.wait(20)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
