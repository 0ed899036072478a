"""Per-app shared objects, kept in ``app.extensions`` (no module-level state)."""

from __future__ import annotations

import threading

from flask import Flask, current_app

from emolens.inference._ort import set_spinning
from emolens.inference.detector import create_detector
from emolens.inference.recognizer import EmotionRecognizer


def init_app(app: Flask) -> None:
    app.extensions["emolens_recognizer"] = None
    app.extensions["emolens_lock"] = threading.Lock()


def get_recognizer() -> EmotionRecognizer:
    """The app's recognizer, loaded on first use (thread-safe, shared by all requests)."""
    ext = current_app.extensions
    if ext["emolens_recognizer"] is None:
        with ext["emolens_lock"]:
            if ext["emolens_recognizer"] is None:
                config = current_app.config
                set_spinning(False)  # requests, live sockets and jobs run these sessions at once
                detector = create_detector(config["DETECTOR"], **config["DETECTOR_OPTIONS"])
                ext["emolens_recognizer"] = EmotionRecognizer(config["MODEL_PATH"], detector=detector)
    return ext["emolens_recognizer"]
