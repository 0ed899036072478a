"""Production serving with gunicorn's threaded worker (WebSockets need a thread each).

One worker process on purpose (the app is built inside it, after the fork): the job queue,
its SQLite database and the model are shared by all threads of that process; ONNX Runtime
and OpenCV release the GIL while they work.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from flask import Flask

logger = logging.getLogger(__name__)


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
        def load_config(self) -> None:
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

        def load(self) -> Flask:
            # Built in the worker after gunicorn forks: the job pool's threads and the
            # restart recovery must live in the process that serves requests.
            exit_with_parent()
            return app_factory()

    _Server().run()


def exit_with_parent(*, poll_s: float = 0.5, grace_s: float = 2.0) -> threading.Thread:
    """Stop this process soon after its parent dies, whatever keeps it busy.

    gunicorn's worker notices a dead master only between requests and then waits for the
    ones in flight; an open WebSocket never ends, so after ``kill -9`` of ``emolens serve``
    the worker served on, held the port (a restart failed) and kept writing the database.
    A daemon thread watches the parent instead and, ``grace_s`` after it is gone, ends the
    process. Jobs cut short are requeued by the next start, as after any crash.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        logger.warning("the server's master process %d is gone: this worker stops in %.0f s", parent, grace_s)
        time.sleep(grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="emolens-parent-watch", daemon=True)
    thread.start()
    return thread
