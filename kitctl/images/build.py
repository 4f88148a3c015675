"""Building the stack's images through the Docker Engine API (docker-py, low level).

Wheels are built once on the host and shared by the Python service images;
every build streams its steps to a callback so the CLI can show progress.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kitctl.console import DONE
from kitctl.images import DEFAULT_BASE_IMAGE, PYTHON_SERVICES, build_target, dockerfile_dir, image_tag

if TYPE_CHECKING:
    import docker

    from kitctl.images.plugin_wheels import PluginWheel

OnLine = Callable[[str, str], None]
"""Progress callback: (image or step name, one line of what is happening); called from the build threads."""

DEFAULT_JOBS = 2  # images built at once: a first build of all seven took 60 s one at a time, 38 s two at a time


def _quiet(_name: str, _line: str) -> None:
    pass


@dataclass(frozen=True)
class BuiltImage:
    service: str
    tag: str
    image_id: str
    seconds: float
    size_bytes: int
    plugins: list[str] = field(default_factory=list)  # third-party plugins installed in it

    def as_dict(self) -> dict:
        return asdict(self)


def image_exists(client: "docker.DockerClient", ref: str) -> bool:
    import docker.errors

    try:
        client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_base_image(
    client: "docker.DockerClient", base_image: str, source: Path, on_line: OnLine = _quiet, force: bool = False
) -> float | None:
    """Build kitctl/base:bookworm with images/base/build.sh when it is missing.

    Returns the seconds spent, or None when nothing was built. Another base
    (e.g. python:3.11-slim) is left to the engine: `FROM` pulls it.
    """
    from kitcore.errors import KitError

    if base_image != DEFAULT_BASE_IMAGE or (image_exists(client, base_image) and not force):
        return None
    script = source / "images" / "base" / "build.sh"
    on_line("base", f"debootstrap + docker import → {base_image} (about a minute)")
    started = time.monotonic()
    cmd = [str(script), "--tag", base_image] + (["--force"] if force else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        raise KitError(f"base image build failed: {lines[-1]}")
    seconds = time.monotonic() - started
    on_line("base", f"{DONE}{base_image} in {seconds:.0f} s")
    return seconds


def build_image(
    client: "docker.DockerClient",
    context: Path,
    tag: str,
    buildargs: dict[str, str],
    name: str,
    on_line: OnLine = _quiet,
    no_cache: bool = False,
    target: str | None = None,
) -> str:
    """Build one image from `context`, streaming each step; return its id.

    Host networking: with `dockerd --iptables=false` the default bridge has no
    way out, and the db/proxy images apt-get their Debian packages.
    """
    from docker.errors import APIError

    from kitcore.errors import KitError

    image_id = ""
    try:
        stream = client.api.build(
            path=str(context), tag=tag, buildargs=buildargs, rm=True, forcerm=True,
            nocache=no_cache, network_mode="host", decode=True, target=target,
        )
        for event in stream:
            if "error" in event or "errorDetail" in event:
                detail = event.get("errorDetail", {}).get("message") or event.get("error", "")
                raise KitError(f"building {tag} failed: {_last_line(detail)}")
            if "aux" in event and "ID" in event["aux"]:
                image_id = event["aux"]["ID"]
            line = (event.get("stream") or event.get("status") or "").strip()
            if line:
                on_line(name, line.splitlines()[-1])
    except APIError as exc:
        from kitctl.engine import first_line

        raise KitError(f"building {tag} failed: {first_line(exc)}") from None
    if not image_id:
        image_id = client.api.inspect_image(tag)["Id"]
    return image_id


def build_images(
    client: "docker.DockerClient",
    source: Path,
    version: str,
    services: list[str],
    base_image: str = DEFAULT_BASE_IMAGE,
    on_line: OnLine = _quiet,
    no_cache: bool = False,
    plugin_wheels: list["PluginWheel"] | None = None,
    jobs: int = DEFAULT_JOBS,
) -> list[BuiltImage]:
    """Build `kitctl/<service>:<version>` for each service from a source checkout (in `services`' order).

    Images of one Dockerfile share its first stages, so they are built one after another (the
    second reuses what the first built); images of different Dockerfiles are built side by side,
    `jobs` at a time, the other images while the host builds the Python images' wheels. The
    first failure stops what has not started and is raised once the builds running beside it end.

    `plugin_wheels` (checked by kitctl.images.plugin_wheels) are installed into the storefront and agent
    images, whose plugin hosts then discover their entry points; the images' `com.kitctl.plugins` label
    records them."""
    from kitctl.images.checkout import assemble_context
    from kitctl.images.plugin_wheels import PLUGIN_SERVICES, label_value

    ensure_base_image(client, base_image, source, on_line)
    buildargs = {"BASE_IMAGE": base_image, "KIT_VERSION": version}
    with tempfile.TemporaryDirectory(prefix="kitctl-images-") as tmp:
        work = Path(tmp)
        wheels = _WheelsOnce(source, work / "wheels", on_line)

        def build_one(service: str) -> BuiltImage:
            extra = list(plugin_wheels or []) if service in PLUGIN_SERVICES else []
            context = assemble_context(source, service, wheels.get() if service in PYTHON_SERVICES else None,
                                       work / "contexts", [w.path for w in extra])
            args = {**buildargs, "KIT_PLUGINS": label_value(extra)} if service in PLUGIN_SERVICES else buildargs
            tag = image_tag(service, version)
            started = time.monotonic()
            image_id = build_image(client, context, tag, args, service, on_line, no_cache, build_target(service))
            size = int(client.api.inspect_image(image_id).get("Size", 0))
            names = sorted(p["name"] for w in extra for p in w.plugins)
            seconds = time.monotonic() - started
            on_line(service, f"{DONE}{tag} ({size / 1e6:.0f} MB) in {seconds:.1f} s")
            return BuiltImage(service, tag, image_id, seconds, size, names)

        built = run_lanes(lanes(services), build_one, jobs)
    return [built[service] for service in services]


class _WheelsOnce:
    """The kit's and its dependencies' wheels, built on the host by the first Python image that needs them
    (in its lane's thread, while the other lanes build)."""

    def __init__(self, source: Path, dest: Path, on_line: OnLine) -> None:
        self._source, self._dest, self._on_line = source, dest, on_line
        self._lock, self._built = threading.Lock(), False

    def get(self) -> Path:
        from kitctl.images.checkout import build_wheels

        with self._lock:
            if not self._built:
                self._on_line("wheels", f"pip wheel {self._source.name} and its dependencies")
                count = len(build_wheels(self._source, self._dest))
                self._on_line("wheels", f"{DONE}{count} wheels")
                self._built = True
        return self._dest


def lanes(services: list[str]) -> list[list[str]]:
    """The services grouped by Dockerfile (first appearance first), each group in `services`' order."""
    grouped: dict[str, list[str]] = {}
    for service in services:
        grouped.setdefault(dockerfile_dir(service), []).append(service)
    return list(grouped.values())


def run_lanes(groups: list[list[str]], build_one: Callable[[str], BuiltImage], jobs: int) -> dict[str, BuiltImage]:
    """Each group's services one after another, up to `jobs` groups at once; the first error raised, after
    the others' running builds end and none starts."""
    from concurrent.futures import ThreadPoolExecutor

    built: dict[str, BuiltImage] = {}
    failed = threading.Event()

    def lane(group: list[str]) -> None:
        for service in group:
            if failed.is_set():
                return
            try:
                built[service] = build_one(service)
            except BaseException:
                failed.set()
                raise

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(groups)))) as pool:
        futures = [pool.submit(lane, group) for group in groups]
    for future in futures:
        future.result()  # the first lane's error, in the order the lanes were given
    return built


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"
