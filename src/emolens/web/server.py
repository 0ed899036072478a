"""Production serving with gunicorn's threaded worker (WebSockets need a thread each).

One worker process on purpose (the app is built inside it, after the fork): the job queue,
its SQLite database and the model are shared by all threads of that process; ONNX Runtime
and OpenCV release the GIL while they work.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask


def run(
    app_factory: Callable[[], Flask],
    *,
    host: str,
    port: int,
    threads: int = 32,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
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
            # Built in the worker after gunicorn forks: the job pool's threads and the
            # restart recovery must live in the process that serves requests.
            return app_factory()

    _Server().run()
