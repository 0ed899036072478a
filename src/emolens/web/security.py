"""Security headers and the optional access token."""

from __future__ import annotations

import hmac
import os

from flask import Flask, Response, request

from emolens.web.errors import ApiError

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def configured_token(explicit: str | None) -> str | None:
    """The token the server requires: the one given (``--token``, ``TOKEN``), else ``EMOLENS_TOKEN``; None: open."""
    return explicit or os.environ.get("EMOLENS_TOKEN") or None


def token_ok(supplied: str | None, expected: str) -> bool:
    return supplied is not None and hmac.compare_digest(supplied.encode(), expected.encode())


def init_app(app: Flask) -> None:
    @app.before_request
    def _require_token() -> None:
        expected = app.config.get("TOKEN")
        if not expected or request.endpoint == "static":
            return None
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or None
        supplied = supplied or request.args.get("token") or request.cookies.get("emolens_token")
        if not token_ok(supplied, expected):
            raise ApiError(401, "unauthorized", "a valid token is required (Authorization: Bearer TOKEN or ?token=)")
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        expected = app.config.get("TOKEN")
        if expected and request.args.get("token") and token_ok(request.args.get("token"), expected):
            # a page opened with ?token= keeps working for its own API calls and WebSocket
            response.set_cookie("emolens_token", expected, httponly=True, samesite="Strict", secure=request.is_secure)
        return response
