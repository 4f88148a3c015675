"""`python -m hq`: run HQ with settings from `KIT_HQ_*` (dir, database URL, bind, workers)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi import FastAPI

    from hq.settings import HQSettings


def serve(settings: "HQSettings | None" = None) -> int:
    """Serve HQ until SIGTERM (exit status 0 after a clean stop); with more than one worker each
    process builds the app from `KIT_HQ_*`."""
    import uvicorn

    from hq.app import create_app
    from hq.service import HQ
    from hq.settings import HQSettings
    from kitcore.serving import serve_asgi

    conf = settings or HQSettings()
    host, port = conf.host_port
    if conf.workers == 1:
        return serve_asgi(create_app(conf), host, port, log_level="info", access_log=False,
                          timeout_keep_alive=conf.keep_alive_seconds, backlog=conf.listen_backlog)
    HQ.open(conf).close()  # migrate once, before the workers start
    from hq.metrics import metrics_token

    metrics_token(conf.metrics_token_file or conf.dir / "metrics-token")  # made once, not raced by the workers
    _multiprocess_metrics(conf.dir / "metrics-workers")
    for name, value in conf.model_dump(exclude_none=True).items():
        os.environ[f"KIT_HQ_{name.upper()}"] = str(value)
    os.environ["KIT_HQ_MIGRATE"] = "false"
    uvicorn.run("hq.__main__:worker_app", factory=True, host=host, port=port, workers=conf.workers,
                log_level="info", access_log=False, timeout_graceful_shutdown=7,
                timeout_keep_alive=conf.keep_alive_seconds, backlog=conf.listen_backlog)
    return 0


def worker_app() -> "FastAPI":
    """Each worker process's app, from `KIT_HQ_*`, its start-up heap frozen as `serve_asgi` does for one."""
    from hq.app import create_app
    from kitcore.serving import freeze_startup_heap

    app = create_app()
    freeze_startup_heap()
    return app


def _multiprocess_metrics(directory: "Path") -> None:
    """Workers count into files in a fresh `directory`, so any worker's /metrics sums them all (hq.metrics)."""
    import shutil

    from hq.metrics import MULTIPROC_ENV

    shutil.rmtree(directory, ignore_errors=True)  # counts of an earlier run are not this run's
    directory.mkdir(mode=0o700, parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def main() -> None:
    sys.exit(serve())


if __name__ == "__main__":
    main()
