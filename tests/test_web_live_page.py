"""The Live page's send loop in headless Chromium: it keeps sending when its own thread is busy,
when an answer is lost or late, and says what it waits for (issue 19, item 12).

The socket goes through Playwright's WebSocket route, which forwards every message and can
hold back or drop the server's answers; nothing in the server or the page is there for tests.
"""

from __future__ import annotations

import contextlib
import re

import pytest

from test_web_browser import ARTIFACTS, launch_chromium, write_y4m
from test_web_server import Server, _free_port

# Counts the frames the page sends, from outside the page's code.
COUNT_SENT = """(() => {
  window.framesSent = 0;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== 'string') window.framesSent++;
    return send.call(this, data);
  };
})();"""

# A page whose main thread never idles: 8 ms tasks back to back. Chromium's canvas.toBlob encodes
# JPEG in idle time only and otherwise waits a second; this is how a busy tab looks to it.
BUSY = """(() => {
  const ch = new MessageChannel();
  ch.port1.onmessage = () => {
    const t = performance.now();
    while (performance.now() - t < 8);
    ch.port2.postMessage(0);
  };
  window.startBusy = () => ch.port2.postMessage(0);
})();"""


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_onnx, astronaut_bgr):
    """(browser, server): a fake camera showing a face, and the server with the tiny model."""
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("live_page")
    server = Server(tmp / "data", tiny_onnx, _free_port())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw, write_y4m(tmp / "camera.y4m", astronaut_bgr))
        try:
            yield browser, server
        finally:
            browser.close()
            server.stop()


class Relay:
    """Forwards /ws/live both ways; `hold` keeps the server's answers back, `drop` loses the next n."""

    def __init__(self, page):
        self.hold, self.drop, self.held, self.route = False, 0, [], None
        page.route_web_socket(re.compile(r"/ws/live"), self._connect)

    def _connect(self, route):
        self.route = route
        server = route.connect_to_server()
        server.on_message(self._answer)

    def _answer(self, message):
        if self.drop:
            self.drop -= 1
        elif self.hold:
            self.held.append(message)
        else:
            self.route.send(message)

    def release(self):
        self.hold = False
        for message in self.held:
            self.route.send(message)
        self.held.clear()


@contextlib.contextmanager
def live_page(browser, server, *, busy=False, viewport=(1280, 800)):
    """The Live page started, its socket relayed: yields (page, relay); no page error allowed."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.add_init_script(COUNT_SENT)
    if busy:
        page.add_init_script(BUSY)
    relay = Relay(page)
    try:
        page.goto(server.base + "/")
        page.click("#start")
        page.wait_for_function("() => window.framesSent >= 3", timeout=30_000)
        yield page, relay
    finally:
        page.close()
    assert errors == []


def snapshot(page) -> dict:
    return page.evaluate("() => window.emolensLive.snapshot()")


def sent_in(page, ms: int) -> int:
    before = page.evaluate("window.framesSent")
    page.wait_for_timeout(ms)
    return page.evaluate("window.framesSent") - before


def test_a_busy_page_still_sends_several_frames_a_second(live):
    """The stall of issue 19: toBlob waiting a second for idle time. The worker does not wait."""
    with live_page(*live, busy=True) as (page, _):
        page.evaluate("() => startBusy()")
        page.wait_for_timeout(300)
        assert sent_in(page, 3000) >= 8  # 3 frames (1 a second) when toBlob waits; 45 at most
        state = snapshot(page)
        assert state["encode_ms"] < 500 and state["notice"] == ""
        stats = page.inner_text("#stats").replace("\u00a0", " ")
        assert re.search(r"camera [\d.]+ fps · sent [\d.]+ fps · round trip \d+ ms", stats)


def test_a_lost_answer_is_resent_after_the_watchdog_time_and_counted(live):
    with live_page(*live) as (page, relay):
        relay.drop = 1
        page.wait_for_selector("#live-state:not([hidden])", timeout=3_000)
        assert "Waiting for the server: no answer for" in page.inner_text("#live-state")
        assert snapshot(page)["stage"] == "waiting"
        # the watchdog gives the frame up after 4 s and sends a new one; the page goes on
        page.wait_for_function("() => window.emolensLive.snapshot().resent === 1", timeout=4_000)
        assert sent_in(page, 1500) >= 8
        assert page.is_hidden("#live-state") and "1\u00a0resent" in page.inner_text("#stats")


def test_a_held_up_server_is_shown_and_the_notice_goes_when_it_answers(live):
    with live_page(*live, viewport=(390, 844)) as (page, relay):
        relay.hold = True
        page.wait_for_selector("#live-state:not([hidden])", timeout=3_000)
        assert sent_in(page, 500) == 0  # one frame in flight, no more
        page.screenshot(path=str(ARTIFACTS / "live_waiting_390x844.png"))
        relay.release()  # before the watchdog's 4 s: the late answer is the awaited one
        page.wait_for_selector("#live-state", state="hidden", timeout=2_000)
        assert sent_in(page, 1000) >= 5 and snapshot(page)["resent"] == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_hidden_tab_pauses_and_says_so(live):
    with live_page(*live) as (page, _):
        page.evaluate("""() => {
            Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
            document.dispatchEvent(new Event('visibilitychange')); }""")
        assert "Paused while this tab is hidden" in page.inner_text("#live-state")
        page.wait_for_timeout(300)  # a frame in flight may still be answered
        assert sent_in(page, 1000) == 0
        page.screenshot(path=str(ARTIFACTS / "live_paused_1280x800.png"))
        page.evaluate("""() => {
            delete document.hidden;
            document.dispatchEvent(new Event('visibilitychange')); }""")
        assert sent_in(page, 1000) >= 5 and page.is_hidden("#live-state")
        page.screenshot(path=str(ARTIFACTS / "live_state_1280x800.png"))


def test_a_camera_that_gives_no_picture_is_named(live):
    with live_page(*live) as (page, _):
        page.evaluate("document.getElementById('camera').pause()")
        page.wait_for_selector("#live-state:not([hidden])", timeout=4_000)
        assert "The camera has given no new picture for" in page.inner_text("#live-state")
        page.evaluate("document.getElementById('camera').play()")
        page.wait_for_selector("#live-state", state="hidden", timeout=2_000)
