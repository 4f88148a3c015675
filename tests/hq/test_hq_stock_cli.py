"""`kitctl hq stock …` and `kitctl hq grades …` against a local HQ directory, and the stock round's baseline:
tables and JSON, one-line errors with exit code 2 that change nothing."""

from __future__ import annotations

import json

from hq import inventory, stock
from kitctl.cli import run
from tests.hq.helpers import open_hq


def kit(hq_dir, *args: str) -> int:  # type: ignore[no-untyped-def]
    return run(["hq", *args, "--hq-dir", str(hq_dir)])


def test_thresholds_from_the_cli(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    hq_dir = tmp_path / "hq"
    open_hq(hq_dir, card_keys=3).close()  # card-1 with 3 keys
    assert kit(hq_dir, "stock", "default", "5") == 0
    assert "default low-stock threshold: 5" in capsys.readouterr().out
    assert kit(hq_dir, "stock", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == {"default": 5, "skus": [{"sku": "card-1", "stock": 3, "threshold": 5, "own_threshold": None,
                                              "state": "low"}]}
    assert kit(hq_dir, "stock", "threshold", "card-1", "2") == 0
    capsys.readouterr()
    assert kit(hq_dir, "stock", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)["skus"][0]["state"] == "in_stock"
    for args in (("threshold", "card-1", "-1"), ("threshold", "nope", "3"), ("threshold", "card-1"),
                 ("threshold", "card-1", "3", "--default"), ("default", "x")):
        assert kit(hq_dir, "stock", *args) == 2
        err = capsys.readouterr().err.strip()
        assert err and len(err.splitlines()) == 1, (args, err)
    assert kit(hq_dir, "stock", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)["skus"][0]["own_threshold"] == 2  # unchanged


def test_grades_from_the_cli(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    hq_dir = tmp_path / "hq"
    open_hq(hq_dir).close()  # site-a licensed, no orders
    assert kit(hq_dir, "grades", "--period", "2026-10", "--json") == 0  # site-a was licensed after October
    assert json.loads(capsys.readouterr().out) == []
    assert kit(hq_dir, "grades", "--json") == 0  # this month
    [row] = json.loads(capsys.readouterr().out)
    assert row["site"] == "site-a" and row["grade"] in "ABCD" and len(row["trend"]) == 4
    assert kit(hq_dir, "grades", "--csv") == 0
    assert capsys.readouterr().out.startswith("rank,site,tier,status,grade,score")
    assert kit(hq_dir, "grades", "--period", "2026-13") == 2
    config = tmp_path / "grading.json"
    config.write_text(json.dumps({"grades": {"A": 90, "B": 95, "C": 40, "D": 0}}))
    assert kit(hq_dir, "grades", "config", str(config)) == 2
    assert "A > B > C > D = 0" in capsys.readouterr().err
    config.write_text(json.dumps({"suspend_days": 14}))
    assert kit(hq_dir, "grades", "config", str(config)) == 0
    assert json.loads(capsys.readouterr().out)["suspend_days"] == 14


def test_the_first_round_is_a_baseline_and_changes_from_it_are_news(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hq = open_hq(tmp_path / "hq", card_keys=0)  # card-1 sold out before the first round
    try:
        assert stock.evaluate(hq) == [] and stock.claim_notices(hq) == []
        inventory.import_csv(hq, "t", "sku,serial,secret\ncard-1,A1,a\n")
        assert stock.evaluate(hq) == [("card-1", "sold_out", "in_stock")]
        [notice] = stock.claim_notices(hq)
        assert notice["state"] == "resolved" and notice["kind"] == "sold_out"
        assert stock.claim_notices(hq) == []  # claimed once
    finally:
        hq.close()


def test_a_notice_that_could_not_be_sent_is_sent_next_round(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hq.settings import HQSettings

    hq = open_hq(tmp_path / "hq", card_keys=1)
    try:
        stock.evaluate(hq)
        hq.settings = HQSettings(dir=tmp_path / "hq", registry_url=None, alert_webhook_url="http://127.0.0.1:9/x")
        with hq.session() as s:  # the last key sold
            from hq.models import CardKey

            s.query(CardKey).update({CardKey.status: "sold"})
        assert stock.watch(hq) == 0  # the webhook refuses: released
        [notice] = stock.claim_notices(hq)
        assert (notice["kind"], notice["was"]) == ("sold_out", "in_stock")
    finally:
        hq.close()
