from __future__ import annotations

import pytest

from kitcore.licence.keys import HQKeyStore, PinnedKeys


@pytest.fixture
def store(tmp_path) -> HQKeyStore:
    s = HQKeyStore(tmp_path / "hq")
    s.init()
    return s


@pytest.fixture
def pinned(store) -> PinnedKeys:
    return store.pinned()


@pytest.fixture
def issue(store):
    from kitcore.licence.token import issue_licence

    def _issue(**overrides):
        args = dict(site="xingchen", tier="pro", categories=["game", "phone"], days=365,
                    hq_url="https://hq.example.cn")
        args.update(overrides)
        return issue_licence(store, **args)

    return _issue
