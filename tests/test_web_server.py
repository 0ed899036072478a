"""The real server in a subprocess: live WebSocket, and jobs surviving kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import closed_by_server, jpeg_bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir, model, port, token=None):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable,
            "-m",
            "emolens.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--model",
            str(model),
            "--detect-size",  # the flag's path from the command line to the live recognizer
            "320",
            "--photo-detect-size",  # and this one's to the uploaded photos'
            "1280",
        ] + (["--token", token] if token else [])
        # Its log goes to a file, not a pipe: nobody reads a pipe while it serves, and a full
        # one (one line per request) would block the server.
        self.log_path = Path(data_dir).parent / f"server-{port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.get("/api/v1/health" + (f"?token={token}" if token else ""))
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.log()) from None
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def log(self) -> str:
        """What the server has written to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=10) as r:
            return json.loads(r.read())

    def post_video(self, data: bytes, name="clip.mp4"):
        return self.post_file("videos", "video", data, name)

    def post_file(self, collection: str, field: str, data: bytes, name: str):
        boundary = "emolensboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        req = urllib.request.Request(
            self.base + f"/api/v1/{collection}",
            data=body,
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def kill9(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._log.close()


@pytest.fixture
def server(tmp_path, tiny_onnx):
    srv = Server(tmp_path / "data", tiny_onnx, _free_port())
    yield srv
    srv.stop()


def test_live_websocket(server, astronaut_bgr):
    import simple_websocket

    ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{server.port}/ws/live")
    try:
        ws.send(jpeg_bytes(astronaut_bgr))
        answer = json.loads(ws.receive(timeout=30))
        assert (answer["width"], answer["height"]) == (512, 512) and answer["frame"] == 1
        (face,) = answer["faces"]
        assert face["track_id"] == 1 and face["emotion"] in face["scores"]
        ws.send(b"garbage, not a jpeg")
        invalid = json.loads(ws.receive(timeout=30))
        assert invalid["error"]["code"] == "invalid_frame" and invalid["frame"] == 2
        # a flood: stale frames are dropped instead of queued, so fewer answers than frames
        for _ in range(20):
            ws.send(jpeg_bytes(astronaut_bgr))
        answers = []
        deadline = time.time() + 30
        while time.time() < deadline:
            msg = ws.receive(timeout=2)
            if msg is None:
                break
            answers.append(json.loads(msg))
        assert 1 <= len(answers) < 20
        assert sum(a["dropped"] for a in answers) + len(answers) == 20
        # "frame" numbers every frame received, dropped ones too: the answer to frame 22 is the last
        assert [a["frame"] for a in answers] == sorted({a["frame"] for a in answers}) and answers[-1]["frame"] == 22
        assert all(a["faces"][0]["track_id"] == 1 for a in answers)  # same face, same id
        ws.send(json.dumps({"type": "reset"}))  # e.g. the camera changed: tracks and known faces go
        ws.send(jpeg_bytes(astronaut_bgr[:, ::-1].copy()))
        answer = json.loads(ws.receive(timeout=30))
        assert [f["track_id"] for f in answer["faces"]] == [1]
        # the page stops by asking: the server closes, so no answer can follow its close frame
        ws.send(jpeg_bytes(astronaut_bgr))
        ws.send(json.dumps({"type": "stop"}))
        assert closed_by_server(ws)
    finally:
        if ws.connected:
            ws.close()


def test_serve_detects_uploaded_photos_at_their_own_size(server, phone_photo):
    """`--photo-detect-size 1280` beside `--detect-size 320`: a phone's group photo keeps its ~75 px faces."""
    import cv2

    answer = server.post_file("images", "image", cv2.imencode(".jpg", phone_photo)[1].tobytes(), "group.jpg")
    assert len(answer["faces"]) == 3


def test_live_tracks_end_at_a_scene_cut(server, astronaut_bgr):
    """Another picture with a face at the same place (the camera switched): a new track, not the old one's id."""
    import cv2
    from skimage import data

    other = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (512, 512))
    other[20:260, 130:370] = astronaut_bgr[20:260, 130:370][:, ::-1]
    ws = simple_websocket_client(server)
    try:
        ids = []
        for frame in [astronaut_bgr, astronaut_bgr, other, other]:
            ws.send(jpeg_bytes(frame))
            ids.append([f["track_id"] for f in json.loads(ws.receive(timeout=30))["faces"]])
        assert ids == [[1], [1], [2], [2]]
    finally:
        ws.close()


def simple_websocket_client(server):
    import simple_websocket

    return simple_websocket.Client.connect(f"ws://127.0.0.1:{server.port}/ws/live")


def test_jobs_survive_kill_9(tmp_path, tiny_onnx, astronaut_bgr):
    from test_video import make_clip

    short = make_clip(tmp_path / "short.mp4", astronaut_bgr, frames=10).read_bytes()
    long = make_clip(tmp_path / "long.mp4", astronaut_bgr, frames=300, fps=30).read_bytes()
    port = _free_port()
    srv = Server(tmp_path / "data", tiny_onnx, port)
    try:
        done_id = srv.post_video(short)["job_id"]
        deadline = time.time() + 60
        while srv.get(f"/api/v1/jobs/{done_id}")["status"] != "done":
            assert time.time() < deadline
            time.sleep(0.2)
        before = srv.get(f"/api/v1/jobs/{done_id}/result")
        running_id = srv.post_video(long)["job_id"]
        while srv.get(f"/api/v1/jobs/{running_id}")["progress"] <= 0:
            assert time.time() < deadline
            time.sleep(0.05)
        srv.kill9()  # mid-job
        assert srv.proc.returncode == -signal.SIGKILL
    finally:
        srv.stop()

    srv = Server(tmp_path / "data", tiny_onnx, port)
    try:
        assert srv.get(f"/api/v1/jobs/{done_id}/result") == before  # finished result intact
        with urllib.request.urlopen(srv.base + before["files"]["video"], timeout=10) as r:
            assert r.read(8)[4:8] == b"ftyp"
        deadline = time.time() + 120
        while (job := srv.get(f"/api/v1/jobs/{running_id}"))["status"] in ("queued", "running"):
            assert time.time() < deadline
            time.sleep(0.2)
        assert job["status"] == "done"  # requeued after the restart and finished
        assert srv.get(f"/api/v1/jobs/{running_id}/result")["summary"]["video"]["frames_processed"] == 300
        assert not list((tmp_path / "data" / "jobs" / running_id).glob(".*partial*"))
    finally:
        srv.stop()


def _running(pid: str) -> bool:
    """Alive and not a zombie (a dead child whose parent was killed waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_worker_stops_when_the_server_is_killed_and_the_port_is_free_again(tmp_path, tiny_onnx):
    """kill -9 of `emolens serve` alone (gunicorn's master) left its worker serving an open
    WebSocket on, holding the port: a restart right after the crash failed."""
    import simple_websocket

    port = _free_port()
    srv = Server(tmp_path / "data", tiny_onnx, port)
    workers = subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 1
    ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    try:
        os.kill(srv.proc.pid, signal.SIGKILL)  # the master only, not its process group
        srv.proc.wait(10)
        deadline = time.time() + 10
        while _running(workers[0]):
            assert time.time() < deadline, "the worker outlived its master"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(simple_websocket.ConnectionClosed):  # closed by the worker's end
            ws.close()
        srv.stop()
    again = Server(tmp_path / "data", tiny_onnx, port)  # the same port, at once
    try:
        assert again.get("/api/v1/health")["status"] in ("ok", "warning")  # the tiny model fails its self-check
    finally:
        again.stop()


# simple_websocket leaves the socket of a refused handshake to the garbage collector
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_token_guards_the_websocket(tmp_path, tiny_onnx, astronaut_bgr):
    import simple_websocket

    srv = Server(tmp_path / "data", tiny_onnx, _free_port(), token="s3cret")
    try:
        with pytest.raises(simple_websocket.ConnectionError):
            simple_websocket.Client.connect(f"ws://127.0.0.1:{srv.port}/ws/live")
        ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{srv.port}/ws/live?token=s3cret")
        try:
            ws.send(jpeg_bytes(astronaut_bgr))
            assert len(json.loads(ws.receive(timeout=30))["faces"]) == 1
        finally:
            ws.close()
        # `emolens serve` logs one line per request, the token never among them
        log = srv.log()
        assert re.search(r"emolens\.web\.accesslog: GET /api/v1/health 200 \d+\.\d ms", log), log
        assert re.search(r"emolens\.web\.accesslog: GET /ws/live 401 \d+\.\d ms", log), log
        logged = [line for line in log.splitlines() if not line.startswith("emolens is serving at")]
        assert not [line for line in logged if "s3cret" in line]  # only the banner shows it, to its operator
    finally:
        srv.stop()
