"""Container images of the sub-site stack: build, push, offline bundles.

The logic lives in plain modules (`build`, `registry`, `bundle`) that take a
docker-py client; `kitctl.cli.images` is a thin shell over them. Nothing heavy
is imported here, so `import kitctl.images` stays cheap.
"""

from __future__ import annotations

SERVICES: tuple[str, ...] = ("storefront", "agent", "hq", "db", "proxy", "prometheus", "alertmanager")
"""Every service image of a kit version, in build order (the last two run only with `up --with-monitoring`)."""

SITE_SERVICES: tuple[str, ...] = ("storefront", "agent", "db", "proxy")
"""What a sub-site runs: a licensee's offline bundle carries these and not HQ's own server."""

PYTHON_SERVICES: frozenset[str] = frozenset({"storefront", "agent", "hq"})
"""Images that carry the kit itself (a venv in /opt/kit from host-built wheels)."""

MONITORING_SERVICES: frozenset[str] = frozenset({"prometheus", "alertmanager"})
"""Images that are stages of images/monitoring/Dockerfile (one shared layer of Debian packages)."""

DEFAULT_BASE_IMAGE = "kitctl/base:bookworm"
IMAGE_NAMESPACE = "kitctl"


def image_tag(service: str, version: str, registry: str | None = None) -> str:
    """`kitctl/<service>:<version>`, prefixed by `<registry>/` when given."""
    repo = f"{IMAGE_NAMESPACE}/{service}"
    return f"{registry}/{repo}:{version}" if registry else f"{repo}:{version}"


def dockerfile_dir(service: str) -> str:
    """The folder of images/ holding the service's Dockerfile (the Python services share one, so do Prometheus
    and Alertmanager)."""
    if service in PYTHON_SERVICES:
        return "python"
    return "monitoring" if service in MONITORING_SERVICES else service


def build_target(service: str) -> str | None:
    """The Dockerfile stage to build: the Python services are stages of one file, the monitoring ones of another."""
    return service if service in PYTHON_SERVICES | MONITORING_SERVICES else None


def select_services(names: list[str] | None) -> list[str]:
    """The services asked for (all when none), in build order; unknown names refused."""
    from kitcore.errors import InvalidInput

    if not names:
        return list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise InvalidInput(f"unknown service {unknown[0]!r}; known: {', '.join(SERVICES)}")
    return [s for s in SERVICES if s in names]
