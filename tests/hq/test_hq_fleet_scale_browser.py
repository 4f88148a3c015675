"""The fleet page in headless Chromium with 10,000 sites in HQ's database: search, filters,
paging, sorting, a bulk action confirmed by its count, the site page and the Chinese page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from hq.models import Command, Site
from hq.testing import running_hq, seed_fleet
from tests.conftest import require
from tests.support.browser import CHROMIUM, chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLEET = 10_000

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def big_hq(tmp_path_factory):
    with running_hq(tmp_path_factory.mktemp("fleet10k")) as hq:
        seed_fleet(hq.service, FLEET)
        yield hq


@pytest.fixture(scope="module")
def page(big_hq):
    require(CHROMIUM.exists(), "Debian chromium is not installed")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{big_hq.url}/fleet/login")
        page.fill("#token", big_hq.operator_token)
        page.click("main button[type=submit]")
        page.wait_for_selector("#sites")
        yield page


def rows(page) -> list[str]:
    return [r.get_attribute("data-site") for r in page.query_selector_all("#sites tbody tr[data-site]")]


def matched(page) -> int:
    return int(re.match(r"\s*(\d+)", page.inner_text("#matches")).group(1))


def test_first_page_of_ten_thousand_then_paging_and_sorting(big_hq, page):
    page.goto(f"{big_hq.url}/fleet")
    assert page.inner_text("#count-sites") == str(FLEET) and matched(page) == FLEET
    assert rows(page) == [f"site-{i:05d}" for i in range(50)]
    assert "page 1 of 200" in page.inner_text("#matches")
    page.click("#pager a[rel=next]")
    assert rows(page) == [f"site-{i:05d}" for i in range(50, 100)]
    page.click("#pager a[rel=last]")
    assert rows(page) == [f"site-{i:05d}" for i in range(9950, 10000)] and "page 200 of 200" in page.inner_text("#matches")
    page.click("th a[data-sort=site]")  # descending, back to page 1
    assert rows(page)[:2] == ["site-09999", "site-09998"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hq-fleet-10k.png"))


def test_search_and_filters_from_the_form(big_hq, page):
    page.goto(f"{big_hq.url}/fleet")
    page.fill("#filters input[name=q]", "shop4242.")
    page.click("#filters button[type=submit]")
    assert rows(page) == ["site-04242"]
    page.goto(f"{big_hq.url}/fleet")
    page.fill("#filters input[name=q]", "Licensee 499")
    page.click("#filters button[type=submit]")
    assert matched(page) == 20 and all(int(s[-5:]) % 500 == 499 for s in rows(page))
    page.goto(f"{big_hq.url}/fleet")
    page.select_option("#filters select[name=state]", "suspended")
    page.select_option("#filters select[name=tier]", "pro")
    page.select_option("#filters select[name=version]", "0.3.1")
    page.click("#filters button[type=submit]")
    expected = [i for i in range(FLEET) if i % 10 == 3 and i % 3 == 1]  # tier and version cycle together
    assert matched(page) == len(expected) and rows(page) == [f"site-{i:05d}" for i in expected[:50]]
    page.goto(f"{big_hq.url}/fleet")
    page.select_option("#filters select[name=alert]", "silent")
    page.select_option("#filters select[name=ring]", "none")
    page.select_option("#filters select[name=size]", "200")
    page.click("#filters button[type=submit]")
    silent = [i for i in range(FLEET) if i % 100 == 50]  # every one of them in no ring (i % 5 == 0)
    assert rows(page) == [f"site-{i:05d}" for i in silent]


def test_bulk_revoke_of_a_selection_confirms_its_count_then_sends_each_site_a_command(big_hq, page):
    page.goto(f"{big_hq.url}/fleet?q=site-0060&state=active")
    chosen = rows(page)[:7]
    for site in chosen:
        page.check(f"tr[data-site={site}] input[name=sites]")
    page.select_option("#bulk select[name=action]", "revoke")
    page.fill("#bulk input[name=reason]", "fraud ring")
    page.click("#bulk button[type=submit]")
    assert page.inner_text("#confirm-question") == "revoke: 7 sites?"
    with big_hq.service.read() as conn:
        assert not conn.execute(select(Command.site_id).where(Command.type == "revoke")).all()  # nothing yet
    page.click("#confirm button[type=submit]")
    assert "revoke: 7 of 7 sites done" in page.inner_text(".flash.ok")
    assert "state=active" in page.url and not set(chosen) & set(rows(page))  # back to the list, revoked gone
    with big_hq.service.read() as conn:
        revoked = {s for (s,) in conn.execute(select(Command.site_id).where(Command.type == "revoke"))}
        statuses = {st for (st,) in conn.execute(select(Site.status).where(Site.id.in_(chosen)))}
    assert revoked == set(chosen) and statuses == {"revoked"}
    page.goto(f"{big_hq.url}/fleet/sites/{chosen[0]}")
    assert "fraud ring" in page.inner_text("#site-commands") and "not yet applied" in page.inner_text("#site-commands")
    page.screenshot(path=str(ARTIFACTS / "hq-fleet-site.png"), full_page=True)


def test_sync_all_matching_the_filter_names_the_count_past_one_page(big_hq, page):
    page.goto(f"{big_hq.url}/fleet?ring=1&tier=pro")
    n = matched(page)
    expected = {f"site-{i:05d}" for i in range(FLEET) if i % 5 != 0 and i % 4 == 1 and i % 3 == 1}  # SEED_TIERS[1]
    assert n == len(expected) and n > 200  # more than a page can tick
    page.select_option("#bulk select[name=action]", "sync")
    page.check("#bulk input[name=scope]")
    page.click("#bulk button[type=submit]")
    assert page.inner_text("#confirm-question") == f"sync now: all {n} sites matching the filter?"
    assert "ring=1" in page.inner_text("#confirm-filter")
    page.click("#confirm button[type=submit]")
    assert f"sync now: {n} of {n} sites done" in page.inner_text(".flash.ok")
    with big_hq.service.read() as conn:
        synced = {s for (s,) in conn.execute(select(Command.site_id).where(Command.type == "sync_now"))}
    assert synced == expected


def test_the_page_in_chinese(big_hq, page):
    page.goto(f"{big_hq.url}/fleet")
    page.click("header .langs a[hreflang=zh-CN]")
    assert page.inner_text("header h1") == "总部分站管理"
    assert re.match(r"共 \d+ 个分站符合", page.inner_text("#matches"))
    page.click("#pager a[rel=next]")
    assert "第 2/" in page.inner_text("#matches")  # the language stays with the cookie
    page.screenshot(path=str(ARTIFACTS / "hq-fleet-zh.png"))
    page.click("header .langs a[hreflang=en]")
    assert page.inner_text("header h1") == "HQ fleet"
