"""The web server's video jobs: one :class:`emolens.jobs.VideoJobs` per app."""

from __future__ import annotations

from flask import Flask

from emolens.inference.recognizer import EmotionRecognizer
from emolens.jobs import VideoJobs


def init_app(app: Flask) -> None:
    def factory() -> EmotionRecognizer:
        with app.app_context():
            from emolens.web.extensions import get_stream_recognizer

            return get_stream_recognizer()

    app.extensions["emolens_jobs"] = VideoJobs(
        app.config["DATA_DIR"],
        factory,
        max_workers=app.config["MAX_WORKERS"],
        retention_days=app.config["JOB_RETENTION_DAYS"],
        max_output_pixels=app.config["MAX_OUTPUT_PIXELS"],
    )


def get_jobs() -> VideoJobs:
    from flask import current_app

    return current_app.extensions["emolens_jobs"]
