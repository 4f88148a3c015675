"""WeChat Pay API v3, Native (扫码支付), on the wechatpayv3 SDK.

`create` opens a Native transaction and gets `code_url`, the QR code's content.
The notification is a JSON body signed by WeChat Pay's platform key
(RSA-SHA256 over `timestamp\\nnonce\\nbody\\n`, in the `Wechatpay-*` headers)
whose `resource` is AES-256-GCM-encrypted with the merchant's APIv3 key; the SDK
verifies and decrypts it, and it counts only for our `mchid` and `appid`, with
`trade_state` SUCCESS. Its amount is already integer fen. Query by
`out_trade_no`; refund through /v3/refund/domestic/refunds. Every answer the
SDK gets is signature-checked by the SDK as well.

The platform key is given as the platform certificate (its serial is the key
id) or as WeChat Pay's platform public key with its id (`public_key_id`); the
SDK is handed the key itself so nothing is fetched when HQ opens the gateway,
and a notification naming another key is refused before the SDK would fetch
certificates for it (a rotated platform key is enabled again by the operator).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hq.payments.contract import Forged, GatewayError, Notice, Notification, PayLink, PaymentRequest, Refund

GATEWAY_URL = "https://api.mch.weixin.qq.com"
CONFIG_KEYS = ("mchid", "appid", "cert_serial_no", "private_key", "apiv3_key", "public_key")
MAX_SKEW = 300  # seconds a notification's signed timestamp may be off (WeChat Pay's own advice)


def platform_key(pem: str, key_id: str) -> tuple[str, str]:
    """(public key PEM, key id) from a platform certificate (id: its serial) or a platform public key and its id."""
    data = pem.strip().encode("ascii", "replace")
    if b"CERTIFICATE" in data:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise ValueError("public_key is not a PEM certificate") from None
        now = datetime.now(timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ValueError("the platform certificate is not valid now")
        key, key_id = cert.public_key(), format(cert.serial_number, "X")
    else:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("public_key is neither a PEM certificate nor a PEM public key") from None
        if not key_id:
            raise ValueError("a platform public key needs its public_key_id")
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the platform key is not RSA")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), key_id


def merchant_key(pem: str) -> str:
    """The merchant's API private key as PKCS#8 PEM (the SDK reads only that form)."""
    try:
        key = serialization.load_pem_private_key(pem.strip().encode("ascii", "replace"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # TypeError: a key that needs a password
        raise ValueError("private_key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError("private_key is not an RSA key of at least 2048 bits")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class WechatGateway:
    name = "wechat"
    creates_remotely = True  # the Native order is a call to WeChat Pay: asked before the order batch's transaction

    def __init__(self, config: Mapping[str, str]) -> None:
        from wechatpayv3 import WeChatPay, WeChatPayType

        missing = [k for k in CONFIG_KEYS if not str(config.get(k) or "").strip()]
        if missing:
            raise ValueError(f"wechat credentials lack {', '.join(missing)}")
        self.mchid, self.appid = str(config["mchid"]).strip(), str(config["appid"]).strip()
        apiv3_key = str(config["apiv3_key"]).strip()
        if len(apiv3_key.encode("utf-8")) != 32:
            raise ValueError("apiv3_key must be the 32-character APIv3 key")
        public_pem, key_id = platform_key(str(config["public_key"]), str(config.get("public_key_id") or "").strip())
        self._key_id = key_id
        self.gateway_url = str(config.get("gateway_url") or GATEWAY_URL).rstrip("/")
        if not self.gateway_url.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
            raise ValueError("gateway_url must be HTTPS")
        self.currency = str(config.get("currency") or "CNY")
        self._native = WeChatPayType.NATIVE
        try:
            self._pay = WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=self.mchid, appid=self.appid,
                                  private_key=merchant_key(str(config["private_key"])),
                                  cert_serial_no=str(config["cert_serial_no"]).strip(), apiv3_key=apiv3_key,
                                  public_key=public_pem, public_key_id=key_id, timeout=(5, 10))
        except ValueError:
            raise
        except Exception as exc:  # the SDK raises bare Exception for keys it cannot load
            raise ValueError(f"the WeChat Pay SDK refused the keys: {str(exc)[:80]}") from None
        # the SDK has no setting for its endpoint; its requests go to this base URL (a sandbox's, in tests)
        self._pay._core._gate_way = self.gateway_url

    def create(self, request: PaymentRequest) -> PayLink:
        data = self._request("create", lambda: self._pay.pay(
            description=request.subject[:127], out_trade_no=request.out_trade_no, notify_url=request.notify_url,
            amount={"total": request.amount_cents, "currency": request.currency}, pay_type=self._native))
        code_url = str(data.get("code_url") or "")
        if not code_url:
            raise GatewayError("wechat create: no code_url in the answer")
        # Native has no page to open: the buyer scans code_url (weixin://…); the link falls back to HQ's return page
        link = code_url if code_url.startswith(("https://", "http://")) else request.return_url
        return PayLink(pay_url=link, qr_content=code_url)

    def verify(self, params: Mapping[str, str]) -> Notice:
        if not isinstance(params, Notification) or not params.body:
            raise Forged("not a WeChat Pay v3 notification (no signed body)")
        try:
            stamp = int(params.headers.get("wechatpay-timestamp", ""))
        except ValueError:
            raise Forged("notification has no timestamp") from None
        if abs(time.time() - stamp) > MAX_SKEW:
            raise Forged("notification timestamp is too old or in the future")
        if params.headers.get("wechatpay-serial") != self._key_id:
            # refused here: the SDK would fetch /v3/certificates for every unknown serial anyone sends
            raise Forged("notification is signed with a platform key HQ was not given")
        try:
            data = self._pay.callback(params.headers, params.body)
        except Exception:  # the SDK raises bare Exception for unknown algorithms and serials
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("resource"), dict):
            raise Forged("signature or encrypted resource does not verify")
        return self._notice(data["resource"], Forged)

    def ack(self) -> str:
        return "success"

    def query(self, out_trade_no: str) -> Notice | None:
        code, data = self._call("query", lambda: self._pay.query(out_trade_no=out_trade_no))
        if code == 404:
            return None
        if code != 200:
            raise GatewayError(f"wechat query: HTTP {code} {_message(data)}")
        notice = self._notice(data, GatewayError)
        if notice.out_trade_no != out_trade_no:
            raise GatewayError("wechat answered a query about another order")
        return notice

    def refund(self, out_trade_no: str, amount_cents: int) -> Refund:
        paid = self.query(out_trade_no)
        if paid is None or not paid.paid:
            return Refund(out_trade_no, amount_cents, False, "wechat has no paid transaction for this order")
        # one refund per payment: the same out_refund_no makes a retried refund the same refund at WeChat Pay
        code, data = self._call("refund", lambda: self._pay.refund(
            out_refund_no="R" + out_trade_no, out_trade_no=out_trade_no,
            amount={"refund": amount_cents, "total": paid.amount_cents, "currency": paid.currency}))
        accepted = code == 200 and data.get("status") in ("SUCCESS", "PROCESSING")
        return Refund(out_trade_no, amount_cents, accepted, "" if accepted else f"HTTP {code} {_message(data)}"[:200])

    # -- helpers -------------------------------------------------------------------------
    def _notice(self, resource: Mapping[str, Any], error: type[Exception]) -> Notice:
        """A transaction (decrypted notification or query answer) as a Notice, if it is ours and exact."""
        if str(resource.get("mchid")) != self.mchid or str(resource.get("appid")) != self.appid:
            raise error("the transaction is another merchant's")
        amount = resource.get("amount")
        total = amount.get("total") if isinstance(amount, dict) else None
        if type(total) is not int or total < 0:  # fen, an integer (a float or a string is not exact)
            raise error("the transaction's amount is not whole fen")
        out_trade_no = str(resource.get("out_trade_no") or "")
        trade_no = str(resource.get("transaction_id") or "")
        if not out_trade_no or (resource.get("trade_state") == "SUCCESS" and not trade_no):
            raise error("the transaction lacks out_trade_no or transaction_id")
        return Notice(out_trade_no=out_trade_no, trade_no=trade_no[:64], amount_cents=total,
                      currency=str(amount.get("currency") or "CNY"), paid=resource.get("trade_state") == "SUCCESS")

    def _call(self, what: str, call: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) of an SDK call; the SDK has checked a 2xx answer's signature."""
        try:
            code, text = call()
            data = json.loads(text) if text else {}
        except Exception as exc:  # requests' errors, the SDK's bare Exception on a bad signature, bad JSON
            raise GatewayError(f"wechat {what}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}") \
                from None
        return int(code), data if isinstance(data, dict) else {}

    def _request(self, what: str, call: Any) -> dict[str, Any]:
        code, data = self._call(what, call)
        if code != 200:
            raise GatewayError(f"wechat {what}: HTTP {code} {_message(data)}")
        return data


def _message(data: Mapping[str, Any]) -> str:
    return f"{data.get('code') or ''} {data.get('message') or ''}".strip()[:160]
