"""HTML pages: live camera, the server's cameras, video jobs, image, model card, API reference."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template

from emolens import __version__
from emolens.labels import EMOTIONS
from emolens.shipped import SHIPPED_MODELS, card_asset, model_card
from emolens.web.apidoc import load_spec, reference
from emolens.web.uploads import video_size_limit

bp = Blueprint("pages", __name__)


def _model_choices(stream: bool) -> dict:
    """The shipped models a page offers, and the server's default for that page ("" when it is a file)."""
    default = str(current_app.config["STREAM_MODEL" if stream else "IMAGE_MODEL"])
    return {"models": list(SHIPPED_MODELS), "default_model": default if default in SHIPPED_MODELS else ""}


@bp.get("/")
def live() -> str:
    return render_template("live.html", page="live", emotions=EMOTIONS, **_model_choices(stream=True))


@bp.get("/cameras")
def cameras() -> str:
    """The server's cameras: added, listed and watched here; the page holds no state of its own."""
    return render_template("cameras.html", page="cameras", emotions=EMOTIONS, **_model_choices(stream=True))


@bp.get("/video")
def video() -> str:
    config = current_app.config
    limits = (
        f"up to {config['MAX_CONTENT_LENGTH'] // (1024 * 1024)} MB, {config['MAX_VIDEO_SECONDS'] // 60} minutes"
        f" and {video_size_limit(config)}"
    )
    return render_template("video.html", page="video", emotions=EMOTIONS, limits=limits)


@bp.get("/image")
def image() -> str:
    return render_template("image.html", page="image", emotions=EMOTIONS, **_model_choices(stream=False))


@bp.get("/model")
def model() -> str:
    cards = [(name, card) for name in SHIPPED_MODELS if (card := model_card(name))]
    config = current_app.config
    uses = {config["IMAGE_MODEL"]: "images", config["STREAM_MODEL"]: "videos and the live camera"}
    if config["IMAGE_MODEL"] == config["STREAM_MODEL"]:
        uses = {config["IMAGE_MODEL"]: "images, videos and the live camera"}
    return render_template("model.html", page="model", cards=cards, uses=uses, emotions=EMOTIONS)


@bp.get("/api")
def api_reference() -> str:
    """The API reference, walked from openapi.json at each request: it cannot fall behind it."""
    doc = reference(load_spec())
    doc["version"] = __version__
    return render_template("api.html", page="api", emotions=EMOTIONS, doc=doc)


@bp.get("/model/<name>/<figure>.png")
def model_figure(name: str, figure: str) -> Response:
    if name not in SHIPPED_MODELS or figure not in ("curves", "confusion"):
        abort(404)
    path = card_asset(name, f"{figure}.png")
    if not path.is_file():
        abort(404)
    return Response(path.read_bytes(), mimetype="image/png")
