"""`python -m hq`: run HQ with settings from `KIT_HQ_*` (dir, database URL, bind)."""

from __future__ import annotations


def serve(settings: "object | None" = None) -> None:
    import uvicorn

    from hq.app import create_app
    from hq.settings import HQSettings

    conf = settings if isinstance(settings, HQSettings) else HQSettings()
    host, port = conf.host_port
    uvicorn.run(create_app(conf), host=host, port=port, log_level="info", access_log=False)


def main() -> None:
    serve()


if __name__ == "__main__":
    main()
