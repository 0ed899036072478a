"""Cameras over HTTP: REST under /api/v1/cameras, and /ws/cameras/<id> for viewers.

A viewer's socket gets, per frame, one JSON text message (faces, state, fps, size) followed
by the annotated JPEG as a binary message; while no frame comes (connecting, reconnecting,
stopped), a JSON message alone whenever the state changes. The viewer sends nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from flask_sock import ConnectionClosed

from emolens.errors import SourceError
from emolens.inference.sources import check_live_spec
from emolens.web.cameras import get_cameras
from emolens.web.errors import ApiError
from emolens.web.extensions import choose_model
from emolens.web.live import control_type, sock

bp = Blueprint("cameras", __name__, url_prefix="/api/v1")

MAX_NAME = 100
MAX_EVERY = 30


def _camera_or_404(camera_id: str) -> dict:
    camera = get_cameras().get(camera_id) if len(camera_id) == 32 and camera_id.isalnum() else None
    if camera is None:
        raise ApiError(404, "camera_not_found", f"no camera {camera_id!r}")
    return camera


def parse_camera(body: Any) -> dict:
    """The fields of a new camera from a JSON body, checked; the source as it will be opened.

    Raises:
        ApiError: 400 naming the field that is missing or wrong.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", 'send a JSON object: {"name", "source", "model"?, "every"?}')
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise ApiError(400, "invalid_name", f"name: give the camera a name of 1 to {MAX_NAME} characters")
    source = body.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ApiError(
            400, "invalid_source", "source: give a stream URL (rtsp://, http://...) or a device (/dev/video0)"
        )
    try:
        spec = check_live_spec(source)
    except SourceError as exc:  # its message shows the address masked
        raise ApiError(400, "invalid_source", str(exc)) from None
    every = body.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= MAX_EVERY:
        raise ApiError(400, "invalid_every", f"every: a whole number from 1 to {MAX_EVERY} (analyse every Nth frame)")
    model = body.get("model") or None
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "unknown_model", "model: a shipped model's name")
    if model is not None:
        choose_model(model, stream=True)  # raises 400 for a name the server does not serve
    return {"name": name.strip(), "source": spec, "model": model, "every_nth": every}


@bp.post("/cameras")
def add_camera() -> tuple[Response, int, dict[str, str]]:
    fields = parse_camera(request.get_json(silent=True))
    store = get_cameras()
    limit = current_app.config["MAX_CAMERAS"]
    if len(store.list()) >= limit:
        raise ApiError(409, "too_many_cameras", f"this server watches at most {limit} cameras; delete one first")
    camera = store.add(**fields)
    location = url_for("cameras.camera", camera_id=camera["id"])
    return jsonify(camera), 201, {"Location": location}


@bp.get("/cameras")
def list_cameras() -> Response:
    return jsonify({"cameras": get_cameras().list()})


@bp.get("/cameras/<camera_id>")
def camera(camera_id: str) -> Response:
    return jsonify(_camera_or_404(camera_id))


@bp.post("/cameras/<camera_id>/start")
def start_camera(camera_id: str) -> Response:
    _camera_or_404(camera_id)
    return jsonify(get_cameras().start(camera_id))


@bp.post("/cameras/<camera_id>/stop")
def stop_camera(camera_id: str) -> Response:
    _camera_or_404(camera_id)
    return jsonify(get_cameras().stop(camera_id))


@bp.delete("/cameras/<camera_id>")
def delete_camera(camera_id: str) -> tuple[str, int]:
    _camera_or_404(camera_id)
    get_cameras().delete(camera_id)
    return "", 204


@bp.get("/cameras/<camera_id>/records")
def camera_records(camera_id: str) -> Response:
    """The camera's recent records (kept in memory, last 10 minutes), after ``?since=`` (epoch seconds)."""
    _camera_or_404(camera_id)
    since = _since(request.args.get("since"))
    worker = get_cameras().worker(camera_id)
    records = worker.records(since) if worker is not None else []
    return jsonify({"camera_id": camera_id, "records": [r.to_dict() for r in records]})


def _since(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ApiError(400, "invalid_since", f"since: Unix epoch seconds, e.g. 1764650000.5; got {text[:40]!r}")
    return value


@bp.get("/cameras/<camera_id>/snapshot.jpg")
def camera_snapshot(camera_id: str) -> Response:
    _camera_or_404(camera_id)
    worker = get_cameras().worker(camera_id)
    if worker is None or not worker.snapshot.jpeg:
        raise ApiError(404, "no_frame", "this camera has no frame yet (it is connecting, stopped or failed)")
    return Response(worker.snapshot.jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


@sock.route("/ws/cameras/<camera_id>")
def view_camera(ws: Any, camera_id: str) -> None:
    """Push the camera's newest frame to this viewer whenever it is ready for one."""
    store = get_cameras()
    if store.get(camera_id) is None:
        ws.send(json.dumps(ApiError(404, "camera_not_found", f"no camera {camera_id!r}").to_dict()))
        return
    seq, status = 0, ("", "")  # what this viewer was last sent: frame number, (state, reason)
    watched = None
    try:
        while ws.connected:
            if _stop_asked(ws.receive(timeout=0)):  # closed from here: see emolens.web.live
                return
            worker = store.worker(camera_id)
            if worker is None:  # stopped or deleted: say so, and look again now and then
                camera = store.get(camera_id)
                current = ("gone", "") if camera is None else (camera["state"], camera["reason"])
                if current != status:
                    ws.send(
                        json.dumps({"state": current[0], "reason": current[1], "seq": 0, "frame": False, "faces": []})
                    )
                    status = current
                if camera is None or _stop_asked(ws.receive(timeout=1.0)):  # also notices a closed socket
                    return
                continue
            if worker is not watched:  # started again: a new worker counts its frames from 1
                watched, seq = worker, 0
            snapshot, now = worker.wait_newer(seq, status, timeout=1.0)
            if snapshot.seq > seq or now != status:
                fresh = snapshot.seq > seq
                message = {
                    "state": now[0],
                    "reason": now[1],
                    "seq": snapshot.seq,
                    "frame": fresh,  # a JPEG follows this message
                    "width": snapshot.width,
                    "height": snapshot.height,
                    "fps": snapshot.fps,
                    "wall_time": snapshot.wall_time,
                    "faces": snapshot.faces,
                }
                ws.send(json.dumps(message))
                if fresh:
                    ws.send(snapshot.jpeg)
                seq, status = snapshot.seq, now
    except ConnectionClosed:
        return


def _stop_asked(message: bytes | str | None) -> bool:
    return isinstance(message, str) and control_type(message) == "stop"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
