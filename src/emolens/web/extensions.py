"""Per-app shared objects, kept in ``app.extensions`` (no module-level state)."""

from __future__ import annotations

import threading

from flask import Flask, current_app

from emolens.inference.detector import create_detector, photo_detect_side
from emolens.inference.recognizer import EmotionRecognizer
from emolens.shipped import SHIPPED_MODELS
from emolens.web.errors import ApiError


def init_app(app: Flask) -> None:
    app.extensions["emolens_recognizers"] = {}
    app.extensions["emolens_lock"] = threading.Lock()


def choose_model(requested: str | None, *, stream: bool) -> str:
    """The model a request asked for by name, or the server's default for images or streams.

    Raises:
        ApiError: 400 for a name the server does not serve.
    """
    if not requested:
        return current_app.config["STREAM_MODEL" if stream else "IMAGE_MODEL"]
    if requested not in SHIPPED_MODELS:
        raise ApiError(400, "unknown_model", f"unknown model {requested!r}; choose from {', '.join(SHIPPED_MODELS)}")
    return requested


def get_recognizer(model: str | None = None) -> EmotionRecognizer:
    """The app's recognizer for ``model`` (default: the image model), loaded on first use, shared by all requests."""
    config = current_app.config
    model = model or config["IMAGE_MODEL"]
    ext = current_app.extensions
    recognizers = ext["emolens_recognizers"]
    if model not in recognizers:
        with ext["emolens_lock"]:
            if model not in recognizers:
                # requests, live sockets and jobs run these sessions at once: their threads never spin
                if "emolens_detector" not in ext:  # one detector (thread-safe) for every model
                    options = config["DETECTOR_OPTIONS"]
                    ext["emolens_detector"] = create_detector(config["DETECTOR"], spinning=False, **options)
                photo_side = photo_detect_side(config["PHOTO_DETECT_SIZE"], config["DETECTOR_OPTIONS"].get("max_side"))
                recognizers[model] = EmotionRecognizer(
                    model, detector=ext["emolens_detector"], spinning=False, photo_detect_size=photo_side
                )
    return recognizers[model]


def get_stream_recognizer() -> EmotionRecognizer:
    """The recognizer videos and the live camera use by default (the compact model unless set otherwise)."""
    return get_recognizer(current_app.config["STREAM_MODEL"])
