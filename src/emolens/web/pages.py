"""HTML pages: live camera, video jobs, image, model card."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, abort, current_app, render_template

from emolens.labels import EMOTIONS

bp = Blueprint("pages", __name__)


@bp.get("/")
def live():
    return render_template("live.html", page="live", emotions=EMOTIONS)


@bp.get("/video")
def video():
    max_upload_mb = current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
    return render_template("video.html", page="video", emotions=EMOTIONS, max_upload_mb=max_upload_mb)


@bp.get("/image")
def image():
    return render_template("image.html", page="image", emotions=EMOTIONS)


@bp.get("/model")
def model():
    import json

    card_path = resources.files("emolens") / "models" / "model_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    return render_template("model.html", page="model", card=card, emotions=EMOTIONS)


@bp.get("/model/<name>.png")
def model_figure(name: str):
    if name not in ("curves", "confusion"):
        abort(404)
    path = resources.files("emolens") / "models" / f"{name}.png"
    if not path.is_file():
        abort(404)
    return Response(path.read_bytes(), mimetype="image/png")
