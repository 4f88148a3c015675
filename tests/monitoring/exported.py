"""The metric names the code exports, derived from the registries themselves (never a hand list),
and the metric names a PromQL expression refers to."""

from __future__ import annotations

import re
from typing import Any, Iterable

PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}  # what Prometheus adds per target
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum"),
             "gauge": ("",), "info": ("_info",), "unknown": ("",)}


def _names(families: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for family in families:
        out.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        out.update(s.name for s in getattr(family, "samples", []))
    return out


def exported_names() -> dict[str, set[str]]:
    """Per part, every series name its registry can expose (labelled metrics included before first use)."""
    from agent.metrics import AgentMetrics
    from hq.metrics import FleetCollector, HQMetrics
    from storefront.metrics import StorefrontMetrics

    class _Settings:  # the fleet collector's description needs only this setting
        silent_heartbeats = 3

    class _HQ:
        settings = _Settings()

    return {
        "agent": _names(AgentMetrics().registry.collect()),
        "storefront": _names(StorefrontMetrics().registry.collect()),
        "hq": _names(HQMetrics().registry.collect()) | _names(FleetCollector(_HQ()).describe()),  # type: ignore[arg-type]
    }


def all_exported() -> set[str]:
    return set().union(*exported_names().values()) | PROMETHEUS_OWN


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (not functions, keywords, labels or Grafana variables)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables ($instance, ${__rate_interval})
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}
