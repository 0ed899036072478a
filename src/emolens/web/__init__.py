"""The emolens web UI and REST API (Flask). Imports inference, never training."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from flask import Flask

from emolens.errors import SettingsError

logger = logging.getLogger(__name__)


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("emolens", appauthor=False))


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. ``test_config`` overrides the defaults in :mod:`emolens.web.config`.

    Example:
        >>> app = create_app({"DATA_DIR": "/tmp/emolens", "TOKEN": "s3cret"})
    """
    from emolens.web import (
        accesslog,
        api,
        camera_views,
        cameras,
        config,
        errors,
        extensions,
        jobs,
        live,
        pages,
        security,
    )

    app = Flask(__name__)
    app.config.from_object(config)
    if test_config:
        app.config.update(test_config)
    if not app.config.get("DATA_DIR"):
        app.config["DATA_DIR"] = str(default_data_dir())
    app.config["TOKEN"] = security.configured_token(app.config.get("TOKEN"))
    app.config.setdefault("SECRET_KEY", secrets.token_hex(16))
    _check_settings(app.config)
    Path(app.config["DATA_DIR"]).mkdir(parents=True, exist_ok=True)

    accesslog.init_app(app)  # first: its clock starts before the token check may refuse a request
    errors.init_app(app)
    security.init_app(app)
    extensions.init_app(app)
    jobs.init_app(app)
    cameras.init_app(app)
    live.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    camera_views.init_app(app)
    return app


def _check_settings(config: dict) -> None:
    """Refuse bad settings at start-up, as the CLI refuses bad flags, not at the first request."""
    from emolens.inference.detector import check_detector

    check_detector(config["DETECTOR"], config["DETECTOR_OPTIONS"])
    if config["PHOTO_DETECT_SIZE"] is not None:
        check_detector(config["DETECTOR"], {"max_side": config["PHOTO_DETECT_SIZE"]})
    for name in ("MAX_WORKERS", "MAX_CAMERAS"):
        if not isinstance(config[name], int) or config[name] < 0:
            raise SettingsError(f"{name} must be a whole number, 0 or more; got {config[name]!r}")
