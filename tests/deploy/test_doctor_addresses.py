"""`kitctl doctor` says when the engine hides buyers' addresses (issue 14, bad case 5)."""

from __future__ import annotations


def test_doctor_says_when_the_engine_hides_buyers_addresses() -> None:
    from kitctl.deploy.doctor import address_verdict

    assert address_verdict(20, 20).status == "warn" and "userland proxy" in address_verdict(20, 20).detail
    assert address_verdict(0, 20).status == "ok" and address_verdict(None, 0).status == "ok"
