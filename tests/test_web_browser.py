"""End to end in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Chromium's fake camera plays a Y4M made from a real photo, so the live page sees a face.
Screenshots of each page are saved under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_web_server import Server, _free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("EMOLENS_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (see .ci/run)")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def write_y4m(path: Path, bgr: np.ndarray, frames: int = 30) -> Path:
    """A 640x480 4:2:0 Y4M of a still photo, letterboxed."""
    canvas = np.full((480, 640, 3), 40, np.uint8)
    photo = cv2.resize(bgr, (480, 480), interpolation=cv2.INTER_AREA)
    canvas[:, 80:560] = photo
    yuv = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F15:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


def launch_chromium(pw, camera: Path):
    """Headless Debian Chromium whose fake camera plays the Y4M file `camera`, allowed at once."""
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ],
    )


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory, tiny_onnx, astronaut_bgr):
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("browser")
    camera = write_y4m(tmp / "camera.y4m", astronaut_bgr)
    server = Server(tmp / "data", tiny_onnx, _free_port())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw, camera)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        try:
            yield page, server, errors
        finally:
            browser.close()
            server.stop()


def test_live_page_draws_a_face(browser_page):
    page, server, errors = browser_page
    page.goto(server.base + "/")
    page.click("#start")
    page.wait_for_selector("#faces .face h3", timeout=30_000)
    page.wait_for_function("document.getElementById('stats').textContent.includes('fps')", timeout=30_000)
    assert "Face #1" in page.inner_text("#faces")
    # the overlay canvas has a box and label drawn on it
    drawn = page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n; }""")
    assert drawn > 500
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "live.png"))
    page.click("#stop")
    assert errors == []


def test_video_page_plays_the_result(browser_page, tmp_path, astronaut_bgr):
    """An edited clip: a face per shot, and the 2-frame last shot's face listed apart, not summarised."""
    from test_video import make_edited_clip

    page, server, errors = browser_page
    clip = make_edited_clip(tmp_path / "clip.mp4", astronaut_bgr)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.base + "/video")
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.eval_on_selector("#job-progress", "p => p.value") == 1
    page.wait_for_function(
        "() => { const v = document.getElementById('result-video'); return v.readyState >= 2 && v.duration > 0; }",
        timeout=30_000,
    )
    summary = page.inner_text("#summary")
    assert "Face #1" in summary and "Face #2" in summary and "Face #3" not in summary
    assert "% of the time" in summary  # a track's card gives its share of time, not one frame's score
    assert "All 2 faces" in summary and "% of the face time" in summary  # the whole video: short tracks left out
    assert "3 shots" in summary and "1 face seen too briefly to summarise" in summary
    assert page.locator("#jobs tbody tr").count() == 1
    # the chart comes from the bounded series, not from every frame's record
    assert any("/files/series" in url for url in requested) and not any("/files/json" in url for url in requested)
    page.screenshot(path=str(ARTIFACTS / "video.png"), full_page=True)
    assert errors == []


def test_image_page_shows_a_result(browser_page, tmp_path, astronaut_bgr):
    page, server, errors = browser_page
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page.goto(server.base + "/image")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert "Face 1" in page.inner_text("#faces")
    assert '"faces"' in page.eval_on_selector("#json", "e => e.textContent")
    page.screenshot(path=str(ARTIFACTS / "image.png"), full_page=True)
    assert errors == []


def test_model_page(browser_page):
    page, server, errors = browser_page
    page.goto(server.base + "/model")
    page.screenshot(path=str(ARTIFACTS / "model.png"), full_page=True)
    assert errors == []


def test_image_page_boxes_sit_where_the_api_puts_them_on_a_wide_photo(browser_page, tmp_path, astronaut_bgr):
    """Over 800 px wide the lines thicken; the boxes must not move (they once scaled with the lines)."""
    page, server, errors = browser_page
    wide = np.full((512, 1280, 3), 200, np.uint8)
    wide[:, 64:576], wide[:, 704:1216] = astronaut_bgr, astronaut_bgr[:, ::-1]
    photo = tmp_path / "two.jpg"
    cv2.imwrite(str(photo), wide)
    page.goto(server.base + "/image")
    for _ in range(2):  # the same file twice: the second choice analyses it again
        with page.expect_response(lambda r: "/api/v1/images" in r.url):
            page.set_input_files("#file", str(photo))
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
        assert page.eval_on_selector("#file", "e => e.value") == ""
    faces = page.evaluate("JSON.parse(document.getElementById('json').textContent).faces")
    assert len(faces) == 2
    # the stroke's colour on each box's left and right edges, halfway down, in canvas pixels
    on_edges = page.evaluate(
        """faces => {
        const ctx = document.getElementById('annotated').getContext('2d');
        const hex = c => [1, 3, 5].map(i => parseInt(c.slice(i, i + 2), 16));
        return faces.map(f => {
            const [x1, y1, x2, y2] = f.box, y = Math.round((y1 + y2) / 2), want = hex(COLORS[f.emotion]);
            return [x1, x2].every(x => {
                const d = ctx.getImageData(x, y, 1, 1).data;
                return want.every((v, i) => Math.abs(v - d[i]) < 40);
            });
        }); }""",
        faces,
    )
    assert on_edges == [True, True]
    assert page.inner_text("#faces").count("Face ") == 2
    page.screenshot(path=str(ARTIFACTS / "image_wide.png"), full_page=True)
    assert errors == []


def test_no_page_scrolls_sideways_on_a_phone(browser_page, tmp_path, astronaut_bgr):
    """390x844: every page fits its width, the video jobs table (with a job and a long name) included."""
    from test_video import make_clip

    page, server, errors = browser_page
    clip = make_clip(tmp_path / "a_rather_long_interview_recording_name_2026-12-01.mp4", astronaut_bgr, frames=10)
    with open(clip, "rb") as f:
        page.request.post(
            server.base + "/api/v1/videos",
            multipart={"video": {"name": clip.name, "mimeType": "video/mp4", "buffer": f.read()}},
        )
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})
    try:
        for path in ("/", "/cameras", "/video", "/image", "/model", "/api"):
            phone.goto(server.base + path)
            if path == "/video":
                phone.wait_for_selector("#jobs tbody tr", timeout=30_000)
            phone.screenshot(path=str(ARTIFACTS / f"phone_{path.strip('/') or 'live'}.png"), full_page=True)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width} px wide on a 390 px phone"
    finally:
        phone.close()
    assert errors == []


def test_overlay_labels_are_placed_as_the_library_places_them(browser_page):
    """drawFaces's placeLabels (common.js) and annotate.place_labels give the same places."""
    from emolens.inference.annotate import place_labels

    page, server, errors = browser_page
    page.goto(server.base + "/image")
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(300):
        n = int(rng.integers(1, 12))
        corners = rng.integers(0, [1260, 700], (n, 2))
        sides = rng.integers(8, 300, n)
        boxes = [[int(x), int(y), int(min(1280, x + s)), int(min(720, y + s))] for (x, y), s in zip(corners, sides)]
        sizes = [[int(w), int(h)] for w, h in zip(rng.integers(30, 260, n), rng.integers(12, 40, n))]
        cases.append((boxes, sizes))
    js = page.evaluate("cases => cases.map(([b, s]) => placeLabels(b, s, 1280, 720))", cases)
    assert js == [[list(r) for r in place_labels(b, s, (720, 1280))] for b, s in cases]
    assert errors == []


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_image_page_labels_cover_no_other_face_in_a_crowd(browser_page, tmp_path, viewport):
    from test_annotate import group_photo

    page, server, errors = browser_page
    photo = tmp_path / "group.jpg"
    cv2.imwrite(str(photo), group_photo(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    view = page.context.browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        view.goto(server.base + "/image")
        view.set_input_files("#file", str(photo))
        view.wait_for_selector("#result:not([hidden])", timeout=30_000)
        faces = view.evaluate("JSON.parse(document.getElementById('json').textContent).faces")
        assert len(faces) == 7 and view.inner_text("#faces").count("Face ") == len(faces)
        # every box's outline, sampled every 3 px on all four sides, is still its own colour
        covered = view.evaluate(
            """faces => {
            const ctx = document.getElementById('annotated').getContext('2d');
            const hex = c => [1, 3, 5].map(i => parseInt(c.slice(i, i + 2), 16));
            return faces.filter(f => {
                const [x1, y1, x2, y2] = f.box, want = hex(COLORS[f.emotion]), points = [];
                for (let x = x1; x < x2; x += 3) points.push([x, y1], [x, y2]);
                for (let y = y1; y < y2; y += 3) points.push([x1, y], [x2, y]);
                return !points.every(([x, y]) => {
                    const d = ctx.getImageData(x, y, 1, 1).data;
                    return want.every((v, i) => Math.abs(v - d[i]) < 40);
                });
            }).map(f => f.box); }""",
            faces,
        )
        assert covered == []
        view.screenshot(path=str(ARTIFACTS / f"image_crowd_{viewport[0]}x{viewport[1]}.png"), full_page=True)
    finally:
        view.close()
    assert errors == []


def test_live_page_stop_clears_the_faces_and_the_axis_counts_back_from_now(browser_page):
    """Issue 19, item 10: no stale card or box after Stop; the window reads '-30 s ... now'."""
    page, server, errors = browser_page
    page.goto(server.base + "/")
    page.evaluate("""() => {
        window.axisTexts = [];
        const fill = CanvasRenderingContext2D.prototype.fillText;
        CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
            if (this.canvas.id === 'timeline') window.axisTexts.push(text);
            return fill.call(this, text, ...rest);
        }; }""")
    page.click("#start")
    page.wait_for_selector("#faces .face h3", timeout=30_000)
    page.wait_for_timeout(500)
    assert "Face #1 (timeline)" in page.inner_text("#faces")
    texts = set(page.evaluate("window.axisTexts"))
    assert {"-30 s", "now"} <= texts and "30.0 s" not in texts and "0.0 s" not in texts
    page.click("#stop")
    page.wait_for_timeout(500)  # an answer in flight at Stop must not bring a card back
    assert page.locator("#faces .face").count() == 0
    assert "stopped" in page.inner_text("#faces").lower()
    drawn = page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.some((v, i) => i % 4 === 3 && v > 0); }""")
    assert drawn is False
    assert errors == []


def test_live_page_follows_one_face_in_a_crowd_and_keeps_the_cards_in_track_order(browser_page):
    """followFace sticks to its track while it is in view or briefly lost; byTrack orders cards."""
    page, server, errors = browser_page
    page.goto(server.base + "/")
    result = page.evaluate("""() => {
        const face = (id, side) => ({ track_id: id, box: [0, 0, side, side] });
        const steps = [  // [time ms, faces]: #1 starts largest; #2 grows past it; #1 leaves
            [0, [face(1, 100), face(2, 80)]],
            [100, [face(2, 120), face(1, 100)]],
            [200, [face(2, 130)]],
            [1500, [face(2, 130)]],
            [2300, [face(2, 130), face(3, 200)]],
            [2400, [face(3, 300), face(2, 130)]],
        ];
        let followed = null;
        return steps.map(([t, faces]) => {
            const r = followFace(faces, followed, t, 2000);
            followed = r.followed;
            return [r.face ? r.face.track_id : null, byTrack(faces).map(f => f.track_id)];
        }); }""")
    assert result == [
        [1, [1, 2]],
        [1, [1, 2]],  # #2 is larger now: the timeline stays with #1, the cards keep their order
        [None, [2]],  # #1 out of sight for a moment: nobody's curve is drawn in its place
        [None, [2]],
        [3, [2, 3]],  # #1 gone over 2 s: the largest face in view takes over
        [3, [2, 3]],
    ]
    assert errors == []


def test_image_page_says_it_is_analysing_and_offers_the_png_and_the_json(browser_page, tmp_path, astronaut_bgr):
    """A visible 'Analysing' line while the request runs; the downloads are what the page shows."""
    import json

    page, server, errors = browser_page
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page.goto(server.base + "/image")
    page.evaluate("""() => {  // a slow server: the answer is held back for a second
        const real = window.fetch;
        window.fetch = (...args) => new Promise(r => setTimeout(r, 1000)).then(() => real(...args)); }""")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#busy:not([hidden])", timeout=2_000)
    assert "Analysing astronaut.jpg" in page.inner_text("#busy")
    assert page.get_attribute("#drop", "aria-busy") == "true"
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.is_hidden("#busy") and page.get_attribute("#drop", "aria-busy") == "false"
    page.wait_for_selector("#download-png[href^='blob:']")
    with page.expect_download() as png:
        page.click("#download-png")
    assert png.value.suggested_filename == "astronaut-emolens.png"
    shown = page.evaluate("JSON.parse(document.getElementById('json').textContent)")
    image = cv2.imread(png.value.path())
    assert image is not None and image.shape[:2] == (shown["height"], shown["width"])
    x1, y1, x2, y2 = shown["faces"][0]["box"]
    colour = page.evaluate("e => COLORS[e]", shown["faces"][0]["emotion"])  # the box is drawn in the PNG
    want_bgr = [int(colour[i : i + 2], 16) for i in (5, 3, 1)]
    assert np.abs(image[(y1 + y2) // 2, x1].astype(int) - want_bgr).max() < 40
    with page.expect_download() as data:
        page.click("#download-json")
    assert data.value.suggested_filename == "astronaut-emolens.json"
    assert json.loads(Path(data.value.path()).read_text()) == shown
    assert errors == []


def test_live_page_exports_the_sessions_faces_as_csv_and_json(browser_page):
    """After Stop the faces received since Start download as CSV (frames.csv's columns) and JSON."""
    import csv
    import io
    import json

    page, server, errors = browser_page
    page.goto(server.base + "/")
    assert page.is_disabled("#export-csv") and page.is_disabled("#export-json")
    page.click("#start")
    page.wait_for_function("() => parseInt(document.getElementById('export-count').textContent) >= 5", timeout=30_000)
    page.click("#stop")
    with page.expect_download() as got:
        page.click("#export-csv")
    assert got.value.suggested_filename.startswith("emolens-live-") and got.value.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))
    with page.expect_download() as got:
        page.click("#export-json")
    data = json.loads(Path(got.value.path()).read_text())
    assert data["kept"] == {"seconds": 1800, "records": 100000} and data["dropped"] == 0
    assert len(rows) == len(data["frames"]) >= 5
    assert f"{len(rows)} face records" in page.inner_text("#export-count")
    assert {r["track_id"] for r in rows} == {"1"}
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times) and [int(r["frame"]) for r in rows] == list(range(1, len(rows) + 1))
    first = data["frames"][0]
    assert rows[0]["emotion"] == first["emotion"]
    assert [int(rows[0][k]) for k in ("x1", "y1", "x2", "y2")] == first["box"]
    assert abs(sum(float(rows[0][e]) for e in first["scores"]) - 1) < 1e-3
    assert errors == []


def test_live_records_are_bounded_by_age_and_by_count(browser_page):
    page, server, errors = browser_page
    page.goto(server.base + "/")
    result = page.evaluate("""() => {
        const at = times => times.map(time => ({ time }));
        const old = at([0, 10, 20, 30]), many = at([1, 2, 3, 4, 5]);
        return [trimRecords(old, 35, 20, 100), old.map(r => r.time),
                trimRecords(many, 5, 60, 3), many.map(r => r.time)]; }""")
    assert result == [2, [20, 30], 2, [3, 4, 5]]
    assert errors == []


def test_video_jobs_list_names_times_and_asks_before_deleting(browser_page, tmp_path, astronaut_bgr):
    """Each job: file name, upload time, processing time; the result says them; Delete asks first."""
    import re

    from test_video import make_clip

    page, server, errors = browser_page
    clip = make_clip(tmp_path / "board_meeting.mp4", astronaut_bgr, frames=10)
    with open(clip, "rb") as f:
        job_id = page.request.post(
            server.base + "/api/v1/videos",
            multipart={"video": {"name": clip.name, "mimeType": "video/mp4", "buffer": f.read()}},
        ).json()["job_id"]
    page.goto(server.base + "/video")
    row = page.locator("#jobs tbody tr", has_text="board_meeting.mp4")
    for _ in range(60):  # the list refreshes itself while a job runs
        if "done" in row.inner_text():
            break
        page.wait_for_timeout(500)
    cells = row.locator("td").all_inner_texts()
    assert cells[0].startswith("board_meeting.mp4") and re.search(r"\d+/\d+/\d+, \d+:\d\d", cells[0])
    assert cells[1] == "done" and re.fullmatch(r"\d+\.\d s", cells[2])
    row.get_by_role("button", name="Show").click()
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#result-h") == "Result: board_meeting.mp4"
    assert re.match(r"processed in \d+\.\d s, uploaded \d+/\d+/\d+", page.inner_text("#result-meta"))
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    row.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(300)
    assert asked == ["Delete the job for “board_meeting.mp4” and its results?"]
    assert row.count() == 1 and page.request.get(f"{server.base}/api/v1/jobs/{job_id}").status == 200
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Delete").click()
    row.wait_for(state="detached")
    assert page.request.get(f"{server.base}/api/v1/jobs/{job_id}").status == 404
    assert page.is_hidden("#result")  # the deleted job's result is no longer shown
    page.screenshot(path=str(ARTIFACTS / "video_jobs.png"), full_page=True)
    assert errors == []


def poll(page, expression: str, timeout: float = 30.0) -> None:
    """Wait until ``expression`` is true in the page. Playwright's own polling evaluates it with
    ``new Function``, which the pages' CSP (no 'unsafe-eval') refuses once it has to poll."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def test_cameras_page_shows_the_picture_of_a_stream(browser_page, stream_clip):
    """A camera added in the form: its annotated picture, face cards and state; no password shown; Delete asks."""
    from conftest import StreamServer, free_port

    page, server, errors = browser_page
    stream = StreamServer(stream_clip).start()
    dead = page.request.post(
        server.base + "/api/v1/cameras",
        data={"name": "Gone", "source": f"rtsp://127.0.0.1:{free_port()}/x"},
    ).json()
    try:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(server.base + "/cameras")  # shows the first camera: one that failed, and says why
        poll(page, "document.getElementById('camera-state').textContent.startsWith('failed: connection refused')")
        assert page.inner_text("#no-picture") == "No picture yet: failed: connection refused."
        page.screenshot(path=str(ARTIFACTS / "cameras_failed.png"))
        page.fill("#camera-name", "Lab door")
        page.fill("#camera-source", stream.url.replace("http://", "http://operator:pa55word@"))
        page.click("#add-camera button[type=submit]")
        poll(page, "document.getElementById('picture').naturalWidth === 352")
        page.wait_for_selector("#faces .face h3", timeout=30_000)
        poll(page, "document.getElementById('camera-state').textContent.startsWith('live')")
        page.wait_for_timeout(2500)  # a few seconds of timeline
        assert "Face #" in page.inner_text("#faces")  # the clip loops: each loop is a new shot, new ids
        assert "operator:***@127.0.0.1" in page.inner_text("#cameras")
        assert "pa55word" not in page.content()
        page.screenshot(path=str(ARTIFACTS / "cameras.png"), full_page=True)
        phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})
        try:
            phone.goto(server.base + "/cameras")
            phone.click("#cameras tr:has-text('Lab door') button:has-text('View')")
            poll(phone, "document.getElementById('picture').naturalWidth === 352")
            phone.wait_for_timeout(1000)
            phone.screenshot(path=str(ARTIFACTS / "phone_cameras_live.png"), full_page=True)
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        finally:
            phone.close()
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#cameras tr:has-text('Lab door') button:has-text('Delete')")
        page.wait_for_selector("#cameras tr:has-text('Lab door')", state="detached", timeout=10_000)
        poll(page, "document.getElementById('viewer-h').textContent === 'Gone'")  # the next camera is shown
        assert "pa55word" not in server.log()
    finally:
        stream.kill()
        page.request.delete(server.base + f"/api/v1/cameras/{dead['id']}")
        page.goto("about:blank")  # closes the viewer's socket: the server's graceful stop would wait for it
    assert errors == []
