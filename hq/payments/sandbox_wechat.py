"""A sandbox WeChat Pay API v3 gateway (Native): WeChat Pay's side of the protocol, with its own keys.

It registers merchants (each with an API key pair and certificate serial, an
APIv3 key, an appid), keeps a platform key with a self-signed platform
certificate, checks the merchant's `Authorization` signature on every call,
answers /v3/pay/transactions/native (a `code_url` that opens its payer page),
the query by out_trade_no and /v3/refund/domestic/refunds with answers signed
by the platform key, and on payment POSTs a notification (resource encrypted
with AES-256-GCM under the APIv3 key, the body signed by the platform key) to
`notify_url` until it hears 200/204. Its signing and encryption code is its
own, written apart from the SDK HQ uses.

What it is not: WeChat Pay. No money moves; `drop_notifications` plays a lost one.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ContextManager

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hq.payments import sandbox_common as common
from hq.payments.sandbox_common import Notifying

CST = timezone(timedelta(hours=8))
AUTH = re.compile(r'\AWECHATPAY2-SHA256-RSA2048 (.+)\Z')
AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def self_signed(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))


@dataclass
class Merchant:
    mchid: str
    appid: str
    serial: str
    public: rsa.RSAPublicKey
    apiv3_key: str


@dataclass
class Trade:
    transaction_id: str
    mchid: str
    appid: str
    out_trade_no: str
    description: str
    total: int
    currency: str
    notify_url: str
    trade_state: str = "NOTPAY"
    refunded: int = 0
    refunds: dict[str, int] = field(default_factory=dict)  # out_refund_no -> fen
    notified: int = 0


@dataclass
class WechatSandbox(Notifying):
    merchants: dict[str, Merchant] = field(default_factory=dict)
    trades: dict[str, Trade] = field(default_factory=dict)  # transaction_id -> trade
    real_code_url: bool = False  # answer `weixin://wxpay/bizpayurl?pr=…` as WeChat Pay does, not the payer page
    _platform: rsa.RSAPrivateKey = field(default_factory=_key, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.platform_cert = self_signed(self._platform, "WeChat Pay sandbox platform")
        self.platform_serial = format(self.platform_cert.serial_number, "X")

    def add_merchant(self, mchid: str | None = None) -> dict[str, str]:
        """Register a merchant; its credentials as an HQ operator would hold them."""
        mchid = mchid or str(1900000000 + len(self.merchants) + 1)
        key = _key()
        serial = format(x509.random_serial_number(), "X")
        apiv3 = secrets.token_hex(16)  # 32 characters
        appid = "wx" + secrets.token_hex(8)
        self.merchants[mchid] = Merchant(mchid, appid, serial, key.public_key(), apiv3)
        return {"mchid": mchid, "appid": appid, "cert_serial_no": serial, "apiv3_key": apiv3,
                "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode(),
                "public_key": self.platform_cert.public_bytes(serialization.Encoding.PEM).decode(),
                "gateway_url": self.url.rstrip("/")}

    def state(self) -> dict[str, Any]:
        """What a sandbox in another process needs to be this one (the platform key and certificate, the merchants):
        secret, keep it 0600."""
        pem = serialization.Encoding.PEM
        return {"gateway": "wechat", "platform_cert": self.platform_cert.public_bytes(pem).decode(),
                "platform_key": self._platform.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()).decode(),
                "merchants": [{"mchid": m.mchid, "appid": m.appid, "serial": m.serial, "apiv3_key": m.apiv3_key,
                               "public_key": m.public.public_bytes(
                                   pem, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
                              for m in self.merchants.values()]}

    @classmethod
    def from_state(cls, state: dict[str, Any], **knobs: Any) -> "WechatSandbox":
        """The sandbox `state()` described (ValueError/KeyError if it is not one)."""
        box = cls(_platform=common.rsa_private(state["platform_key"], "the platform key"), **knobs)
        box.platform_cert = x509.load_pem_x509_certificate(state["platform_cert"].encode())  # the one HQ was given
        box.platform_serial = format(box.platform_cert.serial_number, "X")
        for m in state["merchants"]:
            box.merchants[m["mchid"]] = Merchant(m["mchid"], m["appid"], m["serial"],
                                                 common.rsa_public(m["public_key"], "a merchant key"), m["apiv3_key"])
        return box

    def by_out_trade_no(self, mchid: str, out_trade_no: str) -> Trade | None:
        return next((t for t in self.trades.values() if t.mchid == mchid and t.out_trade_no == out_trade_no), None)

    # -- signatures -----------------------------------------------------------------------
    def _caller(self, request: Request, body: str) -> Merchant | None:
        """The merchant whose Authorization signature over `method\\npath\\ntimestamp\\nnonce\\nbody\\n` verifies."""
        found = AUTH.match(request.headers.get("authorization", ""))
        if not found:
            return None
        fields = dict(AUTH_FIELD.findall(found.group(1)))
        merchant = self.merchants.get(fields.get("mchid", ""))
        if merchant is None or fields.get("serial_no") != merchant.serial:
            return None
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        message = f"{request.method}\n{path}\n{fields.get('timestamp')}\n{fields.get('nonce_str')}\n{body}\n"
        try:
            merchant.public.verify(base64.b64decode(fields.get("signature", "")), message.encode("utf-8"),
                                   padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return None
        return merchant

    def signed_headers(self, body: str, **override: str) -> dict[str, str]:
        stamp, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": self.platform_serial,
                   "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048", **override}
        headers["Wechatpay-Signature"] = _sign(self._platform, f"{headers['Wechatpay-Timestamp']}\n"
                                                               f"{headers['Wechatpay-Nonce']}\n{body}\n")
        return headers

    def _answer(self, status: int, data: dict[str, Any]) -> Response:
        body = json.dumps(data, ensure_ascii=False)
        return Response(body, status_code=status, media_type="application/json",
                        headers=self.signed_headers(body) if status < 300 else {})

    # -- the API ---------------------------------------------------------------------------
    async def _signed(self, request: Request) -> tuple[Merchant | None, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return self._caller(request, body), body

    def _unsigned(self) -> Response:
        return self._answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})

    async def native(self, request: Request) -> Response:
        merchant, body = await self._signed(request)
        if merchant is None:
            return self._unsigned()
        try:
            data = json.loads(body)
            total, out_trade_no = data["amount"]["total"], str(data["out_trade_no"])
        except (ValueError, KeyError, TypeError):
            return self._answer(400, {"code": "PARAM_ERROR", "message": "参数错误"})
        if data.get("mchid") != merchant.mchid or data.get("appid") != merchant.appid:
            return self._answer(400, {"code": "APPID_MCHID_NOT_MATCH", "message": "appid和mch_id不匹配"})
        if type(total) is not int or total <= 0 or not data.get("notify_url"):
            return self._answer(400, {"code": "PARAM_ERROR", "message": "参数错误"})
        with self._lock:
            trade = self.by_out_trade_no(merchant.mchid, out_trade_no)
            if trade is None:
                trade = Trade(transaction_id="42" + secrets.token_hex(13), mchid=merchant.mchid, appid=merchant.appid,
                              out_trade_no=out_trade_no, description=str(data.get("description") or ""), total=total,
                              currency=str(data["amount"].get("currency") or "CNY"), notify_url=data["notify_url"])
                self.trades[trade.transaction_id] = trade
        code_url = f"weixin://wxpay/bizpayurl?pr={trade.transaction_id}" if self.real_code_url \
            else f"{self.url}pay/{trade.transaction_id}"
        return self._answer(200, {"code_url": code_url})

    async def query(self, request: Request) -> Response:
        merchant = self._caller(request, "")
        if merchant is None or request.query_params.get("mchid") != merchant.mchid:
            return self._unsigned()
        trade = self.by_out_trade_no(merchant.mchid, request.path_params["out_trade_no"])
        if trade is None:
            return self._answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
        return self._answer(200, self.transaction(trade))

    async def refund(self, request: Request) -> Response:
        merchant, body = await self._signed(request)
        if merchant is None:
            return self._unsigned()
        try:
            data = json.loads(body)
            out_refund_no, amount = str(data["out_refund_no"]), data["amount"]
            refund, total = amount["refund"], amount["total"]
        except (ValueError, KeyError, TypeError):
            return self._answer(400, {"code": "PARAM_ERROR", "message": "参数错误"})
        trade = self.by_out_trade_no(merchant.mchid, str(data.get("out_trade_no") or ""))
        if trade is None:
            return self._answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"})
        with self._lock:
            if out_refund_no not in trade.refunds:  # the same out_refund_no is the same refund
                if trade.trade_state not in ("SUCCESS", "REFUND") or total != trade.total or type(refund) is not int \
                        or refund <= 0 or trade.refunded + refund > trade.total:
                    return self._answer(400, {"code": "INVALID_REQUEST", "message": "退款金额错误"})
                trade.refunds[out_refund_no] = refund
                trade.refunded += refund
                trade.trade_state = "REFUND"
        return self._answer(200, {"refund_id": "50" + secrets.token_hex(13), "out_refund_no": out_refund_no,
                                  "transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no,
                                  "status": "SUCCESS", "amount": {"refund": trade.refunds[out_refund_no],
                                                                  "total": trade.total, "currency": trade.currency}})

    def transaction(self, trade: Trade, **override: Any) -> dict[str, Any]:
        """The transaction as query answers and notifications carry it (`override` replaces fields)."""
        paid = trade.trade_state != "NOTPAY"
        data = {"mchid": trade.mchid, "appid": trade.appid, "out_trade_no": trade.out_trade_no,
                "transaction_id": trade.transaction_id if paid else "", "trade_type": "NATIVE",
                "trade_state": trade.trade_state, "trade_state_desc": "支付成功" if paid else "未支付",
                "bank_type": "OTHERS", "success_time": datetime.now(CST).isoformat(timespec="seconds"),
                "payer": {"openid": "o" + trade.transaction_id[:27]},
                "amount": {"total": trade.total, "payer_total": trade.total, "currency": trade.currency,
                           "payer_currency": trade.currency}}
        return {**data, **override}

    # -- the payer ------------------------------------------------------------------------
    async def pay_page(self, request: Request) -> Response:
        trade = self.trades.get(request.path_params["transaction_id"])
        if trade is None:
            return PlainTextResponse("no such trade", status_code=404)
        if request.method == "POST":
            self.pay(trade.transaction_id)
            return HTMLResponse("<p id=paid>支付成功 · Paid</p>")
        return HTMLResponse(
            f"<!doctype html><meta charset=utf-8><title>微信支付沙箱</title><h1>微信支付沙箱 · WeChat Pay sandbox</h1>"
            f"<p id=amount>¥{trade.total // 100}.{trade.total % 100:02d}</p><p>{html.escape(trade.description)}</p>"
            f"<form method=post><button id=pay>确认支付 · Pay</button></form>")

    def pay(self, transaction_id: str) -> Trade | None:
        """The payer paid: mark the trade and notify the merchant (in the background, with retries)."""
        trade = self.trades.get(transaction_id)
        if trade is None:
            return None
        if trade.trade_state == "NOTPAY":
            trade.trade_state = "SUCCESS"
            self.notify_later(self.notify, trade)
        return trade

    def notification(self, trade: Trade, apiv3_key: str | None = None, headers: dict[str, str] | None = None,
                     **override: Any) -> tuple[dict[str, str], bytes]:
        """(headers, body) of the signed notification; `override` changes the transaction before encryption."""
        plain = json.dumps(self.transaction(trade, **override), ensure_ascii=False).encode("utf-8")
        nonce = secrets.token_hex(6)  # 12 characters, used as bytes as WeChat Pay does
        key = (apiv3_key or self.merchants[trade.mchid].apiv3_key).encode("utf-8")
        cipher = AESGCM(key).encrypt(nonce.encode(), plain, b"transaction")
        body = json.dumps({"id": secrets.token_hex(18), "create_time": datetime.now(CST).isoformat(timespec="seconds"),
                           "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                           "summary": "支付成功", "resource": {"original_type": "transaction",
                                                           "algorithm": "AEAD_AES_256_GCM",
                                                           "ciphertext": base64.b64encode(cipher).decode(),
                                                           "associated_data": "transaction", "nonce": nonce}},
                          ensure_ascii=False)
        return {**self.signed_headers(body, **(headers or {})), "Content-Type": "application/json"}, body.encode()

    def notify(self, trade: Trade) -> bool:
        """POST the notification (signed afresh each time) to notify_url until it answers 200/204 (bounded)."""
        def send() -> bool:
            headers, body = self.notification(trade)
            return httpx.post(trade.notify_url, content=body, headers=headers, timeout=5).status_code in (200, 204)

        acknowledged = self.retried(send)
        trade.notified += acknowledged
        return acknowledged

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v3/pay/transactions/native", self.native, methods=["POST"]),
            Route("/v3/pay/transactions/out-trade-no/{out_trade_no}", self.query, methods=["GET"]),
            Route("/v3/refund/domestic/refunds", self.refund, methods=["POST"]),
            Route("/pay/{transaction_id}", self.pay_page, methods=["GET", "POST"]),
        ])


def serving(sandbox: WechatSandbox, host: str = "127.0.0.1", port: int | None = None) -> ContextManager[WechatSandbox]:
    """Serve the sandbox on a loopback port until the block ends (`sandbox.url` is set)."""
    return common.serving(sandbox, "wechat sandbox", host, port)
