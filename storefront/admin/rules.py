"""Price rules: parse the admin's form, preview the effect, save and re-price in one transaction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from sitedb.models import AuditEntry, CatalogItem, PriceRule
from sitedb.pricing import KINDS, ROUNDINGS, RULE_FIELDS, SCOPES, Rule, price_item

MAX_PERCENT_BPS = 100_000  # 1000 %
MAX_FIXED_CENTS = 10_000_000  # 100000 yuan


class RuleRefused(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def _value(raw: str, kind: str) -> int | None:
    """Percent "8.5" → 850 bps; fixed "1.50" → 150 cents; None when not a valid markup."""
    try:
        number = Decimal(raw.strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0 or number.as_tuple().exponent < -2:  # type: ignore[operator]
        return None
    scaled = int(number * 100)
    limit = MAX_PERCENT_BPS if kind == "percent" else MAX_FIXED_CENTS
    return scaled if scaled <= limit else None


def parse_rule(form: dict[str, str], session: Session, t: Callable[..., str]) -> Rule:
    """The rule the admin entered, validated; its `id` is set when it replaces an existing rule."""
    errors: dict[str, str] = {}
    scope, kind, rounding = form.get("scope", ""), form.get("kind", ""), form.get("rounding", "none")
    target = form.get("target", "").strip() or None
    if scope not in SCOPES:
        errors["scope"] = t("err.rule_scope")
    elif scope == "all":
        target = None
    elif not target or not _target_exists(session, scope, target):
        errors["target"] = t("err.rule_target")
    if kind not in KINDS:
        errors["kind"] = t("err.rule_kind")
    value = _value(form.get("value", ""), kind) if kind in KINDS else None
    if value is None and "kind" not in errors:
        errors["value"] = t("err.rule_value")
    if rounding not in ROUNDINGS:
        errors["rounding"] = t("err.rule_rounding")
    rule_id = form.get("id", "").strip()
    if rule_id and (not rule_id.isdigit() or session.get(PriceRule, int(rule_id)) is None):
        errors["form"] = t("err.rule_missing")
    if errors:
        raise RuleRefused(errors)
    return Rule(scope=scope, target=target, kind=kind, value=value or 0, rounding=rounding,
                enabled=form.get("enabled") == "on", id=int(rule_id) if rule_id else None)


def _target_exists(session: Session, scope: str, target: str) -> bool:
    column = CatalogItem.category if scope == "category" else CatalogItem.sku
    return session.scalar(select(column).where(column == target).limit(1)) is not None


def _rules_with(session: Session, draft: Rule | None, drop_id: int | None = None) -> list[Rule]:
    """The rule set as it would be after saving `draft` (or deleting `drop_id`)."""
    rules = [
        Rule(**{name: getattr(r, name) for name in RULE_FIELDS})
        for r in session.scalars(select(PriceRule)) if r.id != drop_id and (draft is None or r.id != draft.id)
    ]
    if draft is not None:
        rules.append(replace(draft, id=draft.id or 2**62))  # a new rule is the newest
    return rules


@dataclass
class PriceChange:
    sku: str
    name: str
    category: str
    hq_price_cents: int
    current_cents: int
    new_cents: int


def preview(session: Session, draft: Rule | None, drop_id: int | None = None) -> list[PriceChange]:
    """Every item whose selling price would change, and how."""
    rules = _rules_with(session, draft, drop_id)
    changes = []
    for item in session.scalars(select(CatalogItem).order_by(CatalogItem.category, CatalogItem.sku)):
        new, _ = price_item(item, rules)
        if new != item.price_cents:
            changes.append(PriceChange(item.sku, item.name, item.category, item.hq_price_cents, item.price_cents, new))
    return changes


def reprice_all(session: Session) -> int:
    """Apply the current rules to every item (same function the agent uses); returns how many changed."""
    rules = list(session.scalars(select(PriceRule)))
    changed = 0
    for item in session.scalars(select(CatalogItem)):
        price, rule_id = price_item(item, rules)
        if price != item.price_cents or rule_id != item.price_rule_id:
            item.price_cents, item.price_rule_id = price, rule_id
            changed += 1
    return changed


def save_rule(session: Session, draft: Rule, actor: str) -> int:
    """Insert or update the rule and re-price the catalog, all in the caller's transaction."""
    said = {name: value for name, value in asdict(draft).items() if name != "id"}
    if draft.id is None:
        rule = PriceRule(**said)
        session.add(rule)
    else:
        rule = session.get(PriceRule, draft.id)
        assert rule is not None
        for name, value in said.items():
            setattr(rule, name, value)
    session.flush()
    changed = reprice_all(session)
    session.add(AuditEntry(actor=actor, action="price_rule_saved", detail={**asdict(draft), "id": rule.id, "repriced": changed}))
    return changed


def delete_rule(session: Session, rule_id: int, actor: str) -> bool:
    rule = session.get(PriceRule, rule_id)
    if rule is None:
        return False
    session.delete(rule)
    session.flush()
    changed = reprice_all(session)
    session.add(AuditEntry(actor=actor, action="price_rule_deleted", detail={"id": rule_id, "repriced": changed}))
    return True


def form_values(rule: Any) -> dict[str, str]:
    """An existing rule as the form shows it (percent as "8.50", fixed as "1.50")."""
    return {"id": str(rule.id), "scope": rule.scope, "target": rule.target or "", "kind": rule.kind,
            "value": f"{Decimal(rule.value) / 100:.2f}", "rounding": rule.rounding, "enabled": "on" if rule.enabled else ""}


def describe_value(rule: Any) -> str:
    if rule.kind == "percent":
        return f"+{Decimal(rule.value) / 100:.2f}%"
    return f"+{Decimal(rule.value) / 100:.2f}"
