"""Pure parts of the storefront: messages, money, validation, reports, settings, the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from storefront.admin.reports import _cell, revenue
from storefront.checkout import CheckoutRefused, validate_form
from storefront.i18n import MESSAGES, translator
from storefront.money import format_money, parse_money
from storefront.ratelimit import RateLimiter
from storefront.signing import Signer
from storefront.state import ItemView

TEMPLATES = Path(__file__).resolve().parents[2] / "storefront" / "templates"
ROOT = Path(__file__).resolve().parents[2]


def test_both_locales_have_the_same_messages_and_templates_use_only_known_keys():
    assert set(MESSAGES["zh-CN"]) == set(MESSAGES["en"])
    used = set()
    for template in TEMPLATES.rglob("*.html"):
        used |= set(re.findall(r"""\bt\(['"]([a-z0-9_.]+)['"]\s*[,)]""", template.read_text()))
    assert used and used <= set(MESSAGES["en"]), used - set(MESSAGES["en"])


def test_templates_carry_no_hardcoded_chinese_outside_messages():
    for template in TEMPLATES.rglob("*.html"):
        text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", template.read_text(), flags=re.S)
        assert not re.search(r"[\u4e00-\u9fff]{2,}", text.replace("中文", "")), template.name


@pytest.mark.parametrize("cents,currency,text", [(1234, "CNY", "¥12.34"), (5, "CNY", "¥0.05"), (123456789, "CNY", "¥1,234,567.89"),
                                                   (-250, "CNY", "-¥2.50"), (1999, "USD", "$19.99"), (500, "JPY", "¥500")])
def test_money_is_formatted_for_the_currency(cents, currency, text):
    assert format_money(cents, currency) == text


def test_parse_money_accepts_at_most_two_decimals():
    assert parse_money("12.3") == 1230 and parse_money("0.05") == 5 and parse_money("7") == 700
    for bad in ("", "abc", "1.234", "1,00", "1e3"):
        with pytest.raises(ValueError):
            parse_money(bad)


ITEM = ItemView(sku="P", name="n", category="phone", price_cents=1000, hq_price_cents=900, face_value_cents=1000,
                currency="CNY", stock_kind="direct_topup", account_pattern=r"1[3-9]\d{9}", min_qty=1, max_qty=3, stock=2,
                price_rule_id=None)


def test_checkout_validation_reports_every_field_in_the_buyers_language():
    t = translator("en")
    with pytest.raises(CheckoutRefused) as refused:
        validate_form({"quantity": "3", "account": "123", "contact": "x", "password": "p", "x_coupon": "y" * 50},
                      ITEM, [{"name": "coupon", "label": "Coupon", "required": False, "max_length": 20}], t)
    assert refused.value.errors == {
        "quantity": "Not enough stock: at most 2.", "account": "This account does not look right for this product; please check it.",
        "contact": "Enter a phone number, QQ number or email.", "password": "The order password must be 6–128 characters.",
        "x_coupon": "Coupon must be at most 20 characters."}
    form = validate_form({"quantity": " 2 ", "account": "13912345678", "contact": "a@b.cn", "password": "secret1",
                          "password2": "secret1", "x_coupon": "SAVE5"}, ITEM,
                         [{"name": "coupon", "label": "Coupon", "required": False, "max_length": 20}], t)
    assert (form.quantity, form.account, form.fields) == (2, "13912345678", {"coupon": "SAVE5"})


def test_signed_values_expire_and_resist_tampering():
    signer = Signer(b"k" * 32, "test")
    token = signer.dumps({"a": 1}, 60)
    assert signer.loads(token) == {"a": 1}
    assert Signer(b"k" * 32, "other").loads(token) is None  # purpose-bound
    assert signer.loads(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert signer.loads(signer.dumps({"a": 1}, -1)) is None
    assert signer.loads("garbage") is None


def test_rate_limiter_counts_within_the_window():
    limiter = RateLimiter(2, 60)
    assert limiter.hit("a") and limiter.hit("a") and not limiter.hit("a")
    assert limiter.hit("b")
    limiter.reset("a")
    assert limiter.hit("a")


def test_csv_cells_cannot_become_formulas():
    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _cell("+86 138") == "'+86 138" and _cell("ok") == "ok"


def test_revenue_report_shows_hqs_ledger_lines_and_the_orders_not_booked_yet(tmp_path):
    """Every figure is HQ's (the agent's copy of its ledger entries); nothing is worked out again here."""
    from sqlalchemy import insert

    from sitedb.engine import make_engine, session_factory
    from sitedb.migrate import upgrade
    from sitedb.models import Order
    from sitedb.tables import settlement_entries

    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    with session_factory(engine).begin() as s:
        for i, (days_ago, status, total, hq) in enumerate([(0, "delivered", 4_700, 4_700), (0, "delivered", 5_000, 4_500),
                                                           (1, "delivered", 2_000, 1_900), (0, "rejected", 99_999, 1)]):
            s.add(Order(id=f"O{i}", sku="s", item_name=f"item {i}", category="c", quantity=1, unit_price_cents=total,
                        total_cents=total, hq_price_cents=hq, buyer_sealed="-", buyer_contact_index="-", password_hash="h",
                        created_at=now - timedelta(days=days_ago), status=status, hq_order_id=f"hq_{i}"))

    def entry(i, kind, days_ago, gross, cost, share, ref):
        return {"id": i, "posted_at": now - timedelta(days=days_ago), "kind": kind, "source": f"hq_{ref}",
                "reference": f"O{ref}" if kind == "order" else "buyer changed mind", "gross_fen": gross,
                "hq_cost_fen": cost, "hq_share_fen": share, "fees_fen": 0, "adjustment_fen": 0, "payout_fen": 0,
                "net_fen": gross + cost + share}

    with engine.begin() as conn:  # as the agent copies them; O2 delivered but not booked by HQ yet
        conn.execute(insert(settlement_entries), [
            entry(10, "order", 0, 4_700, -4_700, -705, 0),  # sold at HQ's own price: net is minus the share
            entry(11, "order", 0, 5_000, -4_500, -600, 1),
            entry(12, "refund", 0, -5_000, 4_500, 600, 1)])
    with session_factory(engine)() as s:
        report = revenue(s, "day", days=30, now=now)
    engine.dispose()
    assert [(r.period, r.orders, r.refunds, r.gross_cents, r.cost_cents, r.share_cents, r.net_cents)
            for r in report.rows] == [("2026-11-20", 2, 1, 4_700, -4_700, -705, -705)]
    assert report.grand.net_cents == -705
    assert [(x.id, x.order_id, x.item_name, x.net_fen) for x in report.lines] == [
        (12, "O1", "item 1", 100), (11, "O1", "item 1", -100), (10, "O0", "item 0", -705)]
    assert (report.awaiting_orders, report.awaiting_cents) == (1, 2_000)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storefront", *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env}, timeout=120)


def test_create_admin_cli_prints_the_password_once_and_refuses_bad_input(tmp_path):
    env = {"KIT_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    first = _run(["create-admin", "owner"], env)
    assert first.returncode == 0 and len(first.stdout.strip()) >= 16 and first.stderr == ""
    again = _run(["create-admin", "owner"], env)
    assert again.returncode == 2 and again.stderr.strip() == "error: user 'owner' already exists"
    bad = _run(["create-admin", "a b"], env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: username must be") and "Traceback" not in bad.stderr
    assert _run(["create-admin", "x1y", "root"], env).returncode == 2
    from sitedb.engine import make_engine
    from sqlalchemy import text
    engine = make_engine(env["KIT_DATABASE_URL"])
    with engine.connect() as conn:
        stored = conn.execute(text("select password_hash from admin_users")).scalar_one()
    engine.dispose()
    assert stored.startswith("$argon2id$") and first.stdout.strip() not in stored


def test_server_refuses_a_bad_bind_with_one_line(tmp_path):
    r = _run([], {"KIT_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "KIT_BIND": "nonsense"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "KIT_BIND must be HOST:PORT" in r.stderr


def test_plugin_host_is_recreated_when_the_licence_features_change(monkeypatch):
    from storefront import plugin_adapter

    loads: list[list[str]] = []
    monkeypatch.setattr(plugin_adapter, "load_host", lambda features, enabled, config_dir: loads.append(features) or object())
    cache = plugin_adapter.PluginHostCache(enabled=None, config_dir=None)
    first = cache.get(["coupons"])
    assert cache.get(["coupons"]) is first  # unchanged features: same host
    upgraded = cache.get(["notify", "coupons"])
    assert upgraded is not first and cache.get(["coupons", "notify"]) is upgraded
    assert loads == [["coupons"], ["coupons", "notify"]]


def test_without_the_plugins_package_the_shop_runs_with_no_plugins():
    from storefront.plugin_adapter import NoPlugins, load_host

    host = load_host(["coupons"], None, None)
    if isinstance(host, NoPlugins):  # until the plugins branch is merged
        assert host.checkout_fields() == [] and host.adjust_checkout(None, {})["discount_cents"] == 0
    else:
        assert hasattr(host, "checkout_fields") and hasattr(host, "adjust_checkout")


def test_first_admin_is_created_whenever_the_database_has_none(tmp_path):
    """`kitctl up` asks after every storefront (re)deploy; a lost database gets a new first admin (issue 14, case 3)."""
    env = {"KIT_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    first = _run(["create-admin", "admin", "--if-no-admin"], env)
    assert first.returncode == 0 and len(first.stdout.strip()) >= 16
    again = _run(["create-admin", "admin", "--if-no-admin"], env)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""  # has one: nothing shown
    (tmp_path / "a.db").unlink()  # the volume was removed
    recovered = _run(["create-admin", "admin", "--if-no-admin"], env)
    assert recovered.returncode == 0 and len(recovered.stdout.strip()) >= 16
    assert _run(["create-admin", "admin", "operator", "--if-no-admin"], env).returncode == 2


def test_the_gateway_address_is_recorded_as_unknown(tmp_path, monkeypatch):
    """Behind the userland proxy every buyer came from the gateway and HQ's IP rule held them all (issue 14, case 5)."""
    from types import SimpleNamespace

    from storefront import web

    route = tmp_path / "route"
    route.write_text("Iface\tDestination\tGateway\tFlags\n"
                     "eth0\t00000000\t010011AC\t0003\neth0\t000011AC\t00000000\t0001\n")
    assert web.default_gateway.__wrapped__(str(route)) == "172.17.0.1"
    monkeypatch.setattr(web, "default_gateway", lambda: "172.17.0.1")
    assert web.buyer_address(SimpleNamespace(client=SimpleNamespace(host="172.17.0.1"))) is None
    assert web.buyer_address(SimpleNamespace(client=SimpleNamespace(host="203.0.113.9"))) == "203.0.113.9"
    assert web.buyer_address(SimpleNamespace(client=None)) is None


def test_staff_command_lists_creates_resets_and_disables(tmp_path):
    """The container side of `kitctl admin …`: the admin UI's own functions, one-line refusals (issue 14, case 3)."""
    import json as json_

    env = {"KIT_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    first = _run(["staff", "create", "owner"], env).stdout.strip()
    made = _run(["staff", "create", "ops", "operator"], env)
    assert made.returncode == 0 and len(made.stdout.strip()) >= 16
    listed = json_.loads(_run(["staff", "list"], env).stdout)
    assert listed == [{"username": "ops", "role": "operator", "disabled": False},
                      {"username": "owner", "role": "admin", "disabled": False}]
    reset = _run(["staff", "reset-password", "owner"], env).stdout.strip()
    assert len(reset) >= 16 and reset != first
    assert _run(["staff", "disable", "ops"], env).stdout.strip() == "disabled ops"
    assert json_.loads(_run(["staff", "list"], env).stdout)[0]["disabled"] is True
    last = _run(["staff", "disable", "owner"], env)
    assert last.returncode == 2 and last.stderr.strip() == "error: the last enabled admin cannot be disabled or deleted"
    missing = _run(["staff", "reset-password", "nobody"], env)
    assert missing.returncode == 2 and missing.stderr.strip() == "error: no account 'nobody'"
    assert _run(["staff", "create", "x1y", "root"], env).returncode == 2


def test_a_storefront_that_migrates_its_database_lets_plugins_create_their_tables(tmp_path):
    """Only the schema's owner runs plugin DDL: a storefront with KIT_MIGRATE_ON_START (standalone), not one
    beside an agent (two processes creating one table race)."""
    from sqlalchemy import create_engine, inspect

    from storefront.plugin_adapter import PluginHostCache

    owner, beside = create_engine(f"sqlite:///{tmp_path}/a.db"), create_engine(f"sqlite:///{tmp_path}/b.db")
    PluginHostCache(None, None, owner).get(["coupons"])
    PluginHostCache(None, None).get(["coupons"])
    assert inspect(owner).has_table("plugin_coupons") and not inspect(beside).has_table("plugin_coupons")
