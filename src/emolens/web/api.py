"""The JSON REST API under /api/v1."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, jsonify, request, send_file, url_for

from emolens import __version__
from emolens.jobs import OUTPUTS, Job
from emolens.labels import EMOTIONS
from emolens.shipped import SHIPPED_MODELS, model_summary
from emolens.shipped import model_card as model_card_of
from emolens.web.apidoc import load_spec
from emolens.web.errors import ApiError
from emolens.web.extensions import choose_model, get_recognizer
from emolens.web.jobs import get_jobs
from emolens.web.uploads import file_field, read_image_upload, save_video_upload

if TYPE_CHECKING:
    from emolens.inference.classifier import EmotionClassifier

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/health")
def health() -> Response:
    """Status, the CPU and its features, the shipped models, and the served model's self-check."""
    from emolens.diagnostics import system_info

    classifier = get_recognizer().classifier
    check = _self_check(str(classifier.model_path), classifier)
    return jsonify(
        {
            "status": "ok" if check["ok"] else "warning",
            "version": __version__,
            "model": classifier.model_path.name,
            "labels": list(EMOTIONS),
            **system_info(check=False),
            "self_check": check,
        }
    )


@functools.cache
def _self_check(model_path: str, classifier: EmotionClassifier) -> dict:
    """Run once per served model (0.5 s): the kernels of a CPU do not change while it serves."""
    from emolens.diagnostics import self_check

    return self_check(classifier).to_dict()


@bp.post("/images")
def analyse_image() -> Response:
    model = choose_model(request.form.get("model"), stream=False)
    frame = read_image_upload(file_field(request.files, "image"))
    faces = get_recognizer(model)(frame)
    return jsonify(
        {"width": frame.shape[1], "height": frame.shape[0], "model": model, "faces": [f.to_dict() for f in faces]}
    )


@bp.post("/videos")
def submit_video() -> tuple[Response, int, dict[str, str]]:
    upload = file_field(request.files, "video")
    jobs = get_jobs()
    path, _ = save_video_upload(upload, jobs.files.uploads)
    job = jobs.create(path, upload.filename or "video")
    status_url = url_for("api.job_status", job_id=job.id)
    return jsonify({"job_id": job.id, "status_url": status_url}), 202, {"Location": status_url}


def _job_or_404(job_id: str) -> Job:
    job = get_jobs().get(job_id) if len(job_id) == 32 and job_id.isalnum() else None
    if job is None:
        raise ApiError(404, "job_not_found", f"no job {job_id!r}")
    return job


def _public(job: Job) -> dict:
    out = {
        "job_id": job.id,
        "status": job.status,
        "progress": round(job.progress, 4),
        "filename": job.filename,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        "processing_s": job.processing_s,
    }
    if job.error:
        out["error"] = job.error
    return out


@bp.get("/jobs")
def list_jobs() -> Response:
    return jsonify({"jobs": [_public(j) for j in get_jobs().recent()]})


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> Response:
    return jsonify(_public(_job_or_404(job_id)))


@bp.get("/jobs/<job_id>/result")
def job_result(job_id: str) -> Response:
    job = _job_or_404(job_id)
    if job.status != "done":
        raise ApiError(409, "job_not_done", f"job is {job.status}; results exist once it is done")
    links = {kind: url_for("api.job_file", job_id=job_id, kind=kind) for kind in OUTPUTS}
    return jsonify({**_public(job), "summary": job.summary, "files": links})


@bp.get("/jobs/<job_id>/files/<kind>")
def job_file(job_id: str, kind: str) -> Response:
    job = _job_or_404(job_id)
    if kind not in OUTPUTS:
        raise ApiError(404, "file_not_found", f"unknown file {kind!r}; one of {', '.join(OUTPUTS)}")
    path = get_jobs().files.output(job.id, kind)
    if job.status != "done" or not path.is_file():
        raise ApiError(404, "file_not_found", f"job {job_id} has no {kind} file")
    download = request.args.get("download") == "1"
    name = f"emolens-{job_id[:8]}-{OUTPUTS[kind]}"
    return send_file(path, as_attachment=download, download_name=name, conditional=True)


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> tuple[str, int]:
    """Stop and hide the job at once; its files are removed in the background."""
    _job_or_404(job_id)
    get_jobs().delete(job_id)
    return "", 204


@bp.get("/model")
def model_card() -> Response:
    """The card of a shipped model (``?name=compact``; default: the model images use)."""
    name = request.args.get("name") or current_app.config["IMAGE_MODEL"]
    card = model_card_of(name) if name in SHIPPED_MODELS else None
    if card is None:
        raise ApiError(404, "no_model_card", f"no model card for {name!r}; shipped models: {', '.join(SHIPPED_MODELS)}")
    return jsonify(card)


@bp.get("/models")
def models() -> Response:
    """The shipped models, their cards' headline figures, and which one images and streams use."""
    config = current_app.config
    listed = [
        {**model_summary(name), "card_url": f"{request.script_root}/api/v1/model?name={name}"}
        for name in SHIPPED_MODELS
    ]
    return jsonify(
        {"image_model": str(config["IMAGE_MODEL"]), "stream_model": str(config["STREAM_MODEL"]), "models": listed}
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    spec = load_spec()
    spec["info"]["version"] = __version__
    spec["servers"] = [{"url": request.host_url.rstrip("/") + "/api/v1"}]
    return jsonify(spec)
