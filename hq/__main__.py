"""`python -m hq`: run HQ with settings from `KIT_HQ_*` (dir, database URL, bind, workers)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
        return serve_asgi(create_app(conf), host, port, log_level="info", access_log=False)
    HQ.open(conf).close()  # migrate once, before the workers start
    for name, value in conf.model_dump(exclude_none=True).items():
        os.environ[f"KIT_HQ_{name.upper()}"] = str(value)
    os.environ["KIT_HQ_MIGRATE"] = "false"
    uvicorn.run("hq.app:create_app", factory=True, host=host, port=port, workers=conf.workers,
                log_level="info", access_log=False, timeout_graceful_shutdown=7)
    return 0


def main() -> None:
    sys.exit(serve())


if __name__ == "__main__":
    main()
