"""`kitctl hq …`: the HQ operator's commands (keys, licences)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from kitctl.cli.options import HQ_DIR, hq_dir_or_default

app = typer.Typer(help="HQ operator commands: signing keys and licences.", no_args_is_help=True)
keys_app = typer.Typer(help="HQ's licence-signing keys.", no_args_is_help=True)
licence_app = typer.Typer(help="Issue licences.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(licence_app, name="licence")


@keys_app.command("init")
def keys_init(hq_dir: Optional[Path] = HQ_DIR) -> None:
    """Create HQ's first signing key (private file mode 0600); print its public half."""
    from kitctl.console import out
    from kitctl.licence.keys import HQKeyStore, thumbprint

    store = HQKeyStore(hq_dir_or_default(hq_dir))
    info = store.init()
    public = store.public_key(info.kid)
    out().print(f"[green]created[/] signing key [bold]{info.kid}[/] in {store.dir}")
    out().print(f"fingerprint SHA256:{thumbprint(public)}")
    out().print(json.dumps(store.jwks()["keys"][0]))


@keys_app.command("export")
def keys_export(hq_dir: Optional[Path] = HQ_DIR) -> None:
    """Print HQ's public keys as a JWKS document, for licensees to pin."""
    from kitctl.console import print_json
    from kitctl.licence.keys import HQKeyStore

    print_json(HQKeyStore(hq_dir_or_default(hq_dir)).jwks())


@keys_app.command("rotate")
def keys_rotate(hq_dir: Optional[Path] = HQ_DIR) -> None:
    """Make a new signing key current; tokens signed by older keys keep verifying."""
    from kitctl.console import out
    from kitctl.licence.keys import HQKeyStore

    info = HQKeyStore(hq_dir_or_default(hq_dir)).rotate()
    out().print(f"[green]rotated[/]: new current key [bold]{info.kid}[/]; re-export the JWKS for licensees")


@keys_app.command("retire")
def keys_retire(kid: str, hq_dir: Optional[Path] = HQ_DIR) -> None:
    """Stop publishing an old key; tokens it signed stop verifying once re-pinned."""
    from kitctl.console import out
    from kitctl.licence.keys import HQKeyStore

    HQKeyStore(hq_dir_or_default(hq_dir)).retire(kid)
    out().print(f"retired key {kid}")


@licence_app.command("issue")
def licence_issue(
    site: str = typer.Option(..., "--site", help="Site id: lowercase letters, digits, '-'."),
    tier: str = typer.Option("basic", "--tier", help="basic, pro or flagship."),
    categories: str = typer.Option(..., "--categories", help="Comma-separated, e.g. game,phone."),
    days: int = typer.Option(365, "--days", help="Term in days."),
    hq_url: str = typer.Option("http://127.0.0.1:8600", "--hq-url", envvar="KITCTL_HQ_URL", help="HQ API the agent talks to."),
    hq_dir: Optional[Path] = HQ_DIR,
) -> None:
    """Sign a licence and print the token."""
    from kitctl.licence.keys import HQKeyStore
    from kitctl.licence.token import issue_licence

    store = HQKeyStore(hq_dir_or_default(hq_dir))
    cats = [c.strip() for c in categories.split(",") if c.strip()]
    print(issue_licence(store, site=site, tier=tier, categories=cats, days=days, hq_url=hq_url))
