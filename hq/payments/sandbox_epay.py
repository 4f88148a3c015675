"""A sandbox 易支付 (epay) gateway: the gateway's side of the protocol, with its own merchants and keys.

Tests and the demo pay through it so HQ's real verification code runs: it
checks the merchant's signature on `submit.php`, shows the payer a page with a
pay button, and on payment calls the merchant's `notify_url` with a signed
notification (retrying until the merchant answers `success`, as gateways do).
`api.php?act=order`, `act=orders` (the merchant's trades, newest first, a
page at a time: what HQ's daily reconciliation reads) and `act=refund` answer
as the protocol says; times are the gateway's local time (Asia/Shanghai). Its signing
code is written apart from hq.payments.epay on purpose, so one cannot hide a
mistake of the other.

What it is not: a payment processor. No money moves, and the knobs
(`drop_notifications`, `notify_attempts`) exist to play lost notifications.
The cashier page also offers a payer the gateway's faults, one trade at a time
(a test on the stack in containers has no other way to reach them): paid but
the notification lost (`lose_notification`), or paid and notified ¥0.01 more
than the order's amount (`wrong_amount`).
"""

from __future__ import annotations

import hashlib
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ContextManager
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from hq.payments import sandbox_common as common
from hq.payments.sandbox_common import Notifying


def sandbox_sign(fields: dict[str, str], key: str) -> str:
    """The gateway's own MD5 signature (see the module docstring for why it is not imported)."""
    pairs = sorted((k, v) for k, v in fields.items() if k not in {"sign", "sign_type"} and v not in ("", None))
    return hashlib.md5(("&".join(k + "=" + v for k, v in pairs) + key).encode("utf-8")).hexdigest()


@dataclass
class Trade:
    trade_no: str
    pid: str
    out_trade_no: str
    pay_type: str
    name: str
    money: str
    notify_url: str
    return_url: str
    status: int = 0  # 0 unpaid, 1 paid
    refunded: str = "0.00"
    notified: int = 0  # notifications the merchant acknowledged
    notified_at: float = 0.0  # monotonic: when the acknowledged notification was sent (benchmarks measure from it)
    notice_money: str | None = None  # the amount notified, when a fault changes it
    addtime: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    endtime: datetime | None = None  # when it was paid


FAULTS = ("lose_notification", "wrong_amount")  # the cashier page's fault buttons (see the module docstring)
LOCAL = timezone(timedelta(hours=8))  # epay gateways keep their books in China's time
ORDERS_PAGE_MAX = 50


def local_time(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class EpaySandbox(Notifying):
    merchants: dict[str, str] = field(default_factory=dict)  # pid -> key
    trades: dict[str, Trade] = field(default_factory=dict)  # trade_no -> trade
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_merchant(self, pid: str | None = None) -> tuple[str, str]:
        pid = pid or str(1000 + len(self.merchants))
        self.merchants[pid] = secrets.token_hex(16)
        return pid, self.merchants[pid]

    def by_out_trade_no(self, pid: str, out_trade_no: str) -> Trade | None:
        return next((t for t in self.trades.values() if t.pid == pid and t.out_trade_no == out_trade_no), None)

    # -- the protocol --------------------------------------------------------------
    async def submit(self, request: Request) -> Response:
        fields = dict(request.query_params)
        if request.method == "POST":
            fields.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        key = self.merchants.get(fields.get("pid", ""))
        if key is None or fields.get("sign") != sandbox_sign(fields, key):
            return HTMLResponse("<p>签名错误 (sign error)</p>", status_code=400)
        for name in ("out_trade_no", "notify_url", "return_url", "name", "money"):
            if not fields.get(name):
                return HTMLResponse(f"<p>missing {name}</p>", status_code=400)
        with self._lock:
            trade = self.by_out_trade_no(fields["pid"], fields["out_trade_no"])
            if trade is None:
                trade = Trade(trade_no="S" + secrets.token_hex(10), pid=fields["pid"],
                              out_trade_no=fields["out_trade_no"], pay_type=fields.get("type") or "alipay",
                              name=fields["name"], money=fields["money"], notify_url=fields["notify_url"],
                              return_url=fields["return_url"])
                self.trades[trade.trade_no] = trade
        return HTMLResponse(
            f"<!doctype html><meta charset=utf-8><title>沙箱收银台</title><h1>沙箱收银台 · sandbox cashier</h1>"
            f"<p id=amount>¥{html.escape(trade.money)}</p><p>{html.escape(trade.name)}</p>"
            f"<form method=post action='/pay/{trade.trade_no}'><button id=pay>确认支付 · Pay</button>"
            f"<p>沙箱故障 · sandbox faults: <button id=pay-lose-notification name=fault value=lose_notification>"
            f"支付，丢失通知 · pay, lose the notification</button> <button id=pay-wrong-amount name=fault "
            f"value=wrong_amount>支付，通知金额 +¥0.01 · pay, notify ¥0.01 more</button></form>")

    async def pay_page(self, request: Request) -> Response:
        fault = (await request.form()).get("fault") or None
        if fault is not None and fault not in FAULTS:
            return PlainTextResponse(f"unknown fault {str(fault)[:40]!r}", status_code=400)
        trade = self.pay(request.path_params["trade_no"], fault)
        if trade is None:
            return PlainTextResponse("no such trade", status_code=404)
        return RedirectResponse(trade.return_url, status_code=303)

    def pay(self, trade_no: str, fault: str | None = None) -> Trade | None:
        """The payer paid: mark the trade and notify the merchant (in the background, with retries),
        unless `fault` (one of FAULTS) loses the notification or changes its amount."""
        trade = self.trades.get(trade_no)
        if trade is None:
            return None
        if trade.status == 0:
            trade.status, trade.endtime = 1, datetime.now(timezone.utc)
            if fault == "wrong_amount":
                trade.notice_money = f"{Decimal(trade.money) + Decimal('0.01'):.2f}"
            if fault != "lose_notification":
                self.notify_later(self.notify, trade)
        return trade

    def notification(self, trade: Trade, **override: str) -> dict[str, str]:
        """The signed notification for `trade` (fields in `override` change before signing)."""
        fields = {"pid": trade.pid, "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                  "type": trade.pay_type, "name": trade.name, "money": trade.money, "trade_status": "TRADE_SUCCESS",
                  **override}
        return {**fields, "sign": sandbox_sign(fields, self.merchants[trade.pid]), "sign_type": "MD5"}

    def notify(self, trade: Trade) -> bool:
        """Call the merchant's notify_url until it answers `success` (bounded)."""
        query = urlencode(self.notification(trade, **({"money": trade.notice_money} if trade.notice_money else {})))

        def send() -> bool:
            started = time.monotonic()
            resp = httpx.get(f"{trade.notify_url}?{query}", timeout=5)
            acknowledged = resp.status_code == 200 and resp.text.strip() == "success"
            trade.notified_at = started if acknowledged else trade.notified_at
            return acknowledged

        acknowledged = self.retried(send)
        trade.notified += acknowledged
        return acknowledged

    async def api(self, request: Request) -> Response:
        fields = dict(request.query_params)
        if request.method == "POST":
            fields.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        pid = fields.get("pid", "")
        if pid not in self.merchants or fields.get("key") != self.merchants[pid]:
            return JSONResponse({"code": -3, "msg": "KEY校验失败"})
        if fields.get("act") == "orders":
            return JSONResponse(self.orders(pid, fields.get("limit", "20"), fields.get("page", "1")))
        trade = self.trades.get(fields.get("trade_no", "")) or self.by_out_trade_no(pid, fields.get("out_trade_no", ""))
        if trade is None or trade.pid != pid:
            return JSONResponse({"code": -1, "msg": "订单号不存在"})
        act = fields.get("act")
        if act == "order":
            return JSONResponse({"code": 1, "msg": "查询订单号成功！", **self.record(trade)})
        if act == "refund":
            return JSONResponse(self.refund(trade, fields.get("money", "")))
        return JSONResponse({"code": -4, "msg": "act error"})

    @staticmethod
    def record(trade: Trade) -> dict[str, Any]:
        """A trade as the API shows it."""
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "type": trade.pay_type,
                "pid": trade.pid, "addtime": local_time(trade.addtime), "endtime": local_time(trade.endtime),
                "name": trade.name, "money": trade.money, "status": trade.status, "refundmoney": trade.refunded}

    def orders(self, pid: str, limit: str, page: str) -> dict[str, Any]:
        """`act=orders`: the merchant's trades, newest first; `limit` (at most 50) a page, `page` from 1."""
        if not (limit.isdigit() and page.isdigit()) or int(limit) < 1 or int(page) < 1:
            return {"code": -1, "msg": "limit/page error"}
        size = min(int(limit), ORDERS_PAGE_MAX)
        with self._lock:
            mine = sorted((t for t in self.trades.values() if t.pid == pid), key=lambda t: t.addtime, reverse=True)
        chunk = mine[(int(page) - 1) * size:int(page) * size]
        return {"code": 1, "msg": "查询结果记录成功！", "data": [self.record(t) for t in chunk]}

    def refund(self, trade: Trade, money: str) -> dict[str, Any]:
        try:
            amount = Decimal(money)
        except ArithmeticError:
            return {"code": -1, "msg": "money error"}
        if trade.status != 1 or amount <= 0 or Decimal(trade.refunded) + amount > Decimal(trade.money):
            return {"code": -1, "msg": "退款金额错误"}
        trade.refunded = f"{Decimal(trade.refunded) + amount:.2f}"
        return {"code": 1, "msg": "退款成功"}

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/submit.php", self.submit, methods=["GET", "POST"]),
            Route("/pay/{trade_no}", self.pay_page, methods=["POST"]),
            Route("/api.php", self.api, methods=["GET", "POST"]),
        ])


def serving(sandbox: EpaySandbox, host: str = "127.0.0.1", port: int | None = None) -> ContextManager[EpaySandbox]:
    """Serve the sandbox on a loopback port until the block ends (`sandbox.url` is set)."""
    return common.serving(sandbox, "epay sandbox", host, port)
