"""An application driven through HQ's pages in Chromium, from the apply form to the mailed install command
(tests/hq/test_hq_applications_browser.py; tests/e2e/test_application_up.py launches a site with it)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from hq.testing import RunningHQ
from tests.hq.application_support import JPEG, PDF, PNG
from tests.monitoring.receivers import Mailbox


def files(tmp: Path) -> dict[str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    made = {"licence.pdf": PDF, "game.png": PNG, "licence-rescan.jpg": JPEG, "fake.pdf": b"#!/bin/sh\nrm -rf /\n"}
    for name, data in made.items():
        (tmp / name).write_bytes(data)
    return {name: tmp / name for name in made}


def apply_and_get_licensed(browser: Any, hq: RunningHQ, box: Mailbox, tmp: Path, site: str,
                           domain: str = "localhost") -> str:
    """Apply → a refused upload → submitted → rejected by an operator → resubmitted → each stage → licence issued.

    Returns the install command from the approval mail (the applicant's last one)."""
    f = files(tmp)
    applicant = browser.new_page(viewport={"width": 1200, "height": 900})
    applicant.goto(f"{hq.url}/apply?lang=zh-CN")
    assert applicant.inner_text("h1") == "申请成为合作伙伴"
    applicant.click("a[hreflang=en]")
    assert applicant.inner_text("h1") == "Apply to become a partner"
    _fill(applicant, "星辰网络 E2E", "owner@xingchen.example.cn", domain)
    applicant.set_input_files("#material-identity", str(f["fake.pdf"]))  # a script named .pdf: refused
    applicant.set_input_files("#material-game", str(f["game.png"]))
    applicant.click("#apply-submit")
    assert "not a PDF, PNG or JPEG file" in applicant.inner_text("#apply-error")
    assert not list((hq.hq_dir / "application-materials").glob("*")) if (hq.hq_dir / "application-materials").exists() else True
    _fill(applicant, "星辰网络 E2E", "owner@xingchen.example.cn", domain)  # the page kept the values; set the files again
    applicant.set_input_files("#material-identity", str(f["licence.pdf"]))
    applicant.set_input_files("#material-game", str(f["game.png"]))
    applicant.fill("#expires-game", "2030-01-31")
    applicant.click("#apply-submit")
    number, secret = applicant.inner_text("#app-number").strip(), applicant.inner_text("#app-secret").strip()
    assert re.fullmatch(r"A-\d{6}", number) and applicant.get_attribute("#app-stage", "data-stage") == "manual_review"

    operator = browser.new_page(viewport={"width": 1400, "height": 900})
    operator.goto(f"{hq.url}/fleet/login")
    operator.fill("#token", hq.operator_token)
    operator.click("button[type=submit]")
    operator.wait_for_selector(f"#applications tr[data-number='{number}']")
    operator.click(f"#applications tr[data-number='{number}'] a")
    operator.fill("#why", "the business licence scan is unreadable")
    operator.click("#reject")
    assert operator.get_attribute("#application", "data-stage") == "rejected"

    applicant.click("#to-status")
    assert applicant.get_attribute("#stage", "data-stage") == "rejected"
    assert "the business licence scan is unreadable" in applicant.inner_text("#reasons")
    applicant.set_input_files("#re-identity", str(f["licence-rescan.jpg"]))
    applicant.click("#resubmit-go")
    assert applicant.get_attribute("#stage", "data-stage") == "manual_review"
    assert "licence-rescan.jpg" in applicant.inner_text("#materials")

    operator.reload()
    for stage in ("contract_signed", "base_fee_paid", "licence_issued"):
        operator.fill("#why", f"{stage}: done")
        if stage == "licence_issued":
            operator.fill("#site", site)
        operator.click("#advance")
        assert operator.get_attribute("#application", "data-stage") == stage, operator.inner_text("main")[:500]
    assert operator.inner_text("#app-site") == site
    history = operator.inner_text("#history")
    assert history.count("tester") == 4 and "the business licence scan is unreadable" in history

    lookup = browser.new_page()  # a fresh visit with the number and secret, as the mail's link leads
    lookup.goto(f"{hq.url}/apply/status?n={number}")
    lookup.fill("#s", secret)
    lookup.click("#lookup button")
    assert lookup.get_attribute("#stage", "data-stage") == "licence_issued" and site in lookup.inner_text("#issued")
    lookup.goto(f"{hq.url}/apply/status?n={number}")
    lookup.fill("#s", secret[:-1] + ("x" if secret[-1] != "x" else "y"))  # forged: nothing shown
    lookup.click("#lookup button")
    assert lookup.inner_text("#status-error") == "no application with this number and secret"
    return install_command(box, number)


def _fill(page: Any, name: str, email: str, domain: str) -> None:
    page.check("input[name=applicant][value=company]")
    page.fill("#name", name)
    page.fill("#email", email)
    page.check("#categories input[value=game]")
    page.fill("#regions", "CN, CN-GD")
    page.select_option("#tier", "pro")
    page.fill("#domain", domain)


def install_command(box: Mailbox, number: str) -> str:
    mine = [m for m in box.messages if number in str(m["Subject"])]
    assert [str(m["Subject"]).split(": ", 1)[1] for m in mine] == [
        "Manual review", "Rejected: to be fixed", "Manual review", "Contract signed", "Base fee paid", "Licence issued"]
    [line] = [ln.strip() for ln in mine[-1].get_content().splitlines() if "kitctl up --licence" in ln]
    return line.split(" ", 1)[1]  # "2. kitctl up …"


def command_args(command: str) -> list[str]:
    """The mailed command's arguments after `kitctl up`."""
    words = shlex.split(command)
    assert words[:2] == ["kitctl", "up"], words[:3]
    return words[2:]
