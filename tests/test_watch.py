"""``emolens watch`` against a real FFmpeg stream server: records, recovery, crashes, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import av
import pytest

from conftest import free_port, interruptible
from emolens.cli import main


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class Watch:
    """``emolens watch`` in a process of its own, its output lines collected as they come."""

    def __init__(self, args: list[str]):
        cmd = [sys.executable, "-m", "emolens.cli", "watch", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, preexec_fn=interruptible
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout: float, after: int = 0) -> int:
        """Index of the first line from ``after`` on that contains ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, line in enumerate(self.lines[after:], after):
                if text in line:
                    return i
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} within {timeout} s:\n" + "".join(self.lines))

    def end(self, sig) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self._reader.join(timeout=5)
        self.proc.stdout.close()
        return code


def test_watch_a_stream_for_a_duration(server, tiny_onnx, tmp_path, capsys):
    jsonl, table, video = tmp_path / "faces.jsonl", tmp_path / "faces.csv", tmp_path / "live.mp4"
    started = time.time()
    args = [server.url, "--duration", "3", "--jsonl", str(jsonl), "--csv", str(table), "--record", str(video)]
    assert main(["watch", *args, "--model", str(tiny_onnx)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("live") and out[-1].startswith("stopped by --duration after 3.")
    per_second = [line for line in out if " fps" in line]
    assert len(per_second) >= 1 and all("1 face: #" in line for line in per_second[1:])
    records = _records(jsonl)
    assert len(records) >= 15  # a 15 fps stream, ~2 s of it after connecting
    assert all(started < r["wall_time"] < time.time() and r["emotion"] for r in records)
    rows = table.read_text().splitlines()
    assert rows[0].startswith("wall_time,time,frame,track_id") and len(rows) == len(records) + 1
    with av.open(str(video)) as recorded:
        assert recorded.streams.video[0].codec_context.name == "h264" and len(list(recorded.decode(video=0))) >= 15


def test_a_dropped_stream_recovers_and_a_killed_watch_keeps_its_records(server, tiny_onnx, tmp_path):
    jsonl, video = tmp_path / "faces.jsonl", tmp_path / "live.mp4"
    watch = Watch([server.url, "--jsonl", str(jsonl), "--record", str(video), "--model", str(tiny_onnx)])
    try:
        watch.wait_for(" fps", timeout=20)
        server.kill()
        dropped_at = time.time()
        reconnecting = watch.wait_for("reconnecting", timeout=10)
        before = [r for r in _records(jsonl) if r["wall_time"] < dropped_at]
        server.start()  # the same address again
        restarted = time.time()
        watch.wait_for("live", timeout=10, after=reconnecting)
        watch.wait_for(" fps", timeout=5, after=reconnecting + 1)
        assert any(r["wall_time"] > restarted for r in _records(jsonl)), "records resumed"
        assert time.time() - restarted < 10
        killed_at = time.time()
        assert watch.end(signal.SIGKILL) == -signal.SIGKILL
    finally:
        watch.end(signal.SIGKILL)
    records = _records(jsonl)  # every line whole: written and flushed one frame at a time
    assert records[: len(before)] == before  # nothing from before the drop was lost
    assert killed_at - records[-1]["wall_time"] < 1.0  # a crash loses at most the last second
    with av.open(str(video)) as recorded:  # fragmented MP4: playable without its end
        assert len(list(recorded.decode(video=0))) >= 15


def test_ctrl_c_ends_a_watch_cleanly(server, tiny_onnx, tmp_path):
    jsonl = tmp_path / "faces.jsonl"
    watch = Watch([server.url, "--jsonl", str(jsonl), "--model", str(tiny_onnx)])
    watch.wait_for(" fps", timeout=20)
    assert watch.end(signal.SIGINT) == 0, "".join(watch.lines)
    assert watch.lines[-1].startswith("stopped (Ctrl-C) after") and "Traceback" not in "".join(watch.lines)
    assert f"{len(_records(jsonl))} records" in watch.lines[-1]


def test_watch_a_file_analyses_every_frame(stream_clip, tiny_onnx, tmp_path, capsys):
    jsonl = tmp_path / "faces.jsonl"
    assert main(["watch", str(stream_clip), "--jsonl", str(jsonl), "--every", "2", "--model", str(tiny_onnx)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("the source ended after") and "30 frames" in out[-1]
    records = _records(jsonl)
    assert {r["frame"] for r in records} >= set(range(0, 30, 2))  # every second frame
    assert all(r["frame"] % 2 == 0 or r["shot"] > 0 for r in records)  # and a new shot's first (the loop's jump)


@pytest.mark.parametrize(
    "source, extra, message",
    [
        ("http://127.0.0.1:{port}/x.ts", [], "http://127.0.0.1:{port}/x.ts: connection refused"),
        ("nonsense://x", [], "nonsense://x: unsupported address"),
        ("/dev/video99", [], "/dev/video99: no such camera"),
        ("http://127.0.0.1:{port}/x.ts", ["--duration", "0"], "--duration must be more than 0 seconds, got 0"),
        ("http://127.0.0.1:{port}/x.ts", ["--record", "x.avi"], "--record x.avi: emolens records H.264 MP4 files"),
        ("http://127.0.0.1:{port}/x.ts", ["--every", "0"], "--every and --full-every must be 1 or more, got 0 and 10"),
    ],
)
def test_what_cannot_be_watched_is_one_line(source, extra, message, tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = free_port()
    argv = ["watch", source.format(port=port), "--jsonl", "f.jsonl", "--timeout", "3", *extra]
    assert main([*argv, "--model", str(tiny_onnx)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"emolens: error: {message.format(port=port)}")
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    assert captured.out == "" and list(tmp_path.iterdir()) == []  # no empty outputs left behind
