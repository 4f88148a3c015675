"""Images for the stack: present locally, pulled from the licence's registry, or loaded from a bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from kitcore.errors import KitError

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.report import Reporter

AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials", "denied", "401")


def split_registry(ref: str) -> tuple[str | None, str]:
    """('host:port', 'repo:tag') when the ref names a registry, else (None, ref)."""
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, ref


def registry_host(url: str) -> str:
    """'https://reg.example:5000/' → 'reg.example:5000'."""
    return url.split("://", 1)[-1].rstrip("/").split("/", 1)[0]


def local_image_ids(api: "APIClient", refs: Iterable[str]) -> dict[str, str | None]:
    """Image id per ref, None when the engine does not have it."""
    from docker.errors import ImageNotFound, NotFound

    found: dict[str, str | None] = {}
    for ref in sorted(set(refs)):
        try:
            found[ref] = api.inspect_image(ref)["Id"]
        except (ImageNotFound, NotFound):
            found[ref] = None
    return found


def pull_missing(api: "APIClient", ids: dict[str, str | None], grant: Any, reporter: "Reporter") -> dict[str, str | None]:
    """Pull every missing image (with the licence's registry grant); return the updated ids."""
    missing = [ref for ref, image_id in ids.items() if image_id is None]
    for ref in missing:
        pull_one(api, ref, grant, reporter)
    return {**ids, **local_image_ids(api, missing)} if missing else ids


def pull_one(api: "APIClient", ref: str, grant: Any, reporter: "Reporter") -> None:
    """Pull `ref`; a ref without a registry is pulled from the licence's registry and tagged back."""
    from docker.errors import APIError

    host, path = split_registry(ref)
    grant_host = registry_host(grant.url) if grant is not None else None
    source = ref if host is not None or grant_host is None else f"{grant_host}/{path}"
    auth = None
    if grant is not None and (host or grant_host) == grant_host:
        auth = {"username": grant.username, "password": grant.password or ""}
    repo, tag = _repo_tag(source)
    try:
        with reporter.pulling(source) as update:
            for event in api.pull(repo, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in event:
                    raise KitError(_pull_error(source, grant_host, event["error"]))
                update(event)
    except APIError as exc:
        from kitctl.engine import first_line

        raise KitError(_pull_error(source, grant_host, first_line(exc))) from None
    if source != ref:
        target_repo, target_tag = _repo_tag(ref)
        api.tag(source, target_repo, target_tag)


def _pull_error(source: str, grant_host: str | None, message: str) -> str:
    lowered = message.lower()
    if any(word in lowered for word in AUTH_WORDS):
        return (f"registry {grant_host or 'for ' + source} refused the licence's credentials "
                f"(wrong or revoked): cannot pull {source}")
    if "not found" in lowered or "manifest unknown" in lowered:
        return f"image {source} is not in the registry: {message}"
    return f"cannot pull {source}: {message}"


def _repo_tag(ref: str) -> tuple[str, str]:
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


def images_from_bundle(client: Any, bundle: str, refs: Iterable[str], reporter: "Reporter") -> dict[str, str | None]:
    """Every image the stack names, from an offline bundle alone: no registry is ever asked.

    The bundle holds `kitctl/<svc>:<ver>`; the rendered references may name the
    registry the licence grants (`host:port/kitctl/<svc>:<ver>`), so each loaded
    image is also tagged with the references it stands for.
    """
    loaded = set(load_bundle(client, bundle, reporter))
    tag_as_rendered(client.api, loaded, refs)
    ids = local_image_ids(client.api, refs)
    missing = sorted(ref for ref, image_id in ids.items() if image_id is None)
    if missing:
        raise KitError(f"bundle {bundle} has no image for {missing[0]} (with --bundle nothing is pulled)")
    return ids


def tag_as_rendered(api: "APIClient", loaded: set[str], refs: Iterable[str]) -> None:
    """Tag each loaded image with the registry-qualified references that name it."""
    for ref in sorted(set(refs)):
        host, path = split_registry(ref)
        if host is not None and path in loaded:
            repo, tag = _repo_tag(ref)
            api.tag(path, repo, tag)


def load_bundle(client: Any, bundle: str, reporter: "Reporter") -> list[str]:
    """Load an offline bundle (`kitctl bundle save`); the images package verifies every checksum first."""
    from pathlib import Path

    from kitctl.images.bundle import load_bundle as load_verified

    reporter.note(f"loading images from bundle {bundle} (checksums verified first)")
    loaded = load_verified(Path(bundle), client, on_line=lambda name, line: reporter.step(name, line))
    for ref in loaded:
        reporter.note(f"loaded {ref}")
    return loaded
