"""Demo catalog and card keys HQ starts with."""

from __future__ import annotations

import csv
import io
import secrets

# sku, name, category, face value, HQ price (cents), stock kind, account pattern
ITEMS: list[tuple[str, str, str, int, int, str, str]] = [
    ("game-steam-100", "Steam 钱包充值卡 ¥100", "game", 10000, 9300, "card_key", ""),
    ("game-steam-50", "Steam 钱包充值卡 ¥50", "game", 5000, 4700, "card_key", ""),
    ("game-genshin-648", "原神 创世结晶 6480", "game", 64800, 60000, "card_key", ""),
    ("phone-cmcc-50", "中国移动 话费 ¥50", "phone", 5000, 4850, "card_key", ""),
    ("phone-cu-100", "中国联通 话费 ¥100", "phone", 10000, 9700, "card_key", ""),
    ("member-video-month", "视频会员 月卡", "membership", 2500, 1800, "card_key", ""),
]


def items_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sku", "name", "category", "face_value_cents", "price_cents", "stock_kind"])
    for sku, name, category, face, price, kind, _pattern in ITEMS:
        writer.writerow([sku, name, category, face, price, kind])
    return out.getvalue()


def card_keys_csv(per_sku: int = 20) -> str:
    """Fresh random card keys for every demo SKU (generated, never shipped)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sku", "serial", "secret"])
    for sku, *_ in ITEMS:
        for _ in range(per_sku):
            writer.writerow([sku, secrets.token_hex(6).upper(), "-".join(secrets.token_hex(2).upper() for _ in range(4))])
    return out.getvalue()


LOGO_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 120" width="120" height="120">
<rect width="120" height="120" rx="24" fill="#4f46e5"/>
<path d="M60 18 L71 48 L103 48 L77 67 L87 98 L60 79 L33 98 L43 67 L17 48 L49 48 Z" fill="#fbbf24"/>
</svg>
"""
