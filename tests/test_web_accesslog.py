"""Server log lines (emolens.web.accesslog, and the job lines of emolens.jobs.executor)."""

from __future__ import annotations

import io
import logging
import re

from conftest import jpeg_bytes
from test_web_api import _wait_for

LINE = re.compile(r"^(GET|POST|DELETE) (\S+) (\d{3}) (\d+\.\d) ms$")


def _request_lines(caplog) -> list[tuple[str, str, str]]:
    found = [LINE.match(r.getMessage()) for r in caplog.records if r.name == "emolens.web.accesslog"]
    assert all(found), [r.getMessage() for r in caplog.records if r.name == "emolens.web.accesslog"]
    return [m.groups()[:3] for m in found]


def test_one_line_per_request_without_the_token_or_the_upload(app, client, caplog, astronaut_bgr):
    app.config["TOKEN"] = "s3cret-token"
    caplog.set_level(logging.INFO, logger="emolens.web")
    photo = jpeg_bytes(astronaut_bgr)
    client.get("/api/v1/jobs")  # refused: no token
    client.get("/api/v1/jobs?token=s3cret-token&x=1")
    client.post("/api/v1/images?token=s3cret-token", data={"image": (io.BytesIO(photo), "private holiday.jpg")})
    client.get("/no/such/page", headers={"Authorization": "Bearer s3cret-token"})
    assert _request_lines(caplog) == [
        ("GET", "/api/v1/jobs", "401"),
        ("GET", "/api/v1/jobs", "200"),
        ("POST", "/api/v1/images", "200"),
        ("GET", "/no/such/page", "404"),
    ]
    text = caplog.text
    assert "s3cret" not in text and "token=" not in text and "holiday" not in text
    assert len(text) < 2000  # nothing of the 100 kB photo


def test_a_job_logs_its_start_and_its_end_with_the_time_it_took(client, caplog, tmp_path, astronaut_bgr):
    from test_video import make_clip

    caplog.set_level(logging.INFO, logger="emolens")
    clip = make_clip(tmp_path / "c.mp4", astronaut_bgr, frames=5)
    upload = {"video": (io.BytesIO(clip.read_bytes()), "c.mp4")}
    job_id = client.post("/api/v1/videos", data=upload).get_json()["job_id"]
    job = _wait_for(client, job_id)
    lines = [r.getMessage() for r in caplog.records if r.name == "emolens.jobs.executor"]
    assert lines[0] == f"job {job_id} started (attempt 1)"
    took = re.fullmatch(rf"job {job_id} done in (\d+\.\d) s", lines[1])
    assert took and abs(float(took[1]) - job["processing_s"]) < 0.2
