"""`kitctl status`'s licence line from the row psql prints: a timed suspension shows its end."""

from __future__ import annotations

import pytest

from kitctl.deploy import operate


@pytest.mark.parametrize("row, expected", [
    ("suspended|ok|1796000000|1796600000|chargebacks | more",
     {"status": "suspended", "reason": "chargebacks | more", "hq": {"state": "ok", "since": 1796000000},
      "suspended_until": 1796600000}),
    ("suspended|||| ", {"status": "suspended", "reason": " ", "hq": None, "suspended_until": None}),
    ("active|ok|1796000000|1796600000|", {"status": "active", "reason": "", "hq": {"state": "ok", "since": 1796000000},
                                          "suspended_until": None}),  # only while suspended
])
def test_the_licence_row_is_read_with_the_suspension_end(monkeypatch, row, expected) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(operate, "db_query", lambda client, project, sql, service: row)
    assert operate.licence_state(None, None) == expected  # type: ignore[arg-type]


def test_an_old_row_shape_or_none_is_not_recorded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(operate, "db_query", lambda client, project, sql, service: "active|ok|1|")
    assert operate.licence_state(None, None) is None  # type: ignore[arg-type]


def test_the_status_line_names_the_end_date() -> None:
    from kitctl.cli.deploy import _until

    assert _until(1796600000) == " until 2026-12-06 23:33 UTC (HQ lifts it then)"
    assert _until(None) == ""
