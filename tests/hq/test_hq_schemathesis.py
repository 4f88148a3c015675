"""`schemathesis run --checks all` against a real HQ process, as an outside client would: no finding.

Two runs, one per credential: the site endpoints with a licence token, the
admin endpoints with an operator token. Each runs every phase schemathesis
has (examples, coverage, fuzzing, stateful) with every check, plus
`refusal_is_documented` (tests/hq/fuzz/hooks.py), bounded by the
`max-examples` and stateful settings in tests/hq/fuzz/schemathesis.toml.
Each run prints how many cases it generated.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from hq.testing import free_port
from tests.hq.helpers import wait_for_process

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "hq" / "fuzz" / "schemathesis.toml"


def _seed(hq_dir: Path) -> dict[str, str]:
    """An HQ directory with an item, card keys, a licensed site, an order under review, an operator,
    and the site's settlement: a statement issued and a payout requested."""
    from hq import operators, orders
    from hq.order_checks import SiteContext
    from hq.schemas import OrderBatch
    from hq.service import HQ
    from hq.settings import HQSettings
    from hq.testing import RunningHQ

    service = HQ.open(HQSettings(dir=hq_dir))
    try:
        seeded = RunningHQ(url="", hq_dir=hq_dir, keys_path=hq_dir / "unused", operator_token="", service=service)
        seeded.seed_item("game-100")
        seeded.seed_card_keys("game-100", 50)
        site_token = seeded.issue_licence("fuzz-site")
        big = {"order_id": "seed-1", "sku": "game-100", "quantity": 1, "unit_price_cents": 500_000, "currency": "CNY",
               "buyer": {"contact": "buyer@example.cn"}, "created_at": "2030-01-01T00:00:00Z"}  # over the review amount
        results, _ = orders.submit(service, SiteContext("fuzz-site", ("game",), ("CN",)), "seed",
                                   OrderBatch.model_validate({"orders": [big]}))
        assert results[0]["status"] == "review", results
        from hq import support

        bundle = support.request(service, "fuzzer", "fuzz-site")["request_id"]  # HQ asked: uploads may arrive
        return {"site": site_token, "operator": operators.add(service, "fuzzer"), "review": results[0]["hq_order_id"],
                "bundle": bundle, **_seed_settlement(service)}
    finally:
        service.close()


def _seed_settlement(service) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A statement of a past month and a payout waiting, both id 1: the coverage phase tries each id's minimum."""
    from datetime import date, datetime, timezone

    from hq.ledger import events, payouts, statements

    with service.connection() as conn:
        events.order_paid(conn, [events.PaidOrder("fuzz-site", "hq_fuzz_paid", "paid-1", 1, 900_000, 9500, "game")],
                          at=datetime(2026, 1, 15, tzinfo=timezone.utc))
    statement = statements.issue(service, "seed", "fuzz-site", "monthly", date(2026, 1, 1))
    payout = payouts.request(service, "fuzz-site", "seed-payout", 100_000)
    assert statement["id"] == payout["id"] == 1
    return {}


@pytest.fixture(scope="module")
def hq_process(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """`python -m hq` on a free loopback port (SQLite), seeded first; its URL and tokens."""
    hq_dir = tmp_path_factory.mktemp("fuzz") / "hq"
    tokens = _seed(hq_dir)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_HQ_DIR": str(hq_dir), "KIT_HQ_BIND": f"127.0.0.1:{port}",
           "KIT_HQ_REGISTRY_URL": "", "KIT_HQ_SITE_RATE_PER_SECOND": "100000", "KIT_HQ_SITE_RATE_BURST": "100000",
           "KIT_HQ_APPLY_BURST": "10000",  # the fuzzer applies from one address; the limit's own test checks it
           # the push channel answers at once: held, each fuzzed long-poll would wait up to 50 s (test_hq_push holds it)
           "KIT_HQ_PUSH_WAIT_MAX_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_process(f"{url}/healthz", proc)
        yield url, tokens
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _ci_seed() -> tuple[str, ...]:
    """CI replays the same cases every run (as the hypothesis profile does), so a red build is reproducible."""
    return ("--seed", "20261206") if os.environ.get("CI") == "true" else ()


def _schemathesis(url: str, token: str, tokens: dict[str, str], workdir: Path, *selection: str) -> tuple[int, str]:
    """Run the CLI (its cache goes to `workdir`); its exit code and output."""
    cli = Path(sys.executable).parent / "schemathesis"
    cmd = [str(cli), "--config-file", str(CONFIG), "run", f"{url}/openapi.json", "--checks", "all",
           "--header", f"Authorization: Bearer {token}", "--workers", "1",
           "--no-color", *_ci_seed(), *selection]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "HQ_REVIEW_ID": tokens["review"],
           "HQ_BUNDLE_ID": tokens["bundle"]}
    done = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("credential", ["site", "operator"])
def test_schemathesis_all_checks_finds_nothing(hq_process, credential, capsys, tmp_path):
    url, tokens = hq_process
    selection = ("--include-path-regex", "^/v1/admin/") if credential == "operator" else \
        ("--exclude-path-regex", "^/v1/admin/")
    code, output = _schemathesis(url, tokens[credential], tokens, tmp_path, *selection)
    generated = re.search(r"(\d+) generated", output)
    phases = re.findall(r"^ +(?:✅|❌|⏭|🚫) +(Examples|Coverage|Fuzzing|Stateful)", output, re.MULTILINE)
    with capsys.disabled():
        print(f"\nschemathesis ({credential} token): {generated.group(1) if generated else '?'} cases generated; "
              f"phases {', '.join(dict.fromkeys(phases))}")
    assert generated and int(generated.group(1)) > 0, output[-3000:]
    assert {"Coverage", "Fuzzing", "Stateful"} <= set(phases), output[-3000:]
    assert code == 0 and "No issues found" in output, output[-6000:]
