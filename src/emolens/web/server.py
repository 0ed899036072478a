"""Production serving with gunicorn's threaded worker (WebSockets need a thread each).

One worker process on purpose: the job queue, its SQLite database and the model are shared
by all threads of that process; ONNX Runtime and OpenCV release the GIL while they work.
"""

from __future__ import annotations

from flask import Flask


def run(app: Flask, *, host: str, port: int, threads: int = 32, certfile: str | None = None,
        keyfile: str | None = None) -> None:
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self):
            options = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": threads,
                "timeout": 0,  # long uploads and WebSockets are not hung workers
                "graceful_timeout": 10,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
                "certfile": certfile,
                "keyfile": keyfile,
                "limit_request_line": 8190,
            }
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self):
            return app

    _Server().run()
