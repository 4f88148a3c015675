"""The site options `kitctl render`, `plan` and `up` share, declared once.

Decorate a typer command with `@with_site_options`; it gains every flag below
and receives them as one mapping `site_params` (flag name -> value, None when
not given), ready for `kitctl.site.load.load_site_inputs` or directly for
`render_site(site_params)`. Environment variables (`KITCTL_…`) and site.toml
are applied by the settings model, so flags carry no envvar here: that keeps
the precedence flags > env > site.toml > defaults in one place.
"""

import functools
import inspect
import typing
from typing import Any, Callable, List, Optional

import typer

_P = inspect.Parameter


def _opt(name: str, annotation: Any, flag: str, help: str, **extra: Any) -> inspect.Parameter:
    return _P(name, _P.KEYWORD_ONLY, default=typer.Option(None, flag, help=help, **extra), annotation=annotation)


SITE_OPTIONS: list[inspect.Parameter] = [
    _opt("licence", Optional[str], "--licence", "Licence token, @FILE, or - for stdin.", rich_help_panel="Site"),
    _opt("hq_keys", Optional[str], "--hq-keys", "Pinned HQ public keys (JWKS file).", rich_help_panel="Site"),
    _opt("name", Optional[str], "--name", "Site name buyers see (any Unicode).", rich_help_panel="Site"),
    _opt("domain", Optional[str], "--domain", "Domain (IDNA, e.g. 商店.example.cn), or localhost.", rich_help_panel="Site"),
    _opt("logo", Optional[str], "--logo", "Logo file: PNG, JPEG or SVG (checked by content).", rich_help_panel="Site"),
    _opt("theme", Optional[str], "--theme", "Custom shop theme directory: templates/*.html and theme.css (licence feature custom-theme).", rich_help_panel="Branding"),
    _opt("site_dir", Optional[str], "--site-dir", "Site directory (default ./site).", rich_help_panel="Site"),
    _opt("reset", Optional[List[str]], "--reset", "Take this input back to its default instead of the value the "
         "site directory recorded (repeatable, e.g. --reset http-port).", rich_help_panel="Site"),
    _opt("primary_colour", Optional[str], "--primary-color", "Primary colour #RRGGBB.", rich_help_panel="Branding"),
    _opt("accent_colour", Optional[str], "--accent-color", "Accent colour #RRGGBB.", rich_help_panel="Branding"),
    _opt("locale", Optional[str], "--locale", "zh-CN (default) or en.", rich_help_panel="Branding"),
    _opt("currency", Optional[str], "--currency", "ISO 4217 code (default CNY).", rich_help_panel="Branding"),
    _opt("time_zone", Optional[str], "--time-zone", "IANA time zone the pages show times in (default Asia/Shanghai).", rich_help_panel="Branding"),
    _opt("contact", Optional[str], "--contact", "Contact shown to buyers.", rich_help_panel="Branding"),
    _opt("bind_address", Optional[str], "--bind-address", "Host address ports are published on (default 127.0.0.1).", rich_help_panel="Host"),
    _opt("http_port", Optional[int], "--http-port", "Host HTTP port (default 80).", rich_help_panel="Host"),
    _opt("https_port", Optional[int], "--https-port", "Host HTTPS port (default 443).", rich_help_panel="Host"),
    _opt("metrics_port", Optional[int], "--metrics-port", "Host port of the agent's /metrics (default 9464).", rich_help_panel="Host"),
    _opt("metrics_bind_address", Optional[str], "--metrics-bind-address", "Host address /metrics is published on (default 127.0.0.1, whatever --bind-address says); beyond loopback it asks for the agent token.", rich_help_panel="Host"),
    _opt("replicas", Optional[int], "--replicas", "Storefront tasks on a Swarm (up --orchestrator swarm; default 1).", rich_help_panel="Host"),
    _opt("orchestrator", Optional[str], "--orchestrator", "engine (containers on one Docker engine, default) or swarm (Swarm services on a manager; docs/scale-out.md); recorded: a later up keeps it.", rich_help_panel="Host"),
    _opt("proxy_replicas", Optional[int], "--proxy-replicas", "Proxy tasks on a Swarm, at most one per node (default 1).", rich_help_panel="Host"),
    _opt("checkouts_per_minute", Optional[int], "--checkouts-per-minute", "Checkouts the shop takes per buyer address a minute, 1-100000 (default 120; carrier NAT puts many buyers behind one address).", rich_help_panel="Host"),
    _opt("monitoring", Optional[bool], "--with-monitoring/--without-monitoring", "Run Prometheus and Alertmanager beside the site, with the kit's alert rules loaded.", rich_help_panel="Monitoring"),
    _opt("prometheus_port", Optional[int], "--prometheus-port", "Host port of Prometheus, on 127.0.0.1 (default 9090).", rich_help_panel="Monitoring"),
    _opt("alertmanager_port", Optional[int], "--alertmanager-port", "Host port of Alertmanager, on 127.0.0.1 (default 9093).", rich_help_panel="Monitoring"),
    _opt("tls", Optional[str], "--tls", "auto (ACME for a real domain, self-signed for local), internal, off.", rich_help_panel="Host"),
    _opt("data_dir", Optional[str], "--data-dir", "Keep volumes under this host directory instead of Docker's.", rich_help_panel="Host"),
    _opt("docker_host", Optional[str], "--docker-host", "unix:///path or ssh://user@host[:port].", rich_help_panel="Host"),
    _opt("hq_network", Optional[str], "--hq-network", "Existing Docker network the agent also joins.", rich_help_panel="Host"),
    _opt("hq_url", Optional[str], "--hq-url", "HQ API URL (overrides the licence's).", rich_help_panel="Licence"),
    _opt("plugins", Optional[List[str]], "--plugin", "Plugin to enable (repeatable; the licence must grant it).", rich_help_panel="Licence"),
    _opt("categories", Optional[List[str]], "--category", "Category to sell (repeatable) (default all licensed).", rich_help_panel="Licence"),
    _opt("registry", Optional[str], "--registry", "Image registry host[:port] (overrides the licence's).", rich_help_panel="Images"),
    _opt("image_tag", Optional[str], "--image-tag", "Image tag (default the kit version).", rich_help_panel="Images"),
]
SITE_OPTION_NAMES = tuple(p.name for p in SITE_OPTIONS)


def site_params_from(values: dict[str, Any]) -> dict[str, Any]:
    """Only the site options, with empty repeatables as 'not given'."""
    params = {name: values.get(name) for name in SITE_OPTION_NAMES}
    for name in ("plugins", "categories", "reset"):
        if not params[name]:
            params[name] = None
        else:
            params[name] = list(params[name])
    return params


def with_site_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command every site option; it receives them as `site_params`."""
    hints = typing.get_type_hints(command)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(command).parameters.values()
        if p.name != "site_params"
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        site = site_params_from({name: kwargs.pop(name, None) for name in SITE_OPTION_NAMES})
        return command(site_params=site, **kwargs)

    params = [p.replace(kind=_P.KEYWORD_ONLY) for p in own] + SITE_OPTIONS
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer must see the new signature, not the original
    return wrapper
