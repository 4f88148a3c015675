"""`python -m agent` / `kitctl-agent`: run the agent until SIGTERM."""

from __future__ import annotations

import sys


def main() -> int:
    from agent.memory import limit_arenas

    limit_arenas()  # before any thread exists: idle threads do not each keep an arena resident
    from agent.logs import setup_logging
    from agent.runner import Agent
    from agent.settings import load_settings
    from kitcore.errors import KitError
    from kitcore.serving import freeze_startup_heap

    setup_logging()
    try:
        settings = load_settings()
        setup_logging(settings.log_level)
        agent = Agent(settings)
        agent.install_signal_handlers()
        agent.start()
    except KitError as exc:  # bad configuration or licence: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    freeze_startup_heap()
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
