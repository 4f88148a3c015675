"""Labels the way Compose writes them, so `docker-compose ps` sees kitctl's stack."""

from __future__ import annotations

from kitcore import __version__
from kitctl.deploy.compose import SITE_LABEL, Project

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
CONFIG_HASH = "com.docker.compose.config-hash"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
COMPOSE_VERSION = "com.docker.compose.version"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
MANAGED_BY = "io.kitctl.managed-by"
MOUNTS_HASH = "io.kitctl.mounts-hash"
SITE = SITE_LABEL  # whose resource this is: the site id, the identity `up`/`down`/`status` check
COMPOSE_COMPAT_VERSION = "1.29.2"  # what Debian's docker-compose v1 expects to read


def container_labels(project: Project, service: str, config_hash: str, mounts_hash: str,
                     user_labels: dict[str, str]) -> dict[str, str]:
    labels = dict(user_labels)
    labels.update({
        PROJECT: project.name,
        SERVICE: service,
        NUMBER: "1",
        ONEOFF: "False",
        CONFIG_HASH: config_hash,
        MOUNTS_HASH: mounts_hash,
        WORKING_DIR: str(project.working_dir),
        CONFIG_FILES: str(project.config_file),
        COMPOSE_VERSION: COMPOSE_COMPAT_VERSION,
        MANAGED_BY: f"kitctl {__version__}",
    })
    return labels | _site(project)


def resource_labels(project: Project, kind_label: str, key: str) -> dict[str, str]:
    return {PROJECT: project.name, kind_label: key, COMPOSE_VERSION: COMPOSE_COMPAT_VERSION,
            MANAGED_BY: f"kitctl {__version__}", **_site(project)}


def _site(project: Project) -> dict[str, str]:
    return {SITE: project.site_id} if project.site_id else {}


def project_filter(project_name: str) -> dict[str, list[str]]:
    """Engine filter for the project's service containers (not one-off runs)."""
    return {"label": [f"{PROJECT}={project_name}", f"{ONEOFF}=False"]}


def container_name(project_name: str, service: str) -> str:
    """Compose v1's name for the one replica of a service."""
    return f"{project_name}_{service}_1"
