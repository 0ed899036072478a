"""Frame sources: parsing what users type, files, and live streams from a real FFmpeg server."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from conftest import StreamServer, free_port
from emolens.errors import SourceError
from emolens.inference.live_source import LiveSource, SourceState
from emolens.inference.sources import DeviceSource, FileSource, StreamSource, open_source


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nonsense://x", "nonsense://x: unsupported address; emolens reads rtsp://, rtsps://, http://, https://"),
        ("/dev/video99", "/dev/video99: no such camera"),
        ("99", "/dev/video99: no such camera"),
        ("missing.mp4", "missing.mp4: no such file (and not a stream URL or a camera)"),
    ],
)
def test_what_cannot_be_opened_is_named(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError) as err:
        open_source(spec)
    assert str(err.value).startswith(message)


def test_urls_are_live_and_rtsp_goes_over_tcp(tmp_path, stream_clip):
    rtsp = open_source("rtsp://cam.local/h264", read_timeout=2)
    assert isinstance(rtsp, StreamSource) and rtsp.info.live and rtsp.info.kind == "stream"
    assert rtsp.options == {"rtsp_transport": "tcp"} and rtsp.read_timeout == 2
    assert open_source("https://example.org/live.m3u8").options == {}
    files = open_source(str(stream_clip))
    assert isinstance(files, FileSource) and not files.info.live


def test_a_device_that_is_no_camera_fails_with_the_reason():
    source = DeviceSource("/dev/video63")  # what open_source makes of /dev/video63 once it exists
    with pytest.raises(SourceError, match=r"^/dev/video63: the camera could not be opened \(in use"):
        list(source)
    assert source.info.kind == "device" and source.state is SourceState.FAILED


def test_a_file_gives_every_frame_in_order(stream_clip):
    source = open_source(str(stream_clip))
    frames = list(source)
    source.close()
    assert [f.index for f in frames] == list(range(30)) and all(f.dropped == 0 for f in frames)
    assert frames[-1].time == pytest.approx(29 / 15, abs=0.01)
    assert frames[0].image.shape == (240, 352, 3)


@pytest.mark.parametrize("kind", ["mpegts", "mjpeg"])
def test_frames_flow_and_a_slow_reader_gets_only_the_newest(kind, stream_clip):
    server = StreamServer(stream_clip, kind=kind).start()
    with server, LiveSource(server.url, open_timeout=5, read_timeout=3) as source:
        first = source.read(timeout=10)
        assert first is not None and source.state is SourceState.LIVE
        time.sleep(1.0)  # a busy consumer: ~15 frames arrive meanwhile
        newest = source.read(timeout=5)
        age = time.time() - newest.wall_time
        assert newest.dropped >= 3 and newest.index == first.index + newest.dropped + 1, (first, newest)
        assert age < 0.5, age  # fresh, not a queued old frame
    assert source.state is SourceState.STOPPED


def test_a_killed_server_means_reconnecting_and_a_restarted_one_live_again(server):
    states = []
    source = LiveSource(server.url, open_timeout=3, read_timeout=2, backoff=(0.25, 1.0), on_status=states.append)
    with source:
        assert source.read(timeout=10) is not None
        server.kill()
        deadline = time.monotonic() + 8
        while source.state is not SourceState.RECONNECTING and time.monotonic() < deadline:
            source.read(timeout=0.2)
        assert source.state is SourceState.RECONNECTING, source.status
        server.start()  # same port
        restarted, fresh = time.monotonic(), None
        while fresh is None and time.monotonic() - restarted < 10:
            frame = source.read(timeout=0.5)  # the last frame from before the drop may come first
            fresh = frame if frame is not None and frame.wall_time > server.started else None
        assert fresh is not None and source.state is SourceState.LIVE
        assert time.monotonic() - restarted < 10
    seen = [s.state for s in states]
    assert seen[0] is SourceState.LIVE and seen[1] is SourceState.RECONNECTING and seen[-1] is SourceState.STOPPED
    assert seen.count(SourceState.LIVE) == 2 and source.reconnects >= 1
    assert "retrying in 0.25 s" in states[1].reason


def test_a_stalled_stream_times_out_and_is_reopened(server):
    states = []
    with LiveSource(server.url, open_timeout=3, read_timeout=1, on_status=states.append) as source:
        assert source.read(timeout=10) is not None
        server.proc.send_signal(signal.SIGSTOP)  # a frozen camera: the connection stays open, silent
        stalled = time.monotonic()
        while source.state is SourceState.LIVE and time.monotonic() - stalled < 8:
            source.read(timeout=0.2)
        assert source.state is SourceState.RECONNECTING, source.status
        assert states[1].reason.startswith("timed out; retrying in 0.5 s")
        assert time.monotonic() - stalled < 4  # read_timeout 1 s, plus what was buffered


def test_nothing_listening_fails_with_the_reason():
    source = LiveSource(f"http://127.0.0.1:{free_port()}/x.ts", open_timeout=3)
    with pytest.raises(SourceError, match=r"^http://127.0.0.1:\d+/x.ts: connection refused$"):
        list(source)
    assert source.state is SourceState.FAILED


def test_a_silent_server_times_out():
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen()  # accepts the connection, never answers
    url = f"http://127.0.0.1:{quiet.getsockname()[1]}/x.ts"
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match="timed out"):
            list(LiveSource(url, open_timeout=1, read_timeout=1))
    finally:
        quiet.close()
    assert time.monotonic() - started < 5


def test_stop_from_another_thread_ends_iteration_while_waiting():
    source = LiveSource(f"http://127.0.0.1:{free_port()}/x.ts", retry_first=True, backoff=(0.2, 0.2))
    threading.Timer(1.0, source.stop).start()
    started = time.monotonic()
    assert list(source) == []
    assert source.state is SourceState.STOPPED and time.monotonic() - started < 3
    source.close()
