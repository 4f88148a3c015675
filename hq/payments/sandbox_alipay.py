"""A sandbox Alipay gateway: Alipay's side of the Open Platform protocol, with its own keys.

It registers apps (each with an RSA2 key pair it generates: the app's private
key goes to the merchant, as Alipay's key tool would make it), keeps Alipay's
own key pair, verifies the app's signature on every `gateway.do` call, answers
alipay.trade.precreate (a QR code that opens its payer page),
alipay.trade.wap.pay (the cashier page), alipay.trade.query and
alipay.trade.refund with responses signed over their exact text, and on payment
POSTs a signed notification to `notify_url` until it hears `success`. Its
signing code is written apart from hq.payments.alipay on purpose.

What it is not: Alipay. No money moves; `drop_notifications` plays a lost one.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ContextManager

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from hq.payments import sandbox_common as common
from hq.payments.sandbox_common import Notifying

CST = timezone(timedelta(hours=8))


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def pem_public(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa2_sign(key: rsa.RSAPrivateKey, fields: dict[str, str], skip: tuple[str, ...]) -> str:
    """Alipay's RSA2 over the sorted non-empty fields (see the module docstring for why it is not imported)."""
    text = "&".join(k + "=" + fields[k] for k in sorted(fields) if k not in skip and fields[k] not in ("", None))
    return base64.b64encode(key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_valid(public: rsa.RSAPublicKey, fields: dict[str, str]) -> bool:
    text = "&".join(k + "=" + fields[k] for k in sorted(fields) if k != "sign" and fields[k] not in ("", None))
    try:
        public.verify(base64.b64decode(fields.get("sign", "")), text.encode("utf-8"), padding.PKCS1v15(),
                      hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class App:
    app_id: str
    public: rsa.RSAPublicKey
    seller_id: str


@dataclass
class Trade:
    trade_no: str
    app_id: str
    out_trade_no: str
    subject: str
    total_amount: str
    notify_url: str
    return_url: str = ""
    status: str = "WAIT_BUYER_PAY"
    refunded: str = "0.00"
    refund_requests: set[str] = field(default_factory=set)
    notified: int = 0


@dataclass
class AlipaySandbox(Notifying):
    apps: dict[str, App] = field(default_factory=dict)
    trades: dict[str, Trade] = field(default_factory=dict)  # trade_no -> trade
    _key: rsa.RSAPrivateKey = field(default_factory=new_key, repr=False)  # Alipay's own key
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_app(self, app_id: str | None = None) -> dict[str, str]:
        """Register an app; its credentials as an HQ operator would get them (the app key is made here)."""
        app_id = app_id or f"2021{len(self.apps) + 1:012d}"
        app_key = new_key()
        self.apps[app_id] = App(app_id, app_key.public_key(), f"2088{secrets.randbelow(10 ** 12):012d}")
        return {"app_id": app_id, "private_key": pem_private(app_key), "public_key": pem_public(self._key),
                "gateway_url": f"{self.url}gateway.do", "seller_id": self.apps[app_id].seller_id}

    def by_out_trade_no(self, app_id: str, out_trade_no: str) -> Trade | None:
        return next((t for t in self.trades.values() if t.app_id == app_id and t.out_trade_no == out_trade_no), None)

    def state(self) -> dict[str, Any]:
        """What a sandbox in another process needs to be this one (Alipay's key, the apps): secret, keep it 0600."""
        return {"gateway": "alipay", "key": pem_private(self._key), "apps": [
            {"app_id": a.app_id, "seller_id": a.seller_id, "public_key": a.public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
            for a in self.apps.values()]}

    @classmethod
    def from_state(cls, state: dict[str, Any], **knobs: Any) -> "AlipaySandbox":
        """The sandbox `state()` described (ValueError/KeyError if it is not one)."""
        box = cls(_key=common.rsa_private(state["key"], "the sandbox key"), **knobs)
        for a in state["apps"]:
            box.apps[a["app_id"]] = App(a["app_id"], common.rsa_public(a["public_key"], "an app key"), a["seller_id"])
        return box

    # -- gateway.do -------------------------------------------------------------------
    async def gateway(self, request: Request) -> Response:
        fields = dict(request.query_params)
        if request.method == "POST":
            fields.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        app = self.apps.get(fields.get("app_id", ""))
        method = fields.get("method", "")
        if app is None or fields.get("sign_type") != "RSA2" or not rsa2_valid(app.public, fields):
            return self._answer(method, {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                                         "sub_msg": "验签出错"})
        try:
            biz = json.loads(fields.get("biz_content") or "{}")
        except ValueError:
            biz = {}
        if method == "alipay.trade.wap.pay":
            return self._cashier(self._open(app, biz, fields))
        handler = {"alipay.trade.precreate": self._precreate, "alipay.trade.query": self._query,
                   "alipay.trade.refund": self._refund}.get(method)
        if handler is None:
            return self._answer(method, {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-method"})
        return self._answer(method, handler(app, biz, fields))

    def _answer(self, method: str, body: dict[str, Any]) -> Response:
        """`{"<method>_response": {...}, "sign": "..."}`, signed over the response object's exact text."""
        inner = json.dumps({"msg": "Success", **body} if body.get("code") == "10000" else body, ensure_ascii=False)
        signature = base64.b64encode(self._key.sign(inner.encode("utf-8"), padding.PKCS1v15(),
                                                    hashes.SHA256())).decode()
        name = (method or "error").replace(".", "_") + "_response"
        return Response(f'{{"{name}": {inner}, "sign": "{signature}"}}', media_type="application/json; charset=utf-8")

    def _open(self, app: App, biz: dict[str, Any], fields: dict[str, str]) -> Trade | None:
        if not biz.get("out_trade_no") or not fields.get("notify_url"):
            return None
        try:
            Decimal(str(biz.get("total_amount")))
        except ArithmeticError:
            return None
        with self._lock:
            trade = self.by_out_trade_no(app.app_id, str(biz["out_trade_no"]))
            if trade is None:
                trade = Trade(trade_no=datetime.now(CST).strftime("%Y%m%d") + secrets.token_hex(10), app_id=app.app_id,
                              out_trade_no=str(biz["out_trade_no"]), subject=str(biz.get("subject") or ""),
                              total_amount=str(biz["total_amount"]), notify_url=fields["notify_url"],
                              return_url=fields.get("return_url", ""))
                self.trades[trade.trade_no] = trade
        return trade

    def _precreate(self, app: App, biz: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
        trade = self._open(app, biz, fields)
        if trade is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.INVALID_PARAMETER"}
        return {"code": "10000", "out_trade_no": trade.out_trade_no, "qr_code": f"{self.url}qr/{trade.trade_no}"}

    def _query(self, app: App, biz: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
        trade = self.by_out_trade_no(app.app_id, str(biz.get("out_trade_no") or ""))
        if trade is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"}
        return {"code": "10000", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "trade_status": trade.status, "total_amount": trade.total_amount}

    def _refund(self, app: App, biz: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
        trade = self.by_out_trade_no(app.app_id, str(biz.get("out_trade_no") or ""))
        if trade is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}
        request_no = str(biz.get("out_request_no") or biz.get("out_trade_no"))
        try:
            amount = Decimal(str(biz.get("refund_amount")))
        except ArithmeticError:
            amount = Decimal(-1)
        with self._lock:
            if request_no not in trade.refund_requests:  # the same out_request_no is the same refund
                if trade.status != "TRADE_SUCCESS" or amount <= 0 or \
                        Decimal(trade.refunded) + amount > Decimal(trade.total_amount):
                    return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}
                trade.refund_requests.add(request_no)
                trade.refunded = f"{Decimal(trade.refunded) + amount:.2f}"
        return {"code": "10000", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "fund_change": "Y",
                "refund_fee": trade.refunded}

    # -- the payer ------------------------------------------------------------------------
    def _cashier(self, trade: Trade | None) -> Response:
        if trade is None:
            return HTMLResponse("<p>参数错误 (invalid parameters)</p>", status_code=400)
        return HTMLResponse(
            f"<!doctype html><meta charset=utf-8><title>支付宝沙箱收银台</title><h1>支付宝沙箱 · Alipay sandbox</h1>"
            f"<p id=amount>¥{html.escape(trade.total_amount)}</p><p>{html.escape(trade.subject)}</p>"
            f"<form method=post action='/pay/{trade.trade_no}'><button id=pay>确认付款 · Pay</button></form>")

    async def qr_page(self, request: Request) -> Response:
        """What scanning the pre-create QR code opens."""
        return self._cashier(self.trades.get(request.path_params["trade_no"]))

    async def pay_page(self, request: Request) -> Response:
        trade = self.pay(request.path_params["trade_no"])
        if trade is None:
            return PlainTextResponse("no such trade", status_code=404)
        if trade.return_url:
            return RedirectResponse(trade.return_url, status_code=303)
        return HTMLResponse("<p id=paid>支付成功 · Paid</p>")

    def pay(self, trade_no: str) -> Trade | None:
        """The payer paid: mark the trade and notify the merchant (in the background, with retries)."""
        trade = self.trades.get(trade_no)
        if trade is None:
            return None
        if trade.status == "WAIT_BUYER_PAY":
            trade.status = "TRADE_SUCCESS"
            self.notify_later(self.notify, trade)
        return trade

    def notification(self, trade: Trade, **override: str) -> dict[str, str]:
        """The signed asynchronous notification for `trade` (fields in `override` change before signing)."""
        now = datetime.now(CST).strftime("%Y-%m-%d %H:%M:%S")
        fields = {"notify_time": now, "notify_type": "trade_status_sync", "notify_id": secrets.token_hex(16),
                  "charset": "utf-8", "version": "1.0", "app_id": trade.app_id, "trade_no": trade.trade_no,
                  "out_trade_no": trade.out_trade_no, "seller_id": self.apps[trade.app_id].seller_id,
                  "trade_status": "TRADE_SUCCESS", "total_amount": trade.total_amount,
                  "receipt_amount": trade.total_amount, "buyer_pay_amount": trade.total_amount,
                  "subject": trade.subject, "gmt_payment": now, **override}
        return {**fields, "sign_type": "RSA2", "sign": rsa2_sign(self._key, fields, ("sign", "sign_type"))}

    def notify(self, trade: Trade) -> bool:
        """POST the notification to notify_url until it answers `success` (bounded)."""
        def send() -> bool:
            resp = httpx.post(trade.notify_url, data=self.notification(trade), timeout=5)
            return resp.status_code == 200 and resp.text.strip() == "success"

        acknowledged = self.retried(send)
        trade.notified += acknowledged
        return acknowledged

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/gateway.do", self.gateway, methods=["GET", "POST"]),
            Route("/qr/{trade_no}", self.qr_page, methods=["GET"]),
            Route("/pay/{trade_no}", self.pay_page, methods=["POST"]),
        ])


def serving(sandbox: AlipaySandbox, host: str = "127.0.0.1", port: int | None = None) -> ContextManager[AlipaySandbox]:
    """Serve the sandbox on a loopback port until the block ends (`sandbox.url` is set)."""
    return common.serving(sandbox, "alipay sandbox", host, port)
