"""Who is ordering, and whether an order can be fulfilled at all: shared by both decision paths.

The per-order path (`hq.orders`) and the batch path (`hq.batch`) reject the
same orders for the same reasons; both read them from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hq.models import CatalogItem
    from hq.schemas import OrderIn


@dataclass(frozen=True)
class SiteContext:
    """Who is ordering: from the verified licence."""

    site_id: str
    categories: tuple[str, ...]
    regions: tuple[str, ...]


def catalog_problem(item: CatalogItem | Any, ctx: SiteContext, order: OrderIn) -> str | None:
    """A reason the order cannot be fulfilled at all, or None."""
    if item is None or item.deleted:
        return "unknown_sku"
    if item.category not in ctx.categories:
        return "category_not_licensed"
    if item.status != "active":
        return "sku_inactive"
    if not item.min_qty <= order.quantity <= item.max_qty:
        return f"quantity_out_of_range:{item.min_qty}-{item.max_qty}"
    if item.stock_kind == "direct_topup" and item.account_pattern:
        account = order.buyer.account or ""
        try:
            if not re.fullmatch(item.account_pattern, account):
                return "account_mismatch"
        except re.error:
            return "account_mismatch"
    return None
