"""A plugin's stack fragment can add to the stack but never weaken the core's rules.

Each case is one rule of plugins.rules, reached through the host's
check (plugins.checks.stack_fragment); each refusal is one line naming the plugin.
"""

from __future__ import annotations

from typing import Any

import pytest

from plugins.checks import BadAnswer, stack_fragment
from plugins.host import PluginHost
from tests.plugins import fixture_plugins as fx

GOOD_SERVICE = {"image": "kitctl/base:bookworm", "command": ["sleep", "infinity"]}


def fragment(**service: Any) -> dict[str, Any]:
    return {"services": {"stacker-worker": {**GOOD_SERVICE, **service}}, "volumes": {"stacker-data": {}}}


REFUSED = [
    ({"services": {"db": GOOD_SERVICE}}, "service 'db' is a core service and cannot be redefined"),
    ({"services": {"storefront": GOOD_SERVICE}}, "service 'storefront' is a core service"),
    ({"services": {"worker": GOOD_SERVICE}}, "service 'worker' must be named 'stacker' or start with 'stacker-'"),
    (fragment(privileged=True), "may not set privileged"),
    (fragment(network_mode="host"), "may not set network_mode"),
    (fragment(cap_add=["SYS_ADMIN"]), "may not set cap_add"),
    (fragment(pid="host"), "may not set pid"),
    (fragment(devices=["/dev/kvm"]), "may not set devices"),
    (fragment(networks=["hq"]), "may not set networks"),
    (fragment(secrets=["database_url"]), "may not set secrets"),
    (fragment(user="0"), "may not set user"),
    (fragment(entrypoint=["sh"]), "may not set entrypoint"),
    (fragment(restart="always"), "may not set restart"),
    (fragment(labels={"com.docker.compose.project": "other"}), "may not set labels"),
    (fragment(volumes=["/var/run/docker.sock:/var/run/docker.sock"]), "may mount only volumes its plugin declares"),
    (fragment(volumes=[{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]), "no host paths, no Docker socket"),
    (fragment(volumes=["db-data:/steal"]), "may mount only volumes its plugin declares, not 'db-data'"),
    (fragment(volumes=["stacker-data:relative"]), "must be an absolute path"),
    (fragment(ports=["8080:80"]), "must be published on 127.0.0.1 only"),
    (fragment(ports=["0.0.0.0:8080:80"]), "must be published on 127.0.0.1 only"),
    (fragment(ports=["[::]:8080:80"]), "must be published on 127.0.0.1 only"),
    (fragment(image="evil.example.com/kitctl/x:1"), "must be kitctl/NAME[:TAG]"),
    (fragment(image="alpine:3"), "must be kitctl/NAME[:TAG]"),
    (fragment(image="kitctl/../evil"), "must be kitctl/NAME[:TAG]"),
    ({"services": {"stacker-worker": {"command": ["sleep", "1"]}}}, "image None must be kitctl/NAME[:TAG]"),
    (fragment(command="sleep infinity"), "command must be a list of strings"),
    (fragment(depends_on=["hq"]), "depends on unknown service 'hq'"),
    (fragment(depends_on={"db": {"condition": "service_completed_successfully"}}), "condition must be one of"),
    (fragment(healthcheck={"test": "true"}), "healthcheck test must be"),
    (fragment(healthcheck={"test": ["CMD", "true"], "interval": "forever"}), "healthcheck interval must be like 10s"),
    (fragment(environment={"lower": "x"}), "must be UPPER_CASE"),
    ({"volumes": {"data": {}}}, "volume 'data' must be named 'stacker' or start with 'stacker-'"),
    ({"volumes": {"stacker-data": {"driver_opts": {"type": "none", "o": "bind", "device": "/"}}}}, "may not set a driver"),
    ({"env": {"storefront": {"KIT_PAYMENT_MODE": "free"}}}, "must start with PLUGIN_STACKER_ (core settings are not a plugin's)"),
    ({"env": {"agent": {"KIT_HQ_URL": "http://evil"}}}, "must start with PLUGIN_STACKER_"),
    ({"env": {"db": {"POSTGRES_PASSWORD": "x"}}}, "env may target only storefront, agent or the plugin's own services, not 'db'"),
    ({"env": {"proxy": {"PLUGIN_STACKER_X": "1"}}}, "not 'proxy'"),
    ({"env": {"storefront": {"PLUGIN_STACKER_X": "a\nb"}}}, "must be a one-line string"),
    ({"env": {"storefront": {"PLUGIN_OTHER_X": "1"}}}, "must start with PLUGIN_STACKER_"),
]


@pytest.mark.parametrize(("raw", "message"), REFUSED, ids=[m[:40] for _, m in REFUSED])
def test_a_fragment_that_would_weaken_the_core_is_refused_in_one_line_naming_the_plugin(raw, message):
    with pytest.raises(BadAnswer) as refused:
        stack_fragment(raw, "stacker")
    text = str(refused.value)
    assert text.startswith("plugin stacker: ") and message in text and "\n" not in text


def test_a_fragment_within_the_rules_is_normalised():
    raw = fragment(volumes=["stacker-data:/data:ro"], ports=["127.0.0.1:18080:8080"], depends_on=["db", "stacker-worker"],
                   healthcheck={"test": ["CMD", "true"], "interval": "5s", "retries": 3}, environment={"MODE": "x"})
    raw["env"] = {"storefront": {"PLUGIN_STACKER_URL": "http://stacker-worker:8080"}, "stacker-worker": {"EXTRA": "1"}}
    checked = stack_fragment(raw, "stacker")
    service = checked["services"]["stacker-worker"]
    assert service["volumes"] == [{"type": "volume", "source": "stacker-data", "target": "/data", "read_only": True}]
    assert service["depends_on"] == {"db": {"condition": "service_started"}, "stacker-worker": {"condition": "service_started"}}
    assert service["ports"] == ["127.0.0.1:18080:8080"]
    assert checked["env"]["storefront"] == {"PLUGIN_STACKER_URL": "http://stacker-worker:8080"}


class _Sneaky(fx.StackPlugin):
    """Passes nothing the rules forbid through a second plugin's namespace."""

    from plugins.contract import Manifest as _M

    manifest = _M(name="sneaky", version="1.0", feature="coupons")

    def stack_fragment(self) -> dict[str, Any]:
        return {"services": {"stacker-worker": GOOD_SERVICE}}


def test_the_host_reports_each_refused_plugin_by_name_and_keeps_the_good_ones(registry):
    host = PluginHost.load(["coupons"], sources=[fx.source(fx.StackPlugin), fx.source(fx.BadStackPlugin), fx.source(_Sneaky)],
                           registry=registry)
    fragments, refused = host.plugin_fragments()
    assert set(fragments) == {"stacker"}
    assert refused["bad-stacker"] == "plugin bad-stacker: service 'db' is a core service and cannot be redefined"
    assert refused["sneaky"] == "plugin sneaky: service 'stacker-worker' must be named 'sneaky' or start with 'sneaky-'"


def test_a_fragment_hook_that_raises_is_refused_by_name(registry):
    class Raises(fx.StackPlugin):
        from plugins.contract import Manifest as _M

        manifest = _M(name="raises", version="1.0", feature="coupons")

        def stack_fragment(self) -> dict[str, Any]:
            raise RuntimeError("no fragment today")

    host = PluginHost.load(["coupons"], sources=[fx.source(Raises)], registry=registry)
    assert host.plugin_fragments() == ({}, {"raises": "plugin raises: stack_fragment failed (RuntimeError: no fragment today)"})
