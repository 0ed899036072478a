"""The live camera WebSocket: JPEG frames in, one JSON message of faces out per frame.

Back-pressure: the browser sends a frame only after the answer to the previous one, and
the server, before working on a frame, drains whatever else already arrived and keeps only
the newest, so a client that floods cannot build a queue. Frames are never stored.

Every answer to a frame carries ``frame``: how many frames (binary messages) this connection
had received up to the one answered, counting dropped ones. A page that resends after an
answer took too long can so tell the late answer to an older frame from the one it waits for.

Text messages are controls: ``{"type": "reset"}`` ends every track (the camera changed), and
``{"type": "stop"}`` asks the server to close the connection. A page that stops should send
that rather than close the socket itself: the answer to a frame can be on its way when the
page's close arrives, and the WebSocket library's reader thread answers a close frame while
this handler may be sending, so the answer can follow the server's close frame (browsers report
"Data frame received after close"). Closed from this handler, no answer comes after the close.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app, request
from flask_sock import ConnectionClosed, Sock

from emolens.errors import ImageDecodeError
from emolens.inference.images import decode_image
from emolens.inference.pipeline import Frame, FrameResult, StreamProcessor, run_stream
from emolens.web.errors import ApiError

logger = logging.getLogger(__name__)
sock = Sock()


def _newest(ws: Any, first: bytes | str) -> tuple[bytes | None, int, list[str]]:
    """The newest frame that queued up while the last one was processed, how many frames
    were dropped for it, and every control message (text) among them, in order: those are
    never dropped (a reset followed at once by a frame must still reset)."""
    frame, dropped, controls = None, 0, []
    message = first
    while message is not None:
        if isinstance(message, str):
            controls.append(message)
        else:
            dropped += frame is not None
            frame = message
        message = ws.receive(timeout=0)
    return frame, dropped, controls


def control_type(message: str) -> str | None:
    """The ``type`` of a control message (``{"type": "reset"}``), None for any other text."""
    try:
        parsed = json.loads(message) if message.strip().startswith("{") else None
    except ValueError:
        return None
    return parsed.get("type") if isinstance(parsed, dict) else None


def _browser_frames(ws: Any, processor: StreamProcessor, limit: int) -> Iterator[Frame]:
    """The browser as a frame source: its newest JPEG per turn, decoded, with the frames dropped for it.

    Control messages are acted on here, before the frame that follows them; a frame too large
    or undecodable gets an error message and is skipped. Ends when the browser asks to stop
    or disconnects.
    """
    received = 0  # binary messages so far, dropped ones included: the answers' "frame"
    start = time.time()
    try:
        while True:
            message = ws.receive()
            if message is None:
                continue
            message, dropped, controls = _newest(ws, message)
            kinds = [control_type(c) for c in controls]
            if "stop" in kinds:  # the page is done: the handler returns and closes the connection
                return
            if "reset" in kinds:
                processor.reset()
            if message is None:
                continue
            received += dropped + 1
            arrived = time.time()
            if len(message) > limit:
                ws.send(
                    json.dumps(
                        {
                            "frame": received,
                            "error": {"code": "frame_too_large", "message": f"frames are limited to {limit} bytes"},
                        }
                    )
                )
                continue
            try:
                image = decode_image(message, name="frame", max_pixels=4_000_000)
            except ImageDecodeError as exc:
                ws.send(json.dumps({"frame": received, "error": {"code": "invalid_frame", "message": str(exc)}}))
                continue
            # the frame's index counts every frame received, so a dropped frame leaves a gap
            yield Frame(image, arrived - start, received - 1, arrived, dropped)
    except ConnectionClosed:
        return


@sock.route("/ws/live")
def live(ws: Any) -> None:
    from emolens.web.extensions import choose_model, get_recognizer

    try:
        model = choose_model(request.args.get("model"), stream=True)
    except ApiError as exc:
        ws.send(json.dumps(exc.to_dict()))
        return
    # this connection's frames, in order; a cut (camera switched) ends every track
    processor = StreamProcessor(get_recognizer(model), max_missed=5)

    def answer(result: FrameResult) -> None:
        image = result.frame.image
        ws.send(
            json.dumps(
                {
                    "width": image.shape[1],
                    "height": image.shape[0],
                    "frame": result.frame.index + 1,
                    "dropped": result.frame.dropped,
                    "server_ms": round(1000 * (time.time() - result.frame.wall_time), 1),
                    "faces": [f.to_dict() for f in result.faces],
                }
            )
        )

    try:
        run_stream(
            _browser_frames(ws, processor, current_app.config["LIVE_MAX_FRAME_BYTES"]), processor, on_result=answer
        )
    except ConnectionClosed:  # gone while the answer was sent
        pass


def init_app(app: Flask) -> None:
    sock.init_app(app)
