"""A small HTTP client for tests that talk to the real server without a browser."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def form_token(html: str, pattern: re.Pattern[str] = CSRF) -> str:
    found = pattern.search(html)
    assert found, "form token not found in page"
    return found.group(1)


def login(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    token = form_token(client.get("/admin/login").text)
    r = client.post("/admin/login", data={"csrf": token, "username": username, "password": password})
    assert r.status_code == 303, r.text[:500]
    return client


def checkout(client: httpx.Client, sku: str, **fields: str) -> httpx.Response:
    """Open the product page (CSRF cookie + form nonce), then submit the checkout form."""
    page = client.get(f"/p/{sku}").text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw",
            "region": "CN"}  # as a browser submits the form where the address tells no region (ignored where it does)
    data.update(fields)
    return client.post(f"/p/{sku}/checkout", data=data)
