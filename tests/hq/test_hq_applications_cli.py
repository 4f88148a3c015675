"""`kitctl hq applications list|show|decide` on a local HQ directory: tables and JSON, one-line refusals
(exit code 2) that change nothing, the licence issued at the last stage."""

from __future__ import annotations

import json

from hq import applications
from hq.application_files import Upload
from kitctl.cli import run
from tests.hq.application_support import PDF
from tests.hq.helpers import open_hq


def kit(hq_dir, *args: str) -> int:  # type: ignore[no-untyped-def]
    return run(["hq", "applications", *args, "--hq-dir", str(hq_dir)])


def test_list_show_and_decide_through_to_the_licence(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    hq_dir = tmp_path / "hq"
    hq = open_hq(hq_dir)  # card-1 in category game
    done = applications.submit(hq, applications.ApplicationIn(
        applicant="person", name="Li Lei", email="li@example.cn", categories=["game"], regions=["CN-GD"], tier="basic",
        uploads=[Upload("identity", "id.pdf", PDF), Upload("game", "game.pdf", PDF)]))
    hq.close()
    number = done["number"]
    assert kit(hq_dir, "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["number"], row["stage"], row["next"]) == (number, "manual_review", "contract_signed")
    assert kit(hq_dir, "list") == 0 and number in capsys.readouterr().out
    assert kit(hq_dir, "show", number) == 0
    shown = capsys.readouterr().out
    assert "li@example.cn" in shown and "id.pdf" in shown and "automatic checks passed" in shown
    for args, words in ((("decide", number, "licence_issued", "--why", "x"), "its next stage is contract_signed"),
                        (("decide", number, "approved", "--why", "x"), "is not one of"),
                        (("decide", number, "rejected", "--why", "  "), "why: say why"),
                        (("decide", "A-999999", "rejected", "--why", "x"), "A-999999 not found"),
                        (("decide", "nope", "rejected", "--why", "x"), "numbers look like A-000001"),
                        (("show", "A-000009"), "not found"), (("list", "--stage", "done"), "stage: 'done'")):
        assert kit(hq_dir, *args) == 2, args
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, (args, err)
    assert kit(hq_dir, "decide", number, "contract-signed", "--why", "signed on paper") == 0
    assert kit(hq_dir, "decide", number, "base_fee_paid", "--why", "paid", "--json") == 0
    capsys.readouterr()
    assert kit(hq_dir, "decide", number, "licence_issued", "--why", "approved", "--site", "lilei", "--json") == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["site"] == "lilei" and issued["stage"] == "licence_issued" and "install_command" not in issued
    assert run(["hq", "licence", "list", "--json", "--hq-dir", str(hq_dir)]) == 0
    assert "lilei" in {lic["site"] for lic in json.loads(capsys.readouterr().out)}
    assert kit(hq_dir, "show", number, "--json") == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert [h["to"] for h in history][-3:] == ["contract_signed", "base_fee_paid", "licence_issued"]
    assert {h["by"] for h in history[-3:]} == {history[-1]["by"]} and history[-1]["by"].startswith("local")
