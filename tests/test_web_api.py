from __future__ import annotations

import io
import json
import re
import time

import pytest

from conftest import jpeg_bytes
from emolens.labels import EMOTIONS


def _wait_for(client, job_id, statuses=("done", "failed", "cancelled"), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']}")


def test_health_and_headers(client):
    r = client.get("/api/v1/health")
    assert r.status_code == 200 and r.get_json()["labels"] == list(EMOTIONS)
    body = r.get_json()
    assert body["status"] == "ok" and body["self_check"]["ok"] and body["self_check"]["faces"] == 24
    assert (
        "features" in body["cpu"] and body["onnxruntime"] and body["models"][0]["role"].startswith("emotion classifier")
    )
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_post_image(client, astronaut_bgr):
    r = client.post("/api/v1/images", data={"image": (io.BytesIO(jpeg_bytes(astronaut_bgr)), "a.jpg")})
    assert r.status_code == 200
    body = r.get_json()
    assert (body["width"], body["height"]) == (512, 512)
    (face,) = body["faces"]
    assert set(face) == {"box", "detection_score", "emotion", "confidence", "uncertain", "scores"} and set(
        face["scores"]
    ) == set(EMOTIONS)
    assert face["detection_score"] > 0


def test_detector_options_reach_the_recognizer(app, client, astronaut_bgr):
    """`emolens serve --detector retinaface --detect-size 256` ends up in these two settings."""
    app.config.update(DETECTOR="retinaface", DETECTOR_OPTIONS={"max_side": 256})
    r = client.post("/api/v1/images", data={"image": (io.BytesIO(jpeg_bytes(astronaut_bgr)), "a.jpg")})
    assert r.status_code == 200 and len(r.get_json()["faces"]) == 1
    with app.app_context():
        from emolens.web.extensions import get_recognizer

        recognizer = get_recognizer()
        assert recognizer.detector.max_side == recognizer.photo_detector.max_side == 256  # photos too, unless set
        # Many threads share these sessions: their threads must never spin (see _ort.cpu_session).
        for session in (recognizer.classifier.session, recognizer.detector.session):
            assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize(("settings", "faces"), [({}, 3), ({"PHOTO_DETECT_SIZE": 640}, 0)])
def test_uploaded_photos_are_detected_at_1280_px(app, client, phone_photo, settings, faces):
    """A phone's group photo keeps its small faces (detected at 1280 px) while the live camera
    and video jobs keep 640 px; `emolens serve --photo-detect-size 640` gives the old answer."""
    app.config.update(DETECTOR="retinaface", **settings)  # the server's default detector
    r = client.post("/api/v1/images", data={"image": (io.BytesIO(jpeg_bytes(phone_photo)), "group.jpg")})
    assert r.status_code == 200 and len(r.get_json()["faces"]) == faces
    with app.app_context():
        from emolens.web.extensions import get_recognizer

        assert get_recognizer().detector.max_side == 640


@pytest.mark.parametrize(
    "data, status, code",
    [
        ({}, 400, "missing_file"),
        ({"image": (io.BytesIO(b"not an image at all"), "photo.jpg")}, 415, "invalid_image"),
        ({"image": (io.BytesIO(b"\xff\xd8\xff\xe0" + b"\x00" * 50), "truncated.jpg")}, 415, "invalid_image"),
        ({"image": (io.BytesIO(b""), "empty.png")}, 415, "invalid_image"),
    ],
)
def test_post_image_errors(client, data, status, code):
    r = client.post("/api/v1/images", data=data)
    assert r.status_code == status
    assert r.get_json()["error"]["code"] == code and r.get_json()["error"]["message"]


def test_oversize_is_413_json(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    r = client.post("/api/v1/images", data={"image": (io.BytesIO(b"x" * 5000), "big.jpg")})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "payload_too_large"


def test_image_pixel_cap(app, client, astronaut_bgr):
    app.config["MAX_IMAGE_PIXELS"] = 100_000
    r = client.post("/api/v1/images", data={"image": (io.BytesIO(jpeg_bytes(astronaut_bgr)), "a.jpg")})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "image_too_large"


def test_video_job_lifecycle(client, tmp_path, astronaut_bgr):
    from test_video import make_clip

    clip = make_clip(tmp_path / "c.mp4", astronaut_bgr, frames=10)
    r = client.post("/api/v1/videos", data={"video": (io.BytesIO(clip.read_bytes()), "../../etc/passwd.mp4")})
    assert r.status_code == 202
    job_id = r.get_json()["job_id"]
    assert r.get_json()["status_url"] == f"/api/v1/jobs/{job_id}"
    job = _wait_for(client, job_id)
    assert job["status"] == "done" and job["progress"] == 1.0
    assert job["created"] <= job["started"] <= job["finished"]
    assert job["processing_s"] == round(job["finished"] - job["started"], 2) > 0
    result = client.get(f"/api/v1/jobs/{job_id}/result").get_json()
    assert result["processing_s"] == job["processing_s"] and result["filename"] == job["filename"]
    assert result["summary"]["tracks"]["1"]["frames"] == 10
    with client.get(result["files"]["video"]) as mp4:
        assert mp4.status_code == 200 and mp4.data[4:8] == b"ftyp"
    with client.get(result["files"]["csv"]) as csv_file:
        assert csv_file.data.startswith(b"time,frame,track_id")
        times = [float(line.split(",")[0]) for line in csv_file.data.decode().splitlines()[1:]]
    with client.get(result["files"]["series"]) as series_file:  # the page's chart: every frame of a short clip
        series = json.loads(series_file.data)["tracks"]["1"]
    assert series["time"] == pytest.approx(times) and all(len(v) == 10 for v in series["scores"].values())
    assert [j["job_id"] for j in client.get("/api/v1/jobs").get_json()["jobs"]] == [job_id]
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize(
    "payload, status, code",
    [
        (b"random bytes, not a video", 415, "invalid_video"),
        (b"", 400, "empty_file"),
    ],
)
def test_video_upload_errors(client, payload, status, code):
    r = client.post("/api/v1/videos", data={"video": (io.BytesIO(payload), "clip.mp4")})
    assert r.status_code == status and r.get_json()["error"]["code"] == code


def test_truncated_video_and_image_as_video(client, tmp_path, astronaut_bgr):
    from test_video import make_clip

    data = make_clip(tmp_path / "c.mp4", astronaut_bgr, frames=10).read_bytes()
    r = client.post("/api/v1/videos", data={"video": (io.BytesIO(data[:500]), "cut.mp4")})
    assert r.status_code == 415 and r.get_json()["error"]["code"] == "invalid_video"
    message = r.get_json()["error"]["message"]
    assert message == (
        "upload: not a readable video (Invalid data found when processing input; the file may be truncated or damaged)"
    )  # no FFmpeg error number, no server path
    # FFmpeg opens a JPEG as a one-frame stream: refused as a still image, whatever the name says
    r = client.post("/api/v1/videos", data={"video": (io.BytesIO(jpeg_bytes(astronaut_bgr)), "x.mp4")})
    assert r.get_json()["error"]["message"] == "upload: this is a still image (JPEG), not a video"


def test_video_limits(app, client, tmp_path, astronaut_bgr):
    from test_video import make_clip

    clip = make_clip(tmp_path / "c.mp4", astronaut_bgr, frames=10)
    app.config["MAX_VIDEO_SECONDS"] = 0.5
    r = client.post("/api/v1/videos", data={"video": (io.BytesIO(clip.read_bytes()), "c.mp4")})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "video_too_long"
    assert not list((tmp_path / "data" / "uploads").iterdir())  # nothing kept
    app.config.update(MAX_VIDEO_SECONDS=600, MAX_VIDEO_PIXELS=1280 * 720)
    r = client.post(
        "/api/v1/videos",
        data={
            "video": (
                io.BytesIO(make_clip(tmp_path / "big.mp4", astronaut_bgr, frames=2, size=(1920, 1080)).read_bytes()),
                "b.mp4",
            )
        },
    )
    assert (
        r.status_code == 413 and r.get_json()["error"]["message"] == "video is 1920x1080; the limit is 1280x720 (720p)"
    )
    page = client.get("/video").text
    assert "up to 200 MB, 10 minutes and 1280x720 (720p)" in page  # the page says it before an upload


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/jobs/0123456789abcdef0123456789abcdef",
        "/api/v1/jobs/../../etc",
        "/api/v1/jobs/nope/result",
        "/api/v1/nothing",
    ],
)
def test_unknown_is_404_json(client, url):
    r = client.get(url)
    assert r.status_code == 404 and "error" in r.get_json()


def test_token(app, client, astronaut_bgr):
    app.config["TOKEN"] = "s3cret"
    assert client.get("/api/v1/health").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/api/v1/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/v1/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    page = client.get("/?token=s3cret")
    assert page.status_code == 200 and "emolens_token" in page.headers.get("Set-Cookie", "")
    assert client.get("/api/v1/health").status_code == 200  # the cookie now carries it


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_gets_html_error_pages_and_the_api_keeps_json(app, client):
    missing = client.get("/no-such-page", headers=BROWSER)
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "Page not found" in missing.text and 'href="/image"' in missing.text
    # scripts and fetch() (Accept: */*) and anything under /api/ get JSON, whatever they accept
    assert client.get("/no-such-page").get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/nope", headers=BROWSER).get_json()["error"]["code"] == "not_found"
    app.config["TOKEN"] = "s3cret"
    locked = client.get("/video", headers=BROWSER)
    assert locked.status_code == 401 and locked.mimetype == "text/html"
    assert 'name="token"' in locked.text and 'action="/video"' in locked.text  # a form that asks for it
    assert "s3cret" not in locked.text and "asks for an access token." in locked.text
    assert "the one given is not it" in client.get("/video?token=wrong", headers=BROWSER).text
    assert client.get("/video").get_json()["error"]["code"] == "unauthorized"


def test_openapi_matches_routes(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, ops in spec["paths"].items() for method in ops if method != "parameters"
    }
    actual = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}")
            actual |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == actual


@pytest.mark.parametrize("url", ["/", "/cameras", "/video", "/image", "/model", "/api"])
def test_pages_render_without_inline_script(client, url):
    r = client.get(url)
    assert r.status_code == 200 and b"<main>" in r.data
    html = r.data.decode()
    assert "<script>" not in html and "onclick" not in html


def test_models_listed_and_chosen_by_name(client, astronaut_bgr):
    listed = client.get("/api/v1/models").get_json()
    assert [m["name"] for m in listed["models"]] == ["compact", "accurate"]
    assert listed["models"][0]["multiply_adds_per_view"] < listed["models"][1]["multiply_adds_per_view"] / 5
    assert client.get("/api/v1/model?name=compact").get_json()["arch"] == "vggface48_slim"
    assert client.get("/api/v1/model?name=nope").status_code == 404
    image = jpeg_bytes(astronaut_bgr)
    r = client.post("/api/v1/images", data={"image": (io.BytesIO(image), "a.jpg"), "model": "compact"})
    assert r.status_code == 200 and r.get_json()["model"] == "compact"
    assert r.get_json()["faces"][0]["emotion"] == "happy"  # the shipped compact model, not the test's tiny one
    r = client.post("/api/v1/images", data={"image": (io.BytesIO(image), "a.jpg"), "model": "/etc/passwd"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_model"


def test_pages_offer_the_shipped_models_and_the_model_page_shows_both_cards(client, app):
    image_page = client.get("/image").get_data(as_text=True)
    # the test app serves its own file, so the menu starts on "the server's own", then the shipped names
    assert '<option value="" selected>' in image_page
    assert '<option value="compact">' in image_page and '<option value="accurate">' in image_page
    app.config["STREAM_MODEL"] = "compact"
    assert '<option value="compact" selected>' in client.get("/").get_data(as_text=True)
    model_page = client.get("/model").get_data(as_text=True)
    assert 'id="compact"' in model_page and 'id="accurate"' in model_page
    assert "vggface48_slim" in model_page and "vggface48" in model_page
    assert "Fine-tuned from emolens_vggface48.onnx as shipped before" in model_page  # the accurate card says so
    for name in ("compact", "accurate"):
        figure = client.get(f"/model/{name}/confusion.png")
        assert figure.status_code == 200 and figure.data[:4] == b"\x89PNG"
    assert client.get("/model/nope/confusion.png").status_code == 404


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"DETECTOR": "yolo"}, "unknown detector 'yolo'; choose from haar, retinaface"),
        ({"DETECTOR_OPTIONS": {"max_side": 32}}, "must be at least 64 pixels, got 32"),
        ({"DETECTOR_OPTIONS": {"size": 320}}, "unknown retinaface detector option(s) size"),
        ({"PHOTO_DETECT_SIZE": 10}, "must be at least 64 pixels, got 10"),
        ({"MAX_WORKERS": -1}, "MAX_WORKERS must be a whole number, 0 or more; got -1"),
    ],
)
def test_bad_settings_are_refused_when_the_app_is_built(tmp_path, settings, message):
    from emolens.web import create_app

    with pytest.raises(ValueError, match=re.escape(message)):
        create_app({"TESTING": True, "DATA_DIR": str(tmp_path), **settings})
