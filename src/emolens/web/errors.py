"""One place that turns errors into responses: JSON ``{"error": {"code", "message"}}`` for the
API and for scripts, an HTML page for a person's browser opening a page."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def error_response(status: int, code: str, message: str) -> tuple[str | Response, int]:
    """The error as an HTML page for a browser opening a page, else as JSON."""
    if _wants_html():
        title = _TITLES.get(status, code.replace("_", " ").capitalize())
        page = render_template("error.html", page="error", emotions=(), status=status, title=title, message=message)
        return page, status
    return jsonify({"error": {"code": code, "message": message}}), status


_TITLES = {401: "Access token needed", 404: "Page not found", 413: "Upload too large", 500: "Server error"}


def _wants_html() -> bool:
    """A browser navigating to a page (it asks for HTML before JSON); never for /api/ or /ws/,
    whose clients read the JSON whatever they send."""
    if request.path.startswith(("/api/", "/ws/")):
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[str | Response, int]:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[str | Response, int]:
        code = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed", 400: "bad_request"}.get(
            exc.code or 500, (exc.name or "error").lower().replace(" ", "_")
        )
        message = exc.description or exc.name
        if exc.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"] / 1e6
            message = f"upload is larger than the {limit:.0f} MB limit"
        return error_response(exc.code or 500, code, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[str | Response, int]:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server failed to handle this request; it has been logged")
