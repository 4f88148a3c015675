"""Which gateway plugins exist: the built-in ones, and those registered under the `kitctl.hq_gateways` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from hq.payments.alipay import AlipayGateway
from hq.payments.epay import EpayGateway
from hq.payments.wechat import WechatGateway

ENTRY_POINT_GROUP = "kitctl.hq_gateways"
BUILTIN: dict[str, Any] = {"epay": EpayGateway, "alipay": AlipayGateway, "wechat": WechatGateway}


def gateway_class(name: str) -> Any:
    """The plugin class for `name`: built in, or registered under the entry-point group; None if unknown."""
    found = BUILTIN.get(name)
    if found is not None:
        return found
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None
