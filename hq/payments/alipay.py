"""Alipay (支付宝) Open Platform: RSA2-signed requests, QR pre-create for desktop, WAP pay for mobile.

Signing (RSA2): every parameter except `sign` (and, on notifications, `sign_type`)
and empty ones, sorted by name, joined `a=1&b=2` with raw values, signed
RSA-SHA256 (PKCS#1 v1.5) with the app's private key, base64. Requests go to
`gateway.do` as a form; an answer `{"<method>_response": {...}, "sign": "..."}`
is trusted only when Alipay's public key verifies the signature over the exact
text of the response object. The asynchronous notification is a form POST to
`notify_url`; it must verify, carry our `app_id` (and `seller_id`, when
configured) and `trade_status` TRADE_SUCCESS or TRADE_FINISHED to count as paid.

Written on `cryptography` rather than an Alipay SDK: the official
alipay-sdk-python is 121 MB of generated code, and python-alipay-sdk ships only
an sdist (the images install wheels only) and needs a pyOpenSSL that does not
load on the cryptography we lock. The protocol used here is the four calls
below and one signature scheme.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from urllib.parse import urlencode

import httpx
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hq.payments.contract import Forged, GatewayError, Notice, PayLink, PaymentRequest, Refund, cents, yuan

GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
CONFIG_KEYS = ("app_id", "private_key", "public_key")
PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")
BEIJING = timezone(timedelta(hours=8))  # Alipay reads `timestamp` as Beijing time


def sign_content(params: Mapping[str, Any], unsigned: tuple[str, ...] = ("sign",)) -> str:
    """What RSA2 signs: the non-empty parameters but `unsigned`, sorted, `k=v` joined by `&`."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in unsigned and str(params[k]) != "")


def private_key(pem: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or the bare base64 Alipay's key tool writes."""
    key = serialization.load_pem_private_key(_pem(pem, "PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError("private_key is not an RSA key of at least 2048 bits")
    return key


def public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(_pem(pem, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public_key is not an RSA public key")
    return key


def _pem(text: str, kind: str) -> bytes:
    text = text.strip()
    if not text.startswith("-----BEGIN"):
        text = f"-----BEGIN {kind}-----\n{text}\n-----END {kind}-----"
    return text.encode("ascii", "replace")


class AlipayGateway:
    name = "alipay"
    creates_remotely = True  # precreate is a call to Alipay: asked before the order batch's transaction

    def __init__(self, config: Mapping[str, str], client: httpx.Client | None = None) -> None:
        missing = [k for k in CONFIG_KEYS if not str(config.get(k) or "").strip()]
        if missing:
            raise ValueError(f"alipay credentials lack {', '.join(missing)}")
        self.app_id = str(config["app_id"]).strip()
        try:
            self._key = private_key(str(config["private_key"]))
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # TypeError: a key that needs a password
            raise ValueError(f"private_key does not load: {str(exc).splitlines()[0][:120]}") from None
        try:
            self._alipay_key = public_key(str(config["public_key"]))
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"public_key (Alipay's) does not load: {str(exc).splitlines()[0][:120]}") from None
        self.gateway_url = str(config.get("gateway_url") or GATEWAY_URL)
        if not self.gateway_url.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
            raise ValueError("gateway_url must be HTTPS")
        self.seller_id = str(config.get("seller_id") or "")
        self.currency = str(config.get("currency") or "CNY")
        self._client = client or httpx.Client(timeout=10)

    # -- signatures ---------------------------------------------------------------------
    def _sign(self, content: str) -> str:
        return base64.b64encode(self._key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()

    def _verifies(self, content: str, signature: str) -> bool:
        try:
            raw = base64.b64decode(signature, validate=True)
            self._alipay_key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def signed(self, method: str, biz: Mapping[str, Any], **extra: str) -> dict[str, str]:
        """The public request parameters for `method` with `biz_content`, signed."""
        params = {"app_id": self.app_id, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
                  "timestamp": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
                  **{k: v for k, v in extra.items() if v}}
        return {**params, "sign": self._sign(sign_content(params))}

    # -- the contract --------------------------------------------------------------------
    def create(self, request: PaymentRequest) -> PayLink:
        """A QR code from alipay.trade.precreate (scanned on a desktop) and an alipay.trade.wap.pay link (mobile)."""
        biz = {"out_trade_no": request.out_trade_no, "total_amount": yuan(request.amount_cents),
               "subject": request.subject[:256]}
        data = self._call("alipay.trade.precreate", biz, notify_url=request.notify_url)
        if data.get("code") != "10000" or not str(data.get("qr_code") or ""):
            raise GatewayError(f"alipay precreate: {_failure(data)}")
        wap = self.signed("alipay.trade.wap.pay", {**biz, "product_code": "QUICK_WAP_WAY"},
                          notify_url=request.notify_url, return_url=request.return_url)
        return PayLink(pay_url=f"{self.gateway_url}?{urlencode(wap)}", qr_content=str(data["qr_code"]))

    def verify(self, params: Mapping[str, str]) -> Notice:
        if str(params.get("sign_type") or "") != "RSA2":
            raise Forged("sign_type is not RSA2")
        if not self._verifies(sign_content(params, ("sign", "sign_type")), str(params.get("sign") or "")):
            raise Forged("signature does not verify")
        if str(params.get("app_id")) != self.app_id or (self.seller_id and str(params.get("seller_id")) != self.seller_id):
            raise Forged("notification is for another merchant")
        out_trade_no, trade_no = str(params.get("out_trade_no") or ""), str(params.get("trade_no") or "")
        if not out_trade_no or not trade_no:
            raise Forged("notification lacks out_trade_no or trade_no")
        return Notice(out_trade_no=out_trade_no, trade_no=trade_no[:64],
                      amount_cents=cents(str(params.get("total_amount"))),
                      currency=str(params.get("trans_currency") or self.currency),
                      paid=params.get("trade_status") in PAID)

    def ack(self) -> str:
        return "success"

    def query(self, out_trade_no: str) -> Notice | None:
        data = self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        if data.get("code") != "10000":
            if data.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
                return None
            raise GatewayError(f"alipay query: {_failure(data)}")
        if str(data.get("out_trade_no")) != out_trade_no:
            raise GatewayError("alipay answered a query about another order")
        try:
            amount = cents(str(data.get("total_amount")))
        except Forged:
            raise GatewayError("alipay query: the amount is not exact") from None
        return Notice(out_trade_no=out_trade_no, trade_no=str(data.get("trade_no") or "")[:64], amount_cents=amount,
                      currency=str(data.get("trans_currency") or self.currency), paid=data.get("trade_status") in PAID)

    def refund(self, out_trade_no: str, amount_cents: int) -> Refund:
        # one refund per payment: the same out_request_no makes a retried refund the same refund at Alipay
        data = self._call("alipay.trade.refund", {"out_trade_no": out_trade_no, "refund_amount": yuan(amount_cents),
                                                  "out_request_no": "R" + out_trade_no})
        accepted = data.get("code") == "10000"
        return Refund(out_trade_no, amount_cents, accepted, "" if accepted else _failure(data))

    # -- transport ------------------------------------------------------------------------
    def _call(self, method: str, biz: Mapping[str, Any], **extra: str) -> dict[str, Any]:
        """POST a signed request; the response object once Alipay's signature over its exact text verifies."""
        try:
            resp = self._client.post(self.gateway_url, params={"charset": "utf-8"}, data=self.signed(method, biz, **extra))
            resp.raise_for_status()
            text = resp.text
        except httpx.HTTPError as exc:
            raise GatewayError(f"alipay {method}: {type(exc).__name__}") from None
        return self._verified_answer(method, text)

    def _verified_answer(self, method: str, text: str) -> dict[str, Any]:
        name = method.replace(".", "_") + "_response"
        try:
            whole = json.loads(text)
        except ValueError:
            raise GatewayError(f"alipay {method}: the answer is not JSON") from None
        if not isinstance(whole, dict) or not isinstance(whole.get(name), dict):
            error = whole.get("error_response") if isinstance(whole, dict) else None
            raise GatewayError(f"alipay {method}: {_failure(error) if isinstance(error, dict) else 'not an answer'}")
        start = text.index("{", text.index(f'"{name}"') + len(name) + 2)
        data, end = json.JSONDecoder().raw_decode(text, start)
        if not self._verifies(text[start:end], str(whole.get("sign") or "")):
            # an unsigned refusal is reported, never trusted (not even "no such trade")
            raise GatewayError(f"alipay {method}: the answer's signature does not verify ({_failure(data)})")
        return data


def _failure(data: Mapping[str, Any]) -> str:
    return " ".join(str(data.get(k) or "") for k in ("code", "sub_code", "sub_msg", "msg") if data.get(k))[:200] \
        or "no answer"
