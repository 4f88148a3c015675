"""What the site keeps of a buyer, sealed with the site key.

Per field of an order (docs/security.md, "Data at rest", has the reasoning):

- `contact` (phone, QQ or e-mail): kept, sealed. Staff need it for customer service
  (admin list, CSV), HQ's risk engine gets it (velocity per contact), plugins are told it
  on a decision. The admin finds orders by it through `contact_index`, a keyed hash of its
  normalised form (exact match, no substring search on a sealed value).
- `account` (the game account or phone number to top up): kept, sealed. HQ needs it to
  deliver, the buyer sees it on their order page, staff in the CSV.
- `ip`: kept, sealed. Only HQ's risk engine uses it (velocity and region per address);
  the site shows it nowhere.
- `region` (coarse, e.g. CN-GD) stays plain in its own column: pricing rules and reports
  read it and it identifies no one.

All three sealed fields are one AES-256-GCM box per order (`orders.buyer_sealed`), bound
to the order id, so a box copied onto another row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_AAD = b"kitctl-buyer-v1|"
_INDEX_INFO = b"kitctl-buyer-contact-index-v1"


@dataclass(frozen=True)
class Buyer:
    contact: str
    account: str | None = None
    ip: str | None = None


class BuyerBox:
    """Seals and opens buyer fields with one site key (the cipher is built once per process)."""

    def __init__(self, site_key: bytes) -> None:
        self._box = AESGCM(site_key)
        self._index_key = hmac.new(site_key, _INDEX_INFO, hashlib.sha256).digest()

    def seal(self, order_id: str, buyer: Buyer) -> str:
        nonce = os.urandom(12)
        data = json.dumps(asdict(buyer), separators=(",", ":"), ensure_ascii=False).encode()
        return base64.b64encode(nonce + self._box.encrypt(nonce, data, _AAD + order_id.encode())).decode("ascii")

    def open(self, order_id: str, sealed: str) -> Buyer:
        """The buyer of `order_id`; raises ValueError when the box is not this order's under this key."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            data = json.loads(self._box.decrypt(raw[:12], raw[12:], _AAD + order_id.encode()))
            return Buyer(contact=str(data["contact"]), account=data.get("account"), ip=data.get("ip"))
        except Exception as exc:  # InvalidTag, bad base64, bad JSON: one kind of failure for callers
            raise ValueError(f"buyer data of order {order_id} does not open with this site key") from exc

    def contact_index(self, contact: str) -> str:
        """A keyed hash of the normalised contact: equal contacts match, the value is not recoverable."""
        normal = contact.strip().casefold().encode()
        return hmac.new(self._index_key, normal, hashlib.sha256).hexdigest()[:32]
