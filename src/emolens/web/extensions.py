"""Per-app shared objects, kept in ``app.extensions`` (no module-level state)."""

from __future__ import annotations

import threading

from flask import Flask, current_app

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
                ext["emolens_recognizer"] = EmotionRecognizer(
                    current_app.config["MODEL_PATH"], detector=current_app.config["DETECTOR"]
                )
    return ext["emolens_recognizer"]
