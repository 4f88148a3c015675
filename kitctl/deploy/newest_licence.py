"""The licence the host tools go by: the site's own token or the one HQ sent the agent, whichever is newer.

HQ upgrades a licence by heartbeat; the agent stores the new token in the site
database and the shop follows at once. `kitctl status`, `doctor` and `plugins`
read that token too (inside the db container, `kitctl.deploy.drift`), so they
agree with the shop: an upgrade at HQ shows here without a manual step. Only a
token that verifies against the site's pinned keys, for the same site and
issued later, wins; when the engine cannot be asked the site's own answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitcore.licence.token import VerifiedLicence


@dataclass(frozen=True)
class NewestLicence:
    verified: "VerifiedLicence"
    source: str  # "site": the token render wrote; "agent": a newer one HQ sent by heartbeat

    def as_dict(self) -> dict[str, Any]:
        """What `status --json` shows: never the token."""
        claims = self.verified.claims
        return {"site": claims.sub, "tier": claims.tier, "features": sorted(claims.features),
                "expires": claims.exp, "days_left": self.verified.days_left, "status": self.verified.status,
                "from": self.source}

    def describe(self) -> str:
        claims = self.verified.claims
        import time

        expires = time.strftime("%Y-%m-%d", time.gmtime(claims.exp))
        features = ", ".join(sorted(claims.features)) or "none"
        source = " (sent by HQ, newer than the site's own)" if self.source == "agent" else ""
        return f"tier {claims.tier}, expires {expires} ({self.verified.days_left} days), features: {features}{source}"


def newest_licence(site_dir: Path, host: str | None, hq_keys: Path | None = None,
                   client: Any = None) -> NewestLicence:
    """The newest verified licence of the site; a one-line error when the site's own does not verify."""
    from kitcore.licence.keys import load_jwks
    from kitcore.licence.token import verify_licence
    from kitcore.sitedir import SiteDir
    from kitctl.deploy.drift import effective_licence
    from kitctl.deploy.rendered_site import verified_licence

    own = verified_licence(site_dir, None, hq_keys)
    stored = _stored_token(site_dir, host, client)
    if stored and effective_licence(site_dir, stored, hq_keys)[1] == "agent":
        return NewestLicence(verify_licence(stored, load_jwks(hq_keys or SiteDir(site_dir).hq_keys)), "agent")
    return NewestLicence(own, "site")


def _stored_token(site_dir: Path, host: str | None, client: Any) -> str | None:
    """The token the agent stored in the site database; None when there is none or the engine cannot be asked."""
    from kitcore.errors import KitError
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.drift import stored_licence_token, token_query

    try:
        project = load_project(Path(site_dir))
        if token_query(project) is None:
            return None
        if client is None:
            from kitctl.engine import connect

            client = connect(host)
        return stored_licence_token(client, project)
    except (KitError, OSError):
        return None
    except Exception as exc:  # the engine's own errors (docker.errors) when it is down
        if type(exc).__module__.startswith(("docker", "requests", "urllib3")):
            return None
        raise
