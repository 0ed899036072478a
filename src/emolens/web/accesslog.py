"""One log line per request: method, path, status and milliseconds.

gunicorn's own access log is off (see server.py) because it writes the query string, where a
browser's ``?token=`` travels. Here only ``request.path`` is written: never the query string,
a header, a cookie or a body, so neither a token nor an upload's content reaches the log.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

logger = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Time every request; register before anything that may refuse one (the token check),
    so that refusals are timed and logged too."""

    @app.before_request
    def _start_clock() -> None:
        g.emolens_t0 = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        t0 = g.get("emolens_t0")
        ms = 1000 * (time.perf_counter() - t0) if t0 is not None else float("nan")
        logger.info("%s %s %s %.1f ms", request.method, request.path, response.status_code, ms)
        return response
