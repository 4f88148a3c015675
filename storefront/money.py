"""Prices for people: integer minor units formatted for the site currency."""

from __future__ import annotations

SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "JPY": "¥", "GBP": "£", "TWD": "NT$"}
NO_MINOR_UNITS = {"JPY"}


def format_money(cents: int, currency: str = "CNY") -> str:
    """`1234, "CNY"` → `¥12.34`; negative amounts keep the sign before the symbol."""
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    symbol = SYMBOLS.get(currency, currency + " ")
    if currency in NO_MINOR_UNITS:
        return f"{sign}{symbol}{cents:,}"
    return f"{sign}{symbol}{cents // 100:,}.{cents % 100:02d}"


def parse_money(text: str) -> int:
    """`"12.3"` → 1230 fen; refuses more than two decimals or anything but digits and a dot."""
    text = text.strip()
    negative = text.startswith("-")
    body = text[1:] if negative else text
    whole, _, frac = body.partition(".")
    if not whole.isdigit() and not (whole == "" and frac) or (frac and not frac.isdigit()) or len(frac) > 2:
        raise ValueError("amount must be a number with at most two decimals, e.g. 12.50")
    cents = int(whole or "0") * 100 + int((frac + "00")[:2] or "0")
    return -cents if negative else cents
