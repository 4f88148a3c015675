"""Debian's Chromium, headless, driven by Playwright (no browser download)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, which
# this machine's closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser; closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def follow(page: Any, selector: str) -> None:
    """Click what navigates (a link, a form's button) and wait until the new page has loaded: a click alone
    returns once the navigation commits, before the page is parsed, and reading it then may find nothing."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)
