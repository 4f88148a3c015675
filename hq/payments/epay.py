"""易支付 (epay), the aggregator protocol many small shops use: MD5-signed forms.

Signing: every parameter except `sign`, `sign_type` and empty ones, sorted by
name, joined as `a=1&b=2` (values not URL-encoded), the merchant key appended,
MD5 in lower-case hex. The buyer is sent to `submit.php` with pid, type,
out_trade_no, notify_url, return_url, name, money, sign, sign_type; the gateway
calls `notify_url` with pid, trade_no, out_trade_no, type, name, money,
trade_status, sign, sign_type and expects the body `success`. `api.php?act=order`
queries a payment, `api.php?act=orders` lists the merchant's trades newest first
(`limit` up to 50 a page, `page` from 1; times in the gateway's local time,
`timezone` in the credentials, Asia/Shanghai's +08:00 by default) and
`api.php?act=refund` refunds; all carry the key itself, so the API URL must be
HTTPS outside a sandbox.

No maintained Python SDK exists for this protocol; it is small enough to hold
exactly here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from urllib.parse import urlencode, urlsplit

import httpx

from hq.payments.contract import (Forged, GatewayError, Notice, PayLink, PaymentRequest, Record, Refund, cents,
                                   yuan)

UNSIGNED = ("sign", "sign_type")
CONFIG_KEYS = ("api_url", "pid", "key")
PAGE = 50  # epay's largest page of `act=orders`
MAX_PAGES = 400  # 20,000 trades back: past that the listing is refused as incomplete rather than cut short
NO_SUCH_ORDER = -1  # `act=order`'s code for an order the gateway does not have (a wrong key is -3)
LOOK_BACK = timedelta(days=1)  # trades opened this long before the window may be paid in it


def sign(params: Mapping[str, Any], key: str) -> str:
    """The epay MD5 signature of `params` under the merchant key."""
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in UNSIGNED and str(params[k]) != "")
    return hashlib.md5((text + key).encode("utf-8")).hexdigest()


class EpayGateway:
    name = "epay"

    def __init__(self, config: Mapping[str, str], client: httpx.Client | None = None) -> None:
        missing = [k for k in CONFIG_KEYS if not str(config.get(k) or "").strip()]
        if missing:
            raise ValueError(f"epay credentials lack {', '.join(missing)}")
        self.api_url = str(config["api_url"]).rstrip("/") + "/"
        # where payers open submit.php when the cashier is not where HQ calls the API (default: the same place)
        self.submit_url = str(config.get("submit_url") or self.api_url).rstrip("/") + "/"
        self.pid, self._key = str(config["pid"]), str(config["key"])
        self.pay_type = str(config.get("type") or "")  # alipay|wxpay|qqpay; empty lets the cashier ask
        self.currency = str(config.get("currency") or "CNY")
        self.zone = _zone(str(config.get("timezone") or "+08:00"))
        self._client = client or httpx.Client(timeout=10)

    def create(self, request: PaymentRequest) -> PayLink:
        params = {"pid": self.pid, "type": self.pay_type, "out_trade_no": request.out_trade_no,
                  "notify_url": request.notify_url, "return_url": request.return_url,
                  "name": request.subject, "money": yuan(request.amount_cents)}
        params = {k: v for k, v in params.items() if v != ""}
        params.update(sign=sign(params, self._key), sign_type="MD5")
        url = f"{self.submit_url}submit.php?{urlencode(params)}"
        return PayLink(pay_url=url, qr_content=url)

    def verify(self, params: Mapping[str, str]) -> Notice:
        given = str(params.get("sign") or "")
        if str(params.get("sign_type") or "MD5").upper() != "MD5":
            raise Forged("sign_type is not MD5")
        if not hmac.compare_digest(given.lower().encode(), sign(params, self._key).encode()):
            raise Forged("signature does not verify")
        if str(params.get("pid")) != self.pid:
            raise Forged("notification is for another merchant")
        out_trade_no, trade_no = str(params.get("out_trade_no") or ""), str(params.get("trade_no") or "")
        if not out_trade_no or not trade_no:
            raise Forged("notification lacks out_trade_no or trade_no")
        return Notice(out_trade_no=out_trade_no, trade_no=trade_no[:64], amount_cents=cents(str(params.get("money"))),
                      currency=self.currency, paid=params.get("trade_status") == "TRADE_SUCCESS")

    def ack(self) -> str:
        return "success"

    def query(self, out_trade_no: str) -> Notice | None:
        data = self._api("order", {"out_trade_no": out_trade_no}, method="GET")
        code = _code(data)
        if code == NO_SUCH_ORDER:
            return None
        if code != 1:  # the key refused, or another error: not "unpaid", the sweep must not expire on it
            raise GatewayError(f"epay order: {str(data.get('msg') or code)[:100]}")
        if str(data.get("out_trade_no")) != out_trade_no:
            raise GatewayError("epay answered a query about another order")
        return Notice(out_trade_no=out_trade_no, trade_no=str(data.get("trade_no") or "")[:64],
                      amount_cents=cents(str(data.get("money"))), currency=self.currency,
                      paid=int(data.get("status", 0)) == 1)

    def refund(self, out_trade_no: str, amount_cents: int) -> Refund:
        data = self._api("refund", {"out_trade_no": out_trade_no, "money": yuan(amount_cents)}, method="POST")
        return Refund(out_trade_no, amount_cents, _code(data) == 1, str(data.get("msg") or "")[:200])

    def probe(self) -> str:
        """Ask for an order that cannot exist: epay answers "no such order" only once the pid and key check out."""
        self.query("kitctl-probe-" + secrets.token_hex(8))
        return f"epay at {urlsplit(self.api_url).netloc} answered; merchant {self.pid}'s key accepted"

    def records(self, start: datetime, end: datetime) -> list[Record]:
        """The trades opened or paid in [start, end): pages of `act=orders`, newest first, until they are older."""
        found: dict[str, Record] = {}
        for page in range(1, MAX_PAGES + 1):
            data = self._api("orders", {"limit": str(PAGE), "page": str(page)}, method="GET")
            if _code(data) != 1 or not isinstance(data.get("data", []), list):
                raise GatewayError(f"epay orders: {str(data.get('msg') or 'refused')[:100]}")
            rows = [self._record(r) for r in data.get("data") or [] if isinstance(r, dict)]
            for r in rows:
                if _within(r.created_at, start, end) or _within(r.paid_at, start, end):
                    found.setdefault(r.out_trade_no, r)
            if len(rows) < PAGE or all(r.created_at is not None and r.created_at < start - LOOK_BACK for r in rows):
                return list(found.values())
        raise GatewayError(f"epay orders: more than {MAX_PAGES * PAGE} trades to read back")

    def record(self, out_trade_no: str) -> Record | None:
        """`act=order` as a book entry (with `refundmoney` when the provider lists it); None: no such order."""
        data = self._api("order", {"out_trade_no": out_trade_no}, method="GET")
        code = _code(data)
        if code == NO_SUCH_ORDER:
            return None
        if code != 1 or str(data.get("out_trade_no")) != out_trade_no:
            raise GatewayError(f"epay order: {str(data.get('msg') or code)[:100]}")
        return self._record(data)

    def _record(self, row: dict[str, Any]) -> Record:
        if str(row.get("pid", self.pid)) != self.pid:
            raise GatewayError("epay listed another merchant's trade")
        refunded = row.get("refundmoney")  # newer epay versions list it; older ones say nothing of refunds
        try:
            return Record(out_trade_no=str(row.get("out_trade_no") or ""), trade_no=str(row.get("trade_no") or "")[:64],
                          amount_cents=cents(str(row.get("money"))), paid=str(row.get("status")) == "1",
                          created_at=self._time(row.get("addtime")), paid_at=self._time(row.get("endtime")),
                          refunded_cents=None if refunded in (None, "") else cents(str(refunded)))
        except Forged as exc:
            raise GatewayError(f"epay orders: {exc}") from None

    def _time(self, text: Any) -> datetime | None:
        if not text:
            return None
        try:
            return datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.zone).astimezone(timezone.utc)
        except ValueError:
            raise GatewayError(f"epay orders: {str(text)[:40]!r} is not a time") from None

    def _api(self, act: str, params: dict[str, str], method: str) -> dict[str, Any]:
        body = {"pid": self.pid, "key": self._key, **params}
        try:
            if method == "GET":
                resp = self._client.get(f"{self.api_url}api.php", params={"act": act, **body})
            else:
                resp = self._client.post(f"{self.api_url}api.php", params={"act": act}, data=body)
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise GatewayError(f"epay {act}: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise GatewayError(f"epay {act}: the answer is not an object")
        return data


def _zone(text: str) -> timezone:
    """`+08:00` → that fixed offset (epay servers keep local time; China has no daylight saving)."""
    try:
        sign = -1 if text.startswith("-") else 1
        hours, minutes = text.lstrip("+-").split(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    except ValueError:
        raise ValueError(f"epay timezone must be an offset like +08:00, not {text[:20]!r}") from None


def _within(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at < end


def _code(data: dict[str, Any]) -> int:
    try:
        return int(data.get("code", 0))
    except (TypeError, ValueError):
        raise GatewayError("epay answered without a numeric code") from None
