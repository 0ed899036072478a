"""Cameras the server watches (emolens.web.cameras, camera_worker, camera_views): masking,
the SQLite store, the REST API, and a real stream served by FFmpeg, watched by two viewers."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from conftest import StreamServer, closed_by_server, free_port
from emolens.errors import SourceError
from emolens.inference.sources import check_live_spec
from emolens.inference.urls import mask_credentials

SECRET = "hunter2xyz"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("http://user:p@ss:w/rd@cam.local/video.mjpg", "http://user:***@cam.local/video.mjpg"),  # '@' in it
        ("https://tokenonly@cam.example/live", "https://***@cam.example/live"),  # a lone user may be a key
        ("http://cam/video.cgi?user=admin&pwd=secret&res=hd", "http://cam/video.cgi?user=admin&pwd=***&res=hd"),
        ("http://cam/s?Password=a&api_key=b#x", "http://cam/s?Password=***&api_key=***#x"),
        ("rtsp://10.0.0.5/stream1", "rtsp://10.0.0.5/stream1"),
        ("http://cam/path?q=a@b", "http://cam/path?q=a@b"),  # an '@' in the query is not user info
        ("/dev/video0", "/dev/video0"),
        ("", ""),
    ],
)
def test_mask_credentials(url, shown):
    assert mask_credentials(url) == shown


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("rtsp://cam/stream", "rtsp://cam/stream"),
        (" HTTP://cam/x.mjpg ", "HTTP://cam/x.mjpg"),
        ("ftp://u:secretpw@cam/x", SourceError("unsupported address")),
        ("file:///etc/passwd", SourceError("unsupported address")),
        ("/etc/passwd", SourceError("not a stream or a camera")),  # a web client never names server files
        ("clip.mp4", SourceError("not a stream or a camera")),
        ("/dev/video99", SourceError("no such camera")),
        ("99", SourceError("no such camera")),
        ("/dev/videofoo", SourceError("/dev/videoN")),
    ],
)
def test_check_live_spec(spec, expected):
    if isinstance(expected, Exception):
        with pytest.raises(SourceError, match=str(expected)) as info:
            check_live_spec(spec)
        assert "secretpw" not in str(info.value)
    else:
        assert check_live_spec(spec) == expected


def make_app(data_dir, model, **config):
    from emolens.web import create_app

    settings = {
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "IMAGE_MODEL": str(model),
        "STREAM_MODEL": str(model),
        "DETECTOR": "haar",
        "CAMERA_TIMEOUT_S": 3.0,
    }
    return create_app(settings | config)


@contextlib.contextmanager
def running(app) -> Iterator:
    """The app, shut down (its cameras and jobs stopped) on the way out."""
    try:
        yield app
    finally:
        app.extensions["emolens_cameras"].shutdown()
        app.extensions["emolens_jobs"].shutdown()


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def dead_url(password: str = SECRET) -> str:
    """An address with nothing behind it (connection refused), with credentials in it."""
    return f"http://viewer:{password}@127.0.0.1:{free_port()}/live.ts?token={password}"


def test_migrations_apply_once_and_rows_persist(tmp_path, tiny_onnx):
    from emolens._db import migrate
    from emolens.web.cameras import MIGRATIONS

    with running(make_app(tmp_path, tiny_onnx)) as app:
        camera = app.test_client().post("/api/v1/cameras", json={"name": "door", "source": dead_url()}).get_json()
    db = sqlite3.connect(tmp_path / "cameras.sqlite3")
    db.isolation_level = None
    db.row_factory = sqlite3.Row
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert migrate(db, MIGRATIONS) == 1  # nothing left to apply
    row = db.execute("SELECT * FROM cameras").fetchone()
    assert row["source"].startswith("http://viewer:" + SECRET)  # kept as given: reconnecting needs it
    with running(make_app(tmp_path, tiny_onnx)) as app:
        listed = app.test_client().get("/api/v1/cameras").get_json()["cameras"]
    assert [c["id"] for c in listed] == [camera["id"]] and listed[0]["name"] == "door"
    # not resumed (TESTING), and not shown as reading: the shutdown said why it stopped, and kept the intent
    assert (listed[0]["state"], listed[0]["reason"], listed[0]["desired"]) == (
        "stopped",
        "the server stopped",
        "running",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"source": "rtsp://cam/x"}, "invalid_name"),
        ({"name": "  ", "source": "rtsp://cam/x"}, "invalid_name"),
        ({"name": "x" * 101, "source": "rtsp://cam/x"}, "invalid_name"),
        ({"name": "a"}, "invalid_source"),
        ({"name": "a", "source": f"ftp://u:{SECRET}@cam/x"}, "invalid_source"),
        ({"name": "a", "source": "/etc/passwd"}, "invalid_source"),
        ({"name": "a", "source": "/dev/video99"}, "invalid_source"),
        ({"name": "a", "source": "rtsp://cam/x", "model": "nonesuch"}, "unknown_model"),
        ({"name": "a", "source": "rtsp://cam/x", "every": 0}, "invalid_every"),
        ({"name": "a", "source": "rtsp://cam/x", "every": "2"}, "invalid_every"),
        ({"name": "a", "source": "rtsp://cam/x", "every": True}, "invalid_every"),
        (["not", "an", "object"], "invalid_body"),
    ],
)
def test_bad_cameras_are_refused_with_what_to_fix(client, body, code):
    r = client.post("/api/v1/cameras", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["code"] == code
    assert SECRET not in r.get_data(as_text=True)
    assert client.get("/api/v1/cameras").get_json() == {"cameras": []}


def test_add_list_stop_start_delete_and_the_password_is_never_shown(tmp_path, tiny_onnx, caplog):
    caplog.set_level(logging.DEBUG)
    with running(make_app(tmp_path, tiny_onnx)) as app:
        client = app.test_client()
        bodies = []

        def call(method, path, **kw):
            r = getattr(client, method)(path, **kw)
            bodies.append(r.get_data(as_text=True))
            return r

        r = call("post", "/api/v1/cameras", json={"name": "Door", "source": dead_url(), "every": 2})
        assert r.status_code == 201
        camera = r.get_json()
        assert r.headers["Location"] == f"/api/v1/cameras/{camera['id']}"
        assert camera["source"].startswith("http://viewer:***@127.0.0.1:") and camera["source"].endswith("token=***")
        assert (camera["name"], camera["every"], camera["desired"], camera["model"]) == ("Door", 2, "running", None)
        # nothing answers: a camera just added fails at once, saying why (it is not retried for ever)
        failed = wait_for(
            lambda: (c := call("get", f"/api/v1/cameras/{camera['id']}").get_json())["state"] == "failed" and c,
            what="failed",
        )
        assert "refused" in failed["reason"]
        assert [c["id"] for c in call("get", "/api/v1/cameras").get_json()["cameras"]] == [camera["id"]]
        assert call("get", f"/api/v1/cameras/{camera['id']}/snapshot.jpg").status_code == 404
        assert call("get", f"/api/v1/cameras/{camera['id']}/records").get_json()["records"] == []
        assert call("get", f"/api/v1/cameras/{camera['id']}/records?since=soon").status_code == 400
        stopped = call("post", f"/api/v1/cameras/{camera['id']}/stop").get_json()
        assert (stopped["state"], stopped["desired"]) == ("stopped", "stopped")
        started = call("post", f"/api/v1/cameras/{camera['id']}/start").get_json()
        assert started["desired"] == "running" and started["state"] in ("connecting", "failed")
        assert call("delete", f"/api/v1/cameras/{camera['id']}").status_code == 204
        assert call("get", f"/api/v1/cameras/{camera['id']}").status_code == 404
        assert call("post", f"/api/v1/cameras/{'0' * 32}/stop").status_code == 404
    assert all(SECRET not in body for body in bodies)
    logged = [r.getMessage() for r in caplog.records]
    assert any("camera" in line for line in logged)
    assert not [line for line in logged if SECRET in line]


def test_a_camera_whose_model_cannot_load_fails_alone_at_start_up(tmp_path, tiny_onnx):
    with running(make_app(tmp_path, tiny_onnx)) as app:
        camera = app.test_client().post("/api/v1/cameras", json={"name": "a", "source": dead_url()}).get_json()
    db = sqlite3.connect(tmp_path / "cameras.sqlite3")
    with db:
        db.execute("UPDATE cameras SET model = 'withdrawn'")
    db.close()
    with running(make_app(tmp_path, tiny_onnx, CAMERAS_AUTOSTART=True)) as app:
        shown = app.test_client().get(f"/api/v1/cameras/{camera['id']}").get_json()
    assert shown["state"] == "failed" and "model could not be loaded" in shown["reason"]


def test_cameras_need_the_token_when_one_is_set(tmp_path, tiny_onnx):
    with running(make_app(tmp_path, tiny_onnx, TOKEN="s3cret")) as app:
        client = app.test_client()
        assert client.get("/api/v1/cameras").status_code == 401
        assert client.post("/api/v1/cameras", json={"name": "a", "source": "rtsp://cam/x"}).status_code == 401
        assert client.get("/ws/cameras/" + "0" * 32).status_code == 401
        r = client.get("/api/v1/cameras", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_cameras_are_documented_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"post", "get"} <= paths["/cameras"].keys()
    assert {"get", "delete"} <= paths["/cameras/{camera_id}"].keys()
    for tail in ("/start", "/stop", "/records", "/snapshot.jpg"):
        assert f"/cameras/{{camera_id}}{tail}" in paths


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """The app on a real threaded server (WebSockets need one); its ws:// base."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def view(base: str, camera_id: str, frames: int, out: list) -> None:
    """A viewer: collect ``frames`` (message, JPEG) pairs."""
    import simple_websocket

    ws = simple_websocket.Client.connect(f"{base}/ws/cameras/{camera_id}")
    try:
        while len(out) < frames:
            message = json.loads(ws.receive(timeout=20))
            if message.get("frame"):
                out.append((message, ws.receive(timeout=20)))
    finally:
        ws.close()


def serve_again(stream: StreamServer, clip) -> StreamServer:
    """The stream served anew at the same address, as a camera comes back."""
    stream.kill()
    again = StreamServer(clip)
    again.port, again.url = stream.port, stream.url
    return again.start()


def next_state(ws, wanted, timeout: float = 15.0) -> dict:
    """The first JSON message of a viewer's socket for which ``wanted`` is true (JPEGs skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = ws.receive(timeout=deadline - time.monotonic())
        if isinstance(message, str) and wanted(parsed := json.loads(message)):
            return parsed
    raise AssertionError("no such message")


def test_a_real_stream_is_watched_once_for_two_viewers_and_survives_a_restart(
    tmp_path, tiny_onnx, stream_clip, monkeypatch
):
    from emolens.inference.pipeline import StreamProcessor

    steps = []  # every pipeline step in this process, whoever runs it
    step = StreamProcessor.step
    monkeypatch.setattr(StreamProcessor, "step", lambda self, frame: steps.append(frame.index) or step(self, frame))
    stream = StreamServer(stream_clip).start()
    try:
        with running(make_app(tmp_path, tiny_onnx)) as app, serving(app) as base:
            client = app.test_client()
            camera = client.post("/api/v1/cameras", json={"name": "lab", "source": stream.url}).get_json()
            url = f"/api/v1/cameras/{camera['id']}"
            wait_for(lambda: client.get(url).get_json()["state"] == "live", what="live")
            records = wait_for(lambda: client.get(url + "/records").get_json()["records"], what="records")
            assert {"wall_time", "track_id", "emotion", "box"} <= records[0].keys()
            assert records[0]["wall_time"] >= stream.started
            later = client.get(url + f"/records?since={records[-1]['wall_time']}").get_json()["records"]
            assert all(r["wall_time"] > records[-1]["wall_time"] for r in later)
            snapshot = client.get(url + "/snapshot.jpg")
            assert snapshot.mimetype == "image/jpeg"
            image = cv2.imdecode(np.frombuffer(snapshot.data, np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (240, 352, 3)

            worker = app.extensions["emolens_cameras"].worker(camera["id"])
            seen: list[list] = [[], []]
            before = len(steps)
            viewers = [threading.Thread(target=view, args=(base, camera["id"], 10, out)) for out in seen]
            for v in viewers:
                v.start()
            for v in viewers:
                v.join(timeout=30)
            during = len(steps) - before
            assert all(len(out) == 10 for out in seen)
            for out in seen:
                message, jpeg = out[-1]
                assert (message["width"], message["height"], message["state"]) == (352, 240, "live")
                assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 352, 3)
            # one recognition per frame, whatever the viewers: both saw the same frames, not two streams
            seqs = [{m["seq"] for m, _ in out} for out in seen]
            assert len(seqs[0] & seqs[1]) >= 5
            assert worker.steps == len(steps)  # the camera's worker is the only one stepping
            assert during <= max(max(s) for s in seqs) - min(min(s) for s in seqs) + 2

            # a viewer sees the operator stop the camera and start it again, and frames again
            import simple_websocket

            ws = simple_websocket.Client.connect(f"{base}/ws/cameras/{camera['id']}")
            try:
                assert json.loads(ws.receive(timeout=10))["state"] == "live"
                client.post(url + "/stop")
                assert next_state(ws, lambda m: m["state"] != "live")["state"] == "stopped"
                stream = serve_again(stream, stream_clip)  # ffmpeg -listen 1 serves one client, then ends
                client.post(url + "/start")
                back = next_state(ws, lambda m: m["frame"])
                assert back["state"] == "live" and back["seq"] < 30  # the new worker's frames, from its first
                ws.send(json.dumps({"type": "stop"}))  # the page leaves by asking; the server closes
                assert closed_by_server(ws)
            finally:
                if ws.connected:
                    ws.close()

            stream.kill()
            dropped = wait_for(
                lambda: (c := client.get(url).get_json())["state"] == "reconnecting" and c, what="reconnecting"
            )
            assert "retrying" in dropped["reason"]
        # a restart on the same data: the camera is listed again, resumed, and live again
        stream = serve_again(stream, stream_clip)
        with running(make_app(tmp_path, tiny_onnx, CAMERAS_AUTOSTART=True)) as app:
            client = app.test_client()
            assert [c["id"] for c in client.get("/api/v1/cameras").get_json()["cameras"]] == [camera["id"]]
            wait_for(lambda: client.get(url).get_json()["state"] == "live", what="live after a restart")
            wait_for(lambda: client.get(url + "/snapshot.jpg").status_code == 200, what="a frame after a restart")
    finally:
        stream.kill()


def test_the_real_server_resumes_its_cameras_after_kill_9(tmp_path, tiny_onnx, stream_clip):
    """`emolens serve` (gunicorn's worker, not TESTING): a camera added, the server killed, started
    again on the same data: reading again by itself; the password in no log line."""
    import urllib.request

    from test_web_server import Server

    def call(srv, path, body=None):
        request = urllib.request.Request(
            srv.base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "Bearer tok", "Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    stream = StreamServer(stream_clip).start()
    srv = Server(tmp_path / "data", tiny_onnx, free_port(), token="tok")
    try:
        source = stream.url.replace("http://", f"http://operator:{SECRET}@")
        camera = call(srv, "/api/v1/cameras", {"name": "hall", "source": source})
        url = f"/api/v1/cameras/{camera['id']}"
        wait_for(lambda: call(srv, url)["state"] == "live", what="live")
        srv.kill9()
        srv.stop()  # closes its log file
        log = srv.log()
        stream = serve_again(stream, stream_clip)
        srv = Server(tmp_path / "data", tiny_onnx, free_port(), token="tok")
        wait_for(lambda: call(srv, url)["state"] == "live", what="live after kill -9")
        assert call(srv, url)["source"] == source.replace(SECRET, "***")
        wait_for(lambda: call(srv, url + "/records")["records"], what="records after kill -9")
        log += srv.log()
        assert "operator:***@127.0.0.1" in log and SECRET not in log
    finally:
        srv.stop()
        stream.kill()
