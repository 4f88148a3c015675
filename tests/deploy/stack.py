"""A small real stack for deploy tests: PostgreSQL (kitctl/db), a stand-in web app,
and Caddy (kitctl/proxy), written as a rendered site directory with a licence.

Used by the e2e test and the benchmark until the rendered storefront stack is
complete; everything here runs on the real engine, nothing is faked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kitcore.sitedir import SiteDir

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BASE_IMAGE = os.environ.get("KITCTL_BASE_IMAGE", "kitctl/base:bookworm")
KIT_VERSION = "0.1.0"
# A 1×1 PNG: the "logo" the proxy serves from /branding/.
LOGO_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")

WEB_DOCKERFILE = """\
ARG BASE=kitctl/base:bookworm
FROM ${BASE}
ARG VERSION=0
ARG BROKEN=0
ENV KIT_TEST_VERSION=${VERSION} KIT_TEST_BROKEN=${BROKEN} PYTHONUNBUFFERED=1
COPY web.py /opt/web.py
USER 65534:65534
CMD ["python3", "/opt/web.py"]
"""


def probe(url: str) -> list[str]:
    return ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=2)"]


def build_web_image(client: Any, tag: str, version: str, broken: bool = False) -> str:
    """Build the stand-in web app FROM the kit's base image (no network needed)."""
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text(WEB_DOCKERFILE)
        shutil.copy(FIXTURES / "web.py", Path(ctx, "web.py"))
        client.images.build(path=ctx, tag=tag, rm=True, buildargs={
            "BASE": BASE_IMAGE, "VERSION": version, "BROKEN": "1" if broken else "0"})
    return tag


@dataclass
class SiteSpec:
    project: str
    name: str
    http_port: int
    web_image: str
    db_image: str = f"kitctl/db:{KIT_VERSION}"
    proxy_image: str = f"kitctl/proxy:{KIT_VERSION}"
    colour: str = "#0a7cff"
    site_id: str | None = None  # labels every service like the renderer does (the project is then kit-<site>)


def compose(spec: SiteSpec) -> dict[str, Any]:
    doc = _compose(spec)
    if spec.site_id:
        for service in doc["services"].values():
            service["labels"] = {**service.get("labels", {}), "com.kitctl.site": spec.site_id}
    return doc


def _compose(spec: SiteSpec) -> dict[str, Any]:
    return {
        "services": {
            "proxy": {
                "image": spec.proxy_image,
                "restart": "unless-stopped",
                "depends_on": {"web": {"condition": "service_healthy"}},
                "ports": [f"127.0.0.1:{spec.http_port}:80"],
                "volumes": [
                    {"type": "bind", "source": "./Caddyfile", "target": "/etc/caddy/Caddyfile", "read_only": True},
                    {"type": "bind", "source": "./branding", "target": "/srv/branding", "read_only": True},
                    {"type": "volume", "source": "proxy-data", "target": "/data"},
                ],
                "healthcheck": {"test": probe("http://127.0.0.1:8081/healthz"), "interval": "1s", "timeout": "5s", "retries": 30},
                "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "256M"}}},
                "labels": {"com.kitctl.service": "proxy"},
            },
            "web": {
                "image": spec.web_image,
                "restart": "unless-stopped",
                "depends_on": {"db": {"condition": "service_healthy"}},
                "environment": {"KIT_SITE_CONFIG": "/etc/kit/site.json"},
                "volumes": [{"type": "bind", "source": "./site.json", "target": "/etc/kit/site.json", "read_only": True}],
                "read_only": True,
                "tmpfs": ["/tmp"],
                "healthcheck": {"test": probe("http://127.0.0.1:8000/healthz"), "interval": "1s", "timeout": "5s",
                                "retries": 4, "start_period": "5s"},
                "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "128M"}}},
            },
            "db": {
                "image": spec.db_image,
                "restart": "unless-stopped",
                "environment": {"POSTGRES_USER": "kit", "POSTGRES_DB": "kit",
                                "POSTGRES_PASSWORD_FILE": "/run/secrets/db_password"},
                "secrets": ["db_password"],
                "volumes": [{"type": "volume", "source": "db-data", "target": "/var/lib/postgresql/data"}],
                "healthcheck": {"test": ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "kit", "-d", "kit"],
                                "interval": "1s", "timeout": "5s", "retries": 60},
            },
        },
        "volumes": {"db-data": {}, "proxy-data": {}},
        "secrets": {"db_password": {"file": "./secrets/db_password"}},
    }


def write_site(site_dir: Path, spec: SiteSpec, licence_token: str, jwks: dict[str, Any]) -> Path:
    """A rendered-looking site directory: compose.yaml, proxy config, branding, site.json, secrets."""
    site_dir.mkdir(parents=True, exist_ok=True)
    SiteDir(site_dir).compose.write_text(yaml.safe_dump(compose(spec), sort_keys=False, allow_unicode=True))
    shutil.copy(FIXTURES / "Caddyfile", site_dir / "Caddyfile")
    branding = site_dir / "branding"
    branding.mkdir(exist_ok=True)
    (branding / "logo.png").write_bytes(LOGO_PNG)
    set_colour(site_dir, spec.colour)
    SiteDir(site_dir).site_json.write_text(json.dumps({"id": spec.project, "name": spec.name, "domain": "localhost"},
                                                   ensure_ascii=False))
    SiteDir(site_dir).hq_keys.write_text(json.dumps(jwks))
    secrets = site_dir / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    for name, value in (("db_password", os.urandom(12).hex()), ("licence_token", licence_token)):
        path = secrets / name
        path.write_text(value)
        path.chmod(0o600)
    for path in (site_dir, branding):
        path.chmod(0o755)
    return site_dir


def set_colour(site_dir: Path, colour: str) -> None:
    (site_dir / "branding" / "theme.css").write_text(f":root {{ --brand: {colour}; }}\n")


def issue_test_licence(hq_dir: Path, site: str, registry: dict[str, str] | None) -> tuple[str, dict[str, Any]]:
    """A real signed licence from a throwaway HQ key store, and the JWKS to pin."""
    from kitcore.licence.keys import HQKeyStore
    from kitcore.licence.token import issue_licence

    store = HQKeyStore(hq_dir)
    if not store.exists():
        store.init()
    token = issue_licence(store, site, "basic", ["game"], 30, "https://hq.invalid", registry=registry)
    return token, store.jwks()
