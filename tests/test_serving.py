"""kitcore.serving: how the kit's services serve until they are stopped."""

from __future__ import annotations

import gc
from typing import Any

import pytest


@pytest.fixture
def unfrozen() -> Any:
    """The test process's heap as it was: whatever a test froze is handed back to the collector."""
    yield
    gc.unfreeze()


def test_a_service_freezes_its_start_up_heap_before_it_serves(monkeypatch, unfrozen) -> None:
    """Without it, the interpreter traced HQ's whole heap once more at exit: seconds past a clean shutdown
    on a loaded host, long enough for `docker stop` to kill it (137)."""
    import uvicorn

    from kitcore import serving

    frozen_when_serving: list[int] = []

    def run(server: Any) -> None:
        frozen_when_serving.append(gc.get_freeze_count())
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    gc.unfreeze()
    assert serving.serve_asgi(lambda *_: None, "127.0.0.1", 0) == 0
    assert frozen_when_serving and frozen_when_serving[0] > 1000  # the modules and the app, at least


def test_each_hq_worker_freezes_its_heap_once_its_app_is_built(tmp_path, monkeypatch, unfrozen) -> None:
    from hq.__main__ import worker_app

    monkeypatch.setenv("KIT_HQ_DIR", str(tmp_path / "hq"))
    monkeypatch.setenv("KIT_HQ_REGISTRY_URL", "")
    gc.unfreeze()
    app = worker_app()
    assert app.title == "kitctl HQ API" and gc.get_freeze_count() > 1000
