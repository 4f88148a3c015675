"""`kitctl hq …`: the HQ operator's commands (keys, licences, catalog, reviews, serve).

Commands work on the local HQ (its directory and database) by calling the
same functions the HQ API calls, so a command and an API request change
HQ in exactly the same way, audit log included.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import typer

from kitctl.cli.options import HQ_DIR, JSON, hq_dir_or_default

if TYPE_CHECKING:
    from hq.service import HQ

app = typer.Typer(help="HQ operator commands: keys, licences, catalog, reviews, settlement, the HQ server.",
                  no_args_is_help=True)
keys_app = typer.Typer(help="HQ's licence-signing keys.", no_args_is_help=True)
licence_app = typer.Typer(help="The licence authority: issue, list, revoke, suspend, resume, upgrade, renew.",
                          no_args_is_help=True)
operator_app = typer.Typer(help="HQ operators (API and fleet page credentials).", no_args_is_help=True)
catalog_app = typer.Typer(help="HQ's catalog and card-key inventory.", no_args_is_help=True)
reviews_app = typer.Typer(help="Orders waiting for manual review.")
settle_app = typer.Typer(help="Settlement: statements, payouts, refunds, fees, adjustments, rates (docs/settlement.md).",
                         no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(licence_app, name="licence")
app.add_typer(operator_app, name="operator")
app.add_typer(operator_app, name="operators", hidden=True)  # the plural reads as naturally
app.add_typer(catalog_app, name="catalog")
app.add_typer(reviews_app, name="reviews")
app.add_typer(settle_app, name="settle")
payments_app = typer.Typer(help="Payment gateways HQ takes buyers' money through (docs/payments.md).",
                           no_args_is_help=True)
app.add_typer(payments_app, name="payments")
features_app = typer.Typer(help="Licence features: the tiers' own and third parties' (registered to be grantable).",
                           no_args_is_help=True)
app.add_typer(features_app, name="features")
grades_app = typer.Typer(help="Sites' grades and ranking per month, and acting on a suggestion (docs/partners.md).")
app.add_typer(grades_app, name="grades")
applications_app = typer.Typer(help="Partner applications: the queue, one application, decisions (docs/partners.md).",
                                no_args_is_help=True)
app.add_typer(applications_app, name="applications")
complaints_app = typer.Typer(help="Buyers' complaints the sites passed on: list and resolve (docs/partners.md).",
                              no_args_is_help=True)
app.add_typer(complaints_app, name="complaints")
stock_app = typer.Typer(help="Low-stock thresholds of card-key SKUs (docs/partners.md).", no_args_is_help=True)
app.add_typer(stock_app, name="stock")
rollout_app = typer.Typer(help="Rollouts of a kit version by rings, canary first (docs/deploy.md).",
                          no_args_is_help=True)
app.add_typer(rollout_app, name="rollout")

DATABASE_URL = typer.Option(None, "--database-url", envvar="KIT_HQ_DATABASE_URL",
                            help="HQ database (default: SQLite in the HQ directory).")
HQ_URL = typer.Option("http://127.0.0.1:8600", "--hq-url", envvar="KITCTL_HQ_URL",
                      help="HQ API URL written into licences (the agent talks to it).")
REGISTRY_URL = typer.Option("127.0.0.1:5000", "--registry-url", envvar="KIT_HQ_REGISTRY_URL",
                            help="Image registry a licence grants pull access to ('' for none).")


def _operator_name() -> str:
    import getpass

    try:
        return f"local:{getpass.getuser()}"
    except Exception:  # no user name (container without passwd entry)
        return "local"


@contextmanager
def local_hq(hq_dir: Optional[Path], database_url: Optional[str] = None, hq_url: Optional[str] = None,
             registry_url: Optional[str] = None) -> Iterator["HQ"]:
    """Open the local HQ; API-style errors become one-line errors (exit code 2)."""
    from hq.errors import ApiError
    from hq.service import HQ
    from hq.settings import HQSettings
    from kitcore.errors import InvalidInput

    extra: dict[str, Any] = {}
    if hq_url is not None:
        extra["public_url"] = hq_url
    if registry_url is not None:
        extra["registry_url"] = registry_url or None
    try:
        settings = HQSettings(dir=hq_dir_or_default(hq_dir), database_url=database_url, **extra)
    except ValueError as exc:
        raise InvalidInput(f"HQ settings: {str(exc).splitlines()[-1].strip()}") from None
    service = HQ.open(settings)
    try:
        yield service
    except ApiError as exc:
        raise InvalidInput(exc.detail) from None
    finally:
        service.close()


def _csv(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    from kitctl.console import out

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    out().print(table)


def _print_licences(records: list[dict[str, Any]], as_json: bool) -> None:
    from kitctl.console import print_json

    if as_json:
        print_json([{k: v for k, v in r.items() if k != "token"} for r in records])
        return
    _table("Licences", ["site", "status", "tier", "categories", "expires", "jti", "reason"],
           [[r["site"], r["status"], r["tier"], ",".join(r["categories"]), (r["expires_at"] or "")[:10], r["jti"][:12],
             _reason(r)] for r in records])


def _reason(record: dict[str, Any]) -> str | None:
    """The reason, with the end of a timed suspension."""
    until = record.get("suspended_until")
    return f"{record.get('reason')} (until {until})" if until else record.get("reason")


# -- keys ----------------------------------------------------------------------

@keys_app.command("init")
def keys_init(hq_dir: Optional[Path] = HQ_DIR) -> None:
    """Create HQ's first signing key (private file mode 0600); print its public half."""
    from kitctl.console import out
    from kitcore.licence.keys import HQKeyStore, thumbprint

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
    from kitcore.licence.keys import HQKeyStore

    print_json(HQKeyStore(hq_dir_or_default(hq_dir)).jwks())


@keys_app.command("rotate")
def keys_rotate(hq_dir: Optional[Path] = HQ_DIR) -> None:
    """Make a new signing key current; tokens signed by older keys keep verifying."""
    from kitctl.console import out
    from kitcore.licence.keys import HQKeyStore

    info = HQKeyStore(hq_dir_or_default(hq_dir)).rotate()
    out().print(f"[green]rotated[/]: new current key [bold]{info.kid}[/]; re-export the JWKS for licensees")


@keys_app.command("retire")
def keys_retire(kid: str, hq_dir: Optional[Path] = HQ_DIR) -> None:
    """Stop publishing an old key; tokens it signed stop verifying once re-pinned."""
    from kitctl.console import out
    from kitcore.licence.keys import HQKeyStore

    HQKeyStore(hq_dir_or_default(hq_dir)).retire(kid)
    out().print(f"retired key {kid}")


# -- serve ---------------------------------------------------------------------

@app.command("serve")
def serve(
    hq_dir: Optional[Path] = HQ_DIR,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8600, "--port", min=1, max=65535, help="Port to listen on."),
    database_url: Optional[str] = DATABASE_URL,
    hq_url: Optional[str] = typer.Option(None, "--hq-url", envvar="KITCTL_HQ_URL",
                                         help="Public URL of this HQ, written into licences."),
    registry_url: Optional[str] = REGISTRY_URL,
) -> None:
    """Run the HQ API and fleet page (state, keys and SQLite database in --hq-dir)."""
    from hq.__main__ import serve as run
    from hq.settings import HQSettings
    from kitcore.errors import InvalidInput

    try:
        settings = HQSettings(dir=hq_dir_or_default(hq_dir), database_url=database_url, bind=f"{host}:{port}",
                              public_url=hq_url or f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}",
                              registry_url=registry_url or None)
    except ValueError as exc:
        raise InvalidInput(f"HQ settings: {str(exc).splitlines()[-1].strip()}") from None
    run(settings)


# -- licences ------------------------------------------------------------------

@licence_app.command("issue")
def licence_issue(
    site: str = typer.Option(..., "--site", help="Site id: lowercase letters, digits, '-'."),
    tier: str = typer.Option("basic", "--tier", help="basic, pro or flagship."),
    categories: str = typer.Option(..., "--categories", help="Comma-separated, e.g. game,phone."),
    days: int = typer.Option(365, "--days", help="Term in days."),
    features: Optional[str] = typer.Option(None, "--features", help="Comma-separated; default: the tier's."),
    regions: Optional[str] = typer.Option(None, "--regions", help="Comma-separated; default: CN."),
    licensee: Optional[str] = typer.Option(None, "--licensee", help="Who runs the site (the fleet page searches it)."),
    domain: Optional[str] = typer.Option(None, "--domain", help="The shop's host name, e.g. shop.example.cn."),
    hq_url: str = HQ_URL,
    registry_url: Optional[str] = REGISTRY_URL,
    database_url: Optional[str] = DATABASE_URL,
    hq_dir: Optional[Path] = HQ_DIR,
    as_json: bool = JSON,
) -> None:
    """Issue a licence recorded in HQ's database and print the token."""
    from hq import licences
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url, hq_url, registry_url) as hq:
        record = licences.issue(hq, _operator_name(), site, tier, _csv(categories) or [], days,
                                _csv(features), _csv(regions), licensee=licensee, domain=domain)
    if as_json:
        print_json(record)
    else:
        print(record["token"])


@features_app.command("list")
def features_list(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Every feature a licence may grant, and where it comes from."""
    from hq import features

    with local_hq(hq_dir, database_url) as hq:
        rows = features.listed(hq)
    _print_features("Licence features", rows, as_json)


@features_app.command("register")
def features_register(
    name: str = typer.Argument(..., help="The feature a third party's plugin names in its manifest."),
    description: str = typer.Option(..., "--description", help="What it unlocks (one line)."),
    vendor: str = typer.Option(..., "--vendor", help="Who ships the plugin."),
    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON,
) -> None:
    """Make a third party's feature grantable with `licence issue/upgrade --features`."""
    from hq import features

    with local_hq(hq_dir, database_url) as hq:
        row = features.register(hq, _operator_name(), name, description, vendor)
    _print_features("Registered", [row], as_json)


def _print_features(title: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    from rich.markup import escape

    from kitctl.console import print_json

    if as_json:
        print_json(rows)
        return
    _table(title, ["name", "source", "vendor", "description"],
           [[escape(str(r[c])) for c in ("name", "source", "vendor", "description")] for r in rows])


@licence_app.command("list")
def licence_list(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Every site's current licence."""
    from hq import licences

    with local_hq(hq_dir, database_url) as hq:
        _print_licences(licences.list_licences(hq), as_json)


def _reason_option(verb: str) -> Any:
    return typer.Option(..., "--reason", help=f"Why the licence is {verb}; the site shows it.")


@licence_app.command("revoke")
def licence_revoke(site: str, reason: str = _reason_option("revoked"), hq_dir: Optional[Path] = HQ_DIR,
                   database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Revoke a site's licence for good (403 on every call, registry access removed)."""
    from hq import licences

    _require_reason(reason)
    with local_hq(hq_dir, database_url) as hq:
        _print_licences([licences.revoke(hq, _operator_name(), site, reason)], as_json)


@licence_app.command("suspend")
def licence_suspend(site: str, reason: str = _reason_option("suspended"),
                    days: Optional[int] = typer.Option(None, "--days", help="Lift it automatically after N days "
                                                       "(1-3650); without it, until resumed."),
                    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                    as_json: bool = JSON) -> None:
    """Stop a site's orders until resumed, or for N days; the site sees the reason and the end date."""
    from hq import sanctions
    from kitcore.errors import InvalidInput

    _require_reason(reason)
    if days is not None and not 1 <= days <= sanctions.MAX_DAYS:
        raise InvalidInput(f"--days: must be between 1 and {sanctions.MAX_DAYS}")
    with local_hq(hq_dir, database_url) as hq:
        _print_licences([sanctions.suspend_for(hq, _operator_name(), site, reason, days)], as_json)


@licence_app.command("resume")
def licence_resume(site: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """Lift a suspension."""
    from hq import licences

    with local_hq(hq_dir, database_url) as hq:
        _print_licences([licences.resume(hq, _operator_name(), site)], as_json)


@licence_app.command("upgrade")
def licence_upgrade(
    site: str,
    tier: Optional[str] = typer.Option(None, "--tier", help="New tier."),
    categories: Optional[str] = typer.Option(None, "--categories", help="New categories, comma-separated."),
    features: Optional[str] = typer.Option(None, "--features", help="New features, comma-separated."),
    hq_dir: Optional[Path] = HQ_DIR,
    database_url: Optional[str] = DATABASE_URL,
    as_json: bool = JSON,
) -> None:
    """Re-issue the licence with a new tier, categories or features; the site gets it at its next heartbeat."""
    from hq import licences
    from kitcore.errors import InvalidInput

    if tier is None and categories is None and features is None:
        raise InvalidInput("nothing to upgrade: give --tier, --categories or --features")
    with local_hq(hq_dir, database_url) as hq:
        _print_licences([licences.upgrade(hq, _operator_name(), site, tier, _csv(categories), _csv(features))], as_json)


@licence_app.command("renew")
def licence_renew(site: str, days: int = typer.Option(365, "--days", min=1, max=3660, help="Days to add."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                  as_json: bool = JSON) -> None:
    """Extend the term; the site gets the new token at its next heartbeat."""
    from hq import licences

    with local_hq(hq_dir, database_url) as hq:
        _print_licences([licences.renew(hq, _operator_name(), site, days)], as_json)


def _require_reason(reason: str) -> None:
    from kitcore.errors import InvalidInput

    if not reason.strip() or len(reason) > 500 or any(ord(c) < 32 for c in reason):
        raise InvalidInput("--reason must be one line of 1-500 characters")


# -- operators -----------------------------------------------------------------

@operator_app.command("add")
def operator_add(name: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Create an operator and print its token once (HQ stores only a hash)."""
    from hq import operators
    from kitctl.console import err

    with local_hq(hq_dir, database_url) as hq:
        token = operators.add(hq, name, by=_operator_name())
    err().print(f"[green]created[/] operator [bold]{name}[/]; the token below is shown once, keep it safe")
    print(token)


@operator_app.command("list")
def operator_list(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """HQ operators (names only; tokens are never shown again)."""
    from hq import operators
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = operators.list_operators(hq)
    if as_json:
        print_json(rows)
    else:
        _table("Operators", ["name", "created", "disabled"], [[r["name"], r["created_at"], r["disabled"]] for r in rows])


@operator_app.command("disable")
def operator_disable(name: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Refuse an operator's token from now on and end their fleet-page sessions."""
    from hq import operators
    from kitctl.console import err

    with local_hq(hq_dir, database_url) as hq:
        ended = operators.disable(hq, name, by=_operator_name())
    err().print(f"[green]disabled[/] operator [bold]{name}[/]; {ended} session(s) ended")


@operator_app.command("rotate")
def operator_rotate(name: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Give an operator a new token (printed once); the old token and their sessions stop working."""
    from hq import operators
    from kitctl.console import err

    with local_hq(hq_dir, database_url) as hq:
        token = operators.rotate(hq, name, by=_operator_name())
    err().print(f"[green]rotated[/] operator [bold]{name}[/]; the new token below is shown once, keep it safe")
    print(token)


# -- catalog -------------------------------------------------------------------

@catalog_app.command("import")
def catalog_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="CSV: card keys (sku,serial,secret) or items (sku,name,category,face_value_cents,price_cents,...)."),
    hq_dir: Optional[Path] = HQ_DIR,
    database_url: Optional[str] = DATABASE_URL,
    as_json: bool = JSON,
) -> None:
    """Import card keys (encrypted at rest) or catalog items from a CSV file."""
    from hq import catalog_csv, inventory
    from kitctl.console import out, print_json
    from kitcore.errors import InvalidInput

    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text") from None
    with local_hq(hq_dir, database_url) as hq:
        if catalog_csv.is_card_key_csv(text):
            result = inventory.import_csv(hq, _operator_name(), text)
            message = f"imported {result['added']} card keys ({result['skipped']} already present)"
        else:
            result = catalog_csv.import_items(hq, _operator_name(), text)
            message = f"upserted {result['upserted']} catalog items"
    if as_json:
        print_json(result)
    else:
        out().print(f"[green]{message}[/]")


@catalog_app.command("list")
def catalog_list(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Catalog items with their stock of card keys."""
    from hq import catalog
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        items = catalog.list_items(hq)
    if as_json:
        print_json(items)
        return
    _table("Catalog", ["sku", "name", "category", "price", "kind", "stock", "status", "version"],
           [[i["sku"], i["name"], i["category"], f"{i['price_cents'] / 100:.2f}", i["stock_kind"], i["stock"],
             i["status"], i["version"]] for i in items])


@stock_app.command("list")
def stock_list(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Card-key SKUs with their stock, threshold (own or default) and state."""
    from hq import stock
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        levels = stock.listing(hq)
    if as_json:
        print_json(levels)
        return
    _table(f"Stock (default threshold {levels['default']})", ["sku", "stock", "threshold", "own", "state"],
           [[r["sku"], r["stock"], r["threshold"], r["own_threshold"], r["state"]] for r in levels["skus"]])


@stock_app.command("default")
def stock_default(threshold: int = typer.Argument(..., help="Warn below this many keys; 0: never."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Set the low-stock threshold of SKUs without their own."""
    from hq import stock
    from kitctl.console import out

    with local_hq(hq_dir, database_url) as hq:
        stock.set_default(hq, _operator_name(), threshold)
    out().print(f"default low-stock threshold: {threshold}")


@stock_app.command("threshold")
def stock_threshold(sku: str, threshold: Optional[int] = typer.Argument(None, help="Warn below this many keys; "
                                                                             "0: never; leave out with --default."),
                    use_default: bool = typer.Option(False, "--default", help="Go back to the default threshold."),
                    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Set one SKU's own low-stock threshold."""
    from hq import stock
    from kitctl.console import out
    from kitcore.errors import InvalidInput

    if (threshold is None) == (not use_default):
        raise InvalidInput("give a threshold or --default (not both)")
    with local_hq(hq_dir, database_url) as hq:
        stock.set_threshold(hq, _operator_name(), sku, threshold)
    out().print(f"{sku}: low-stock threshold {'default' if threshold is None else threshold}")


@complaints_app.command("list")
def complaints_list(status: Optional[str] = typer.Option(None, "--status", help="open or resolved."),
                    site: Optional[str] = typer.Option(None, "--site", help="Only this site."),
                    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                    as_json: bool = JSON) -> None:
    """Complaints, newest first (the order id and the buyer's words; no contact is kept)."""
    from hq import complaints
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = complaints.listing(hq, status, site)
    if as_json:
        print_json(rows)
        return
    _table("Complaints", ["id", "site", "order", "received", "status", "text"],
           [[r["id"], r["site"], r["order_id"], r["received_at"], r["status"], r["text"][:60]] for r in rows])


@complaints_app.command("resolve")
def complaints_resolve(complaint_id: int, resolution: str = typer.Option(..., "--resolution", help="What was done."),
                       hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Close an open complaint with what was done (audited complaint.resolved)."""
    from hq import complaints
    from kitctl.console import out

    with local_hq(hq_dir, database_url) as hq:
        done = complaints.resolve(hq, _operator_name(), complaint_id, resolution)
    out().print(f"complaint {done['id']} ({done['site']}, order {done['order_id']}): resolved")


@applications_app.command("list")
def applications_list(stage: Optional[str] = typer.Option(None, "--stage", help="Only this stage."),
                      hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                      as_json: bool = JSON) -> None:
    """Applications, those waiting for a decision first."""
    from hq import applications
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = applications.listing(hq, stage)
    if as_json:
        print_json(rows)
        return
    _table("Applications", ["number", "name", "tier", "categories", "stage", "next", "updated"],
           [[r["number"], r["name"], r["tier"], ",".join(r["categories"]), r["stage"], r["next"], r["updated_at"]]
            for r in rows])


@applications_app.command("show")
def applications_show(number: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                      as_json: bool = JSON) -> None:
    """One application: contact, materials, every stage change with who, when and why."""
    from hq import applications
    from kitctl.console import out, print_json

    with local_hq(hq_dir, database_url) as hq:
        app_ = applications.show(hq, number)
    if as_json:
        print_json(app_)
        return
    out().print(f"{app_['number']} {app_['name']} ({app_['applicant']}, {app_['email']}): {app_['stage']}"
                + (f", next {app_['next']}" if app_["next"] else ""))
    out().print(f"tier {app_['tier']}; categories {', '.join(app_['categories'])}; regions {', '.join(app_['regions'])}")
    if app_["reasons"]:
        out().print("reasons: " + "; ".join(app_["reasons"]))
    _table("Materials", ["id", "kind", "file", "type", "bytes", "expires"],
           [[m["id"], m["kind"], m["filename"], m["content_type"], m["size"], m["expires_on"]] for m in app_["materials"]])
    _table("Stage changes", ["at", "by", "from", "to", "why"],
           [[e["at"], e["by"], e["from"], e["to"], e["why"]] for e in app_["history"]])


@applications_app.command("decide")
def applications_decide(number: str, to: str = typer.Argument(..., help="contract_signed, base_fee_paid, "
                                                                         "licence_issued or rejected."),
                        why: str = typer.Option(..., "--why", help="Why (a rejection's reason is mailed)."),
                        site: Optional[str] = typer.Option(None, "--site", help="licence_issued: the site id."),
                        days: int = typer.Option(365, "--days", help="licence_issued: the term in days."),
                        hq_url: str = HQ_URL, registry_url: Optional[str] = REGISTRY_URL,
                        hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                        as_json: bool = JSON) -> None:
    """Move an application to its next stage, or reject it; licence_issued issues the licence and mails it."""
    from hq import applications
    from kitctl.console import out, print_json

    with local_hq(hq_dir, database_url, hq_url, registry_url) as hq:
        done = applications.decide(hq, _operator_name(), number, to.replace("-", "_"), why, site, days)
    if as_json:
        print_json({k: v for k, v in done.items() if k != "install_command"})
        return
    out().print(f"{number}: {done['stage']}" + (f"; licence {done['jti']} issued for site {done['site']}, "
                                                 "install command mailed to the applicant" if done.get("jti") else ""))


PERIOD = typer.Option(None, "--period", help="A month, YYYY-MM (default: this one).")


@grades_app.callback(invoke_without_command=True)
def grades_list(ctx: typer.Context, period: Optional[str] = PERIOD, as_csv: bool = typer.Option(False, "--csv"),
                hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """The sites ranked by grade for a month, with trend and suggestion."""
    if ctx.invoked_subcommand is not None:
        return
    from hq import grades
    from kitctl.console import out, print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = grades.ranking(hq, period)
    if as_csv:
        out().file.write(grades.to_csv(rows))
        return
    if as_json:
        print_json(rows)
        return
    _table(f"Grades {rows[0]['period'] if rows else period or ''}", ["#", "site", "tier", "grade", "score", "trend",
                                                                      "suggestion"],
           [[r["rank"], r["site"], r["tier"], r["grade"], f"{r['score']:.1f}", " > ".join(r["trend"]),
             r["suggestion"]["action"] if r["suggestion"] else ""] for r in rows])


@grades_app.command("act")
def grades_act(site: str, period: Optional[str] = PERIOD, hq_dir: Optional[Path] = HQ_DIR,
               database_url: Optional[str] = DATABASE_URL) -> None:
    """Carry out the site's suggestion (upgrade, warn, timed suspension), as it stands now."""
    from hq import grades
    from kitctl.console import out

    with local_hq(hq_dir, database_url) as hq:
        done = grades.act(hq, _operator_name(), site, period)
    out().print(f"{site}: {done['done']['action']} done (grade {done['grade']} for {done['period']})")


@grades_app.command("config")
def grades_config(file: Optional[Path] = typer.Argument(None, help="A JSON file to replace the configuration with."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Print the grading configuration, or replace it from a JSON file."""
    import json

    from hq import grades
    from kitctl.console import print_json
    from kitcore.errors import InvalidInput

    with local_hq(hq_dir, database_url) as hq:
        if file is None:
            print_json(grades.config(hq).model_dump())
            return
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{file}: not a readable JSON file ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{file}: the configuration is a JSON object")
        print_json(grades.set_config(hq, _operator_name(), data).model_dump())


# -- reviews -------------------------------------------------------------------

@reviews_app.callback(invoke_without_command=True)
def reviews_list(ctx: typer.Context, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                 as_json: bool = JSON) -> None:
    """List orders waiting for review (`kitctl hq reviews resolve ID approve|reject` decides one)."""
    if ctx.invoked_subcommand is not None:
        return
    from hq import reviews
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = reviews.queue(hq)
    if as_json:
        print_json(rows)
        return
    _table("Review queue", ["hq order", "site", "order", "sku×qty", "amount", "buyer", "reasons"],
           [[r["hq_order_id"], r["site"], r["order_id"], f"{r['sku']}×{r['quantity']}", f"{r['amount_cents'] / 100:.2f}",
             r["buyer"]["account"] or r["buyer"]["contact"], ", ".join(r["reasons"])] for r in rows])


@reviews_app.command("resolve")
def reviews_resolve(hq_order_id: str, decision: str = typer.Argument(..., help="approve or reject"),
                    note: Optional[str] = typer.Option(None, "--note", help="Kept in the audit log."),
                    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                    as_json: bool = JSON) -> None:
    """Approve (deliver card keys now) or reject an order under review."""
    from hq import reviews
    from kitctl.console import out, print_json
    from kitcore.errors import InvalidInput

    if decision not in ("approve", "reject"):
        raise InvalidInput("decision must be 'approve' or 'reject'")
    with local_hq(hq_dir, database_url) as hq:
        result = reviews.resolve(hq, _operator_name(), hq_order_id, decision, note)
    if as_json:
        print_json(result)
    else:
        out().print(f"order {result['order_id']} of {result['site']}: [bold]{result['status']}[/]")


# -- payments ------------------------------------------------------------------

@payments_app.command("enable")
def payments_enable(gateway: str = typer.Argument(..., help="Gateway plugin name: epay, alipay or wechat."),
                    credentials: Path = typer.Option(..., "--credentials", help="JSON file of the gateway's "
                                                     "credentials (epay: api_url, pid, key; alipay: app_id; wechat: "
                                                     "mchid, appid, cert_serial_no); sealed at HQ, never printed."),
                    private_key: Optional[Path] = typer.Option(None, "--private-key", help="PEM file: the app's "
                                                               "(Alipay) or the merchant API (WeChat Pay) private key."),
                    public_key: Optional[Path] = typer.Option(None, "--public-key", help="PEM file: Alipay's public "
                                                              "key, or WeChat Pay's platform certificate / public key."),
                    apiv3_key: Optional[Path] = typer.Option(None, "--apiv3-key", help="File holding the WeChat Pay "
                                                             "APIv3 key (32 characters)."),
                    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Store a gateway's credentials (sealed) and make it the gateway approved orders are paid through."""
    from hq.payments import config
    from kitctl.console import out

    creds = {**config.read_credentials(credentials),
             **config.read_key_files({"private_key": private_key, "public_key": public_key, "apiv3_key": apiv3_key})}
    with local_hq(hq_dir, database_url) as hq:
        config.configure(hq, _operator_name(), gateway, creds, enable=True)
    out().print(f"payment gateway [bold]{gateway}[/] enabled: approved orders now wait for payment")


@payments_app.command("disable")
def payments_disable(gateway: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Stop opening payments at a gateway (its late notifications still verify)."""
    from hq.payments import config
    from kitctl.console import out

    with local_hq(hq_dir, database_url) as hq:
        config.disable(hq, _operator_name(), gateway)
    out().print(f"payment gateway [bold]{gateway}[/] disabled")


@payments_app.command("list")
def payments_list(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                  as_json: bool = JSON) -> None:
    """The configured gateways (never their credentials)."""
    from hq.payments import config
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = config.listing(hq)
    if as_json:
        print_json(rows)
    else:
        _table("payment gateways", ["name", "enabled", "updated", "by"],
               [[r["name"], "yes" if r["enabled"] else "no", r["updated_at"], r["updated_by"]] for r in rows])


@payments_app.command("test")
def payments_test(gateway: str = typer.Argument(..., help="A configured gateway, e.g. epay."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Reach a gateway with its stored credentials; nothing changes there (exit 1 if it fails; audited)."""
    from hq.payments import config
    from hq.payments.contract import GatewayError
    from kitctl.console import out

    with local_hq(hq_dir, database_url) as hq:
        try:
            line = config.test(hq, _operator_name(), gateway)
        except GatewayError as exc:
            out().print(f"[red]{gateway}: failed[/]: {exc}", markup=True, highlight=False)
            raise typer.Exit(1) from None
    out().print(f"[green]{gateway}: ok[/] — {line}", highlight=False)


@payments_app.command("refund")
def payments_refund(hq_order_id: str, reason: str = typer.Option(..., "--reason", help="Why (one line; audited)."),
                    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                    as_json: bool = JSON) -> None:
    """Refund an order's payment through its gateway (the ledger entry is reversed, the audit log says who)."""
    from hq.payments import refunds
    from kitctl.console import out, print_json

    with local_hq(hq_dir, database_url) as hq:
        result = refunds.refund(hq, _operator_name(), hq_order_id, reason)
    if as_json:
        print_json(result)
    else:
        out().print(f"order {result['hq_order_id']}: [bold]refunded[/] {result['amount_cents'] / 100:.2f} "
                    f"{result['currency']}")


@payments_app.command("reconcile")
def payments_reconcile(day: str = typer.Option(..., "--day", help="The UTC day YYYY-MM-DD (ended over an hour ago)."),
                       gateway: Optional[str] = typer.Option(None, "--gateway", help="Only this gateway "
                                                             "(default: every configured one)."),
                       hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                       as_json: bool = JSON) -> None:
    """Compare each gateway's books for a day with HQ's payments; every difference listed (exit 1 if any)."""
    from hq.payments import reconcile
    from kitctl.console import out, print_json

    when = _day(day, "--day")
    with local_hq(hq_dir, database_url) as hq:
        results = reconcile.run(hq, when, _operator_name(), gateway)
    if as_json:
        print_json(results)
    else:
        for r in results:
            out().print(f"{r['gateway']} {r['day']}: [bold]{r['status']}[/] — gateway {r['gateway_paid']} paid "
                        f"({_yuan(r['gateway_paid_cents'])}), HQ {r['hq_paid']} paid ({_yuan(r['hq_paid_cents'])})"
                        + (f"; {r['error']}" if r["error"] else ""))
            for d in r["differences"]:
                out().print(f"  {d['kind']} {d['out_trade_no']} order {d['hq_order_id'] or '-'}: gateway "
                            f"{_fen(d['gateway_cents'])}, HQ {_fen(d['hq_cents'])} ({d['detail']})")
    if any(r["status"] != "matched" for r in results):
        raise typer.Exit(1)


def _fen(cents: Optional[int]) -> str:
    return "-" if cents is None else _yuan(cents)


# -- settlement ----------------------------------------------------------------

def _day(text: Optional[str], name: str) -> Any:
    from datetime import date

    from kitcore.errors import InvalidInput

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a date YYYY-MM-DD, not {text!r}") from None


def _settle(hq_dir: Optional[Path], database_url: Optional[str], as_json: bool, call: "Callable[[HQ], Any]",
            line: "Callable[[Any], str]") -> None:
    """Run one settlement function on the local HQ; print its record (JSON) or one line about it."""
    from kitctl.console import out, print_json

    with local_hq(hq_dir, database_url) as hq:
        record = call(hq)
    if as_json:
        print_json(record)
    else:
        out().print(line(record))


def _print_statements(rows: list[dict[str, Any]], as_json: bool) -> None:
    from kitctl.console import print_json

    if as_json:
        print_json(rows)
        return
    _table("Statements", ["id", "site", "period", "opening", "closing", "answer"],
           [[r["id"], r["site"], f"{r['period_start']} {r['cadence']}", _yuan(r["totals"]["opening"]),
             _yuan(r["totals"]["closing"]), r["response"] or ""] for r in rows])


def _yuan(fen: int) -> str:
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


CADENCE = typer.Option(None, "--cadence", help="weekly (Monday to Monday) or monthly (default: the site's own, "
                       "see `settle cadence`).")


@settle_app.command("issue")
def settle_issue(site: str, cadence: Optional[str] = CADENCE,
                 day: Optional[str] = typer.Option(None, "--day", help="Any day of the period (default: the last "
                                                   "period that has ended)."),
                 hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Issue a site's statement for an ended week or month; issuing it again gives the same statement."""
    from hq.ledger import statements

    when = _day(day, "--day")
    if cadence is not None and cadence not in statements.CADENCES:  # refused before HQ is opened
        from kitcore.errors import InvalidInput

        raise InvalidInput(f"cadence must be one of: {', '.join(statements.CADENCES)}")
    with local_hq(hq_dir, database_url) as hq:
        _print_statements([statements.issue(hq, _operator_name(), site, cadence, when)], as_json)


@settle_app.command("cadence")
def settle_cadence(site: str, cadence: str = typer.Argument(..., help="weekly or monthly."),
                   hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """Set the period a site's statements cover from now on (statements already issued keep theirs)."""
    from hq.ledger import statements

    _settle(hq_dir, database_url, as_json,
            lambda hq: statements.set_cadence(hq, _operator_name(), site, cadence),
            lambda r: f"site {r['site']}: statements are {r['cadence']} from now on")


@settle_app.command("list")
def settle_list(site: Optional[str] = typer.Option(None, "--site", help="Only this site's."),
                hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Issued statements, newest first."""
    from hq.ledger import statements

    with local_hq(hq_dir, database_url) as hq:
        _print_statements(statements.list_statements(hq, site), as_json)


@settle_app.command("show")
def settle_show(statement_id: int, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                as_json: bool = JSON) -> None:
    """One statement's figures and the site's answer."""
    from hq.ledger import statements

    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        record = statements.get(hq, statement_id)
    if as_json:
        print_json(record)
        return
    _table(f"Statement {record['id']}: {record['site']}, {record['period_start']}..{record['period_end']} "
           f"({record['cadence']}), yuan", ["", "amount"], [[k, _yuan(v)] for k, v in record["totals"].items()])
    for key in ("response", "comment", "resolution"):
        if record[key]:
            print(f"{key}: {record[key]}")


@settle_app.command("export")
def settle_export(statement_id: int,
                  output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
                  pdf: bool = typer.Option(False, "--pdf", help="The PDF rendering instead of the CSV."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Write a statement as CSV (or PDF); refuses if it no longer matches what was issued."""
    import sys

    from hq.ledger import statements

    with local_hq(hq_dir, database_url) as hq:
        def write(handle: Any) -> None:
            if pdf:
                handle.write(statements.pdf_bytes(hq, statement_id))
            else:
                statements.export(hq, statement_id, handle)

        if output is None:
            write(sys.stdout.buffer)
            return
        partial = output.with_name(output.name + ".partial")
        try:
            with partial.open("wb") as handle:
                write(handle)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)


@settle_app.command("resolve")
def settle_resolve(statement_id: int, note: str = typer.Option(..., "--note", help="What HQ decided (one line)."),
                   fen: int = typer.Option(0, "--fen", help="Adjustment posted now: + credits the site, - debits it."),
                   hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """Resolve a disputed statement, with an adjustment if needed."""
    from hq.ledger import statements

    with local_hq(hq_dir, database_url) as hq:
        _print_statements([statements.resolve(hq, _operator_name(), statement_id, note, fen or None)], as_json)


@settle_app.command("refund")
def settle_refund(hq_order_id: str, reason: str = typer.Option(..., "--reason", help="Why (one line)."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                  as_json: bool = JSON) -> None:
    """Reverse a paid order in the ledger (a refund or a cancellation after payment)."""
    from hq.ledger import events

    _settle(hq_dir, database_url, as_json, lambda hq: events.refund(hq, _operator_name(), hq_order_id, reason),
            lambda e: f"refunded {hq_order_id}: {_yuan(e['site_fen'])} to site {e['site']}")


@settle_app.command("base-fee")
def settle_base_fee(site: str, year: int = typer.Option(..., "--year", help="The licence year charged."),
                    hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                    as_json: bool = JSON) -> None:
    """Charge a site's annual base fee at its tier's rate (once per year)."""
    from hq.ledger import events

    _settle(hq_dir, database_url, as_json, lambda hq: events.base_fee(hq, _operator_name(), site, year),
            lambda e: f"charged {site} the {year} base fee: {_yuan(-e['site_fen'])}")


@settle_app.command("adjust")
def settle_adjust(site: str, fen: int = typer.Option(..., "--fen", help="+ credits the site, - debits it."),
                  reason: str = typer.Option(..., "--reason", help="Why (one line); the site sees it."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                  as_json: bool = JSON) -> None:
    """Post an operator's correction to a site's account."""
    from hq.ledger import events

    _settle(hq_dir, database_url, as_json, lambda hq: events.adjust(hq, _operator_name(), site, fen, reason),
            lambda e: f"adjusted {site} by {_yuan(e['site_fen'])} (entry {e['id']})")


@settle_app.command("reverse")
def settle_reverse(entry_id: int, reason: str = typer.Option(..., "--reason", help="Why (one line)."),
                   hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """Reverse a base fee or an adjustment posted by mistake."""
    from hq.ledger import events

    _settle(hq_dir, database_url, as_json, lambda hq: events.reverse(hq, _operator_name(), entry_id, reason),
            lambda e: f"reversed entry {entry_id} (entry {e['id']})")


@settle_app.command("rate")
def settle_rate(kind: str = typer.Argument(..., help="share_bps, base_fee, min_payout or payout_fee."),
                value: int = typer.Argument(..., help="Basis points for share_bps, fen for the others."),
                start: str = typer.Option(..., "--from", help="First day it applies (after today, UTC)."),
                tier: Optional[str] = typer.Option(None, "--tier"), category: Optional[str] = typer.Option(None, "--category"),
                hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Set a rate from a future day; what is already posted never changes."""
    from hq.ledger import rates

    day = _day(start, "--from")
    _settle(hq_dir, database_url, as_json,
            lambda hq: rates.set_rate(hq, _operator_name(), kind, value, day, tier, category),
            lambda r: f"{kind} = {value} from {r['effective_from']}")


@settle_app.command("rates")
def settle_rates(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Every rate set, with the day it applies from (defaults apply where none is set)."""
    from hq.ledger import rates
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = rates.list_rates(hq)
    if as_json:
        print_json(rows)
        return
    _table("Rates", ["kind", "tier", "category", "value", "from", "set by"],
           [[r["kind"], r["tier"] or "any", r["category"] or "any", r["value"], r["effective_from"], r["created_by"]]
            for r in rows])


@settle_app.command("balance")
def settle_balance(site: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """What HQ owes a site, what payouts hold, what it may withdraw."""
    from hq.ledger import payouts

    _settle(hq_dir, database_url, as_json, lambda hq: payouts.balance(hq, site),
            lambda b: f"{site}: balance {_yuan(b['balance_fen'])}, waiting payouts {_yuan(b['pending_fen'])}, "
                      f"available {_yuan(b['available_fen'])}")


@settle_app.command("payouts")
def settle_payouts(site: Optional[str] = typer.Option(None, "--site"),
                   status: Optional[str] = typer.Option(None, "--status", help="requested, approved or rejected."),
                   hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Payouts, newest first."""
    from hq.ledger import payouts
    from kitctl.console import print_json

    with local_hq(hq_dir, database_url) as hq:
        rows = payouts.list_payouts(hq, site, status)
    if as_json:
        print_json(rows)
        return
    _table("Payouts", ["id", "site", "amount", "fee", "status", "requested", "transfer ref"],
           [[r["id"], r["site"], _yuan(r["amount_fen"]), _yuan(r["fee_fen"]), r["status"], r["requested_at"],
             r["transfer_ref"]] for r in rows])


@settle_app.command("approve")
def settle_approve(payout_id: int, ref: str = typer.Option(..., "--ref", help="The transfer's bank reference."),
                   hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """Record that a requested payout was transferred (posts it to the ledger)."""
    from hq.ledger import payouts

    _settle(hq_dir, database_url, as_json, lambda hq: payouts.approve(hq, _operator_name(), payout_id, ref),
            lambda p: f"payout {payout_id} to {p['site']}: approved, {_yuan(p['amount_fen'])} ({ref})")


@settle_app.command("reject")
def settle_reject(payout_id: int, reason: str = typer.Option(..., "--reason", help="Why (one line)."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                  as_json: bool = JSON) -> None:
    """Refuse a requested payout; its amount is available again."""
    from hq.ledger import payouts

    _settle(hq_dir, database_url, as_json, lambda hq: payouts.reject(hq, _operator_name(), payout_id, reason),
            lambda p: f"payout {payout_id} to {p['site']}: rejected")


@settle_app.command("check")
def settle_check(hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL) -> None:
    """Prove debits equal credits, over the ledger and entry by entry (exit 1 if not)."""
    from hq.ledger import accounts
    from kitctl.console import out

    with local_hq(hq_dir, database_url) as hq, hq.read() as conn:
        trial = accounts.trial_balance(conn)
    if not trial.balanced:
        out().print(f"[red]unbalanced[/]: debits {trial.debits}, credits {trial.credits}, "
                    f"entries {list(trial.unbalanced_entries)}")
        raise typer.Exit(1)
    out().print(f"[green]balanced[/]: debits = credits = {_yuan(trial.debits)}")


# -- exit export -----------------------------------------------------------------

@app.command("export")
def hq_export(site: str = typer.Option(..., "--site", help="The site whose records HQ exports."),
              out_file: Path = typer.Option(..., "--out", help="The archive to write (a new .tar file)."),
              hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
              as_json: bool = JSON) -> None:
    """HQ's side of a site's exit export: orders, statements, ledger, payouts, licences, allowed catalog (docs/settlement.md)."""
    import os

    from hq import exit_export
    from kitcore.errors import InvalidInput
    from kitctl.console import out, print_json

    target = out_file.expanduser()
    if target.exists() or target.is_symlink():
        raise InvalidInput(f"{target} exists: choose a new file")
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent} does not exist")
    partial = target.with_name(target.name + ".partial")
    if partial.exists() or partial.is_symlink():
        raise InvalidInput(f"{partial} exists (left by an earlier export?): remove it or choose another file")
    with local_hq(hq_dir, database_url) as hq:
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                written = exit_export.write_archive(hq, site, handle)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    files = {w.name: {"rows": w.rows, "bytes": w.size, "sha256": w.sha256} for w in written}
    if as_json:
        print_json({"site": site, "archive": str(target), "files": files})
    else:
        out().print(f"[green]exported[/] {site}: {len(files)} files into {target} (checked by its SHA256SUMS)")


# -- rollouts ------------------------------------------------------------------

def _rings(text: str) -> list[int]:
    """`0,1,2` → [0, 1, 2]; a one-line error for anything else."""
    from kitcore.errors import InvalidInput

    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p.isascii() or not p.isdigit() or len(p) > 2 for p in parts):
        raise InvalidInput(f"--rings {text[:40]!r}: ring numbers separated by commas, e.g. 0,1")
    return [int(p) for p in parts]


def _print_rollout(record: dict[str, Any], as_json: bool) -> None:
    from kitctl.console import out, print_json

    if as_json:
        print_json(record)
        return
    ring = f", at ring {record['current_ring']}" if record["current_ring"] is not None else ""
    reason = f": {record['reason']}" if record["reason"] else ""
    out().print(f"rollout {record['id']} of {record['version']} to rings {','.join(map(str, record['rings']))}: "
                f"{record['state']}{ring}{reason}")
    for label, key in (("opted out (skipped)", "opted_out"), ("waiting for window", "waiting_for_window")):
        if record[key]:
            out().print(f"{label}: {len(record[key])}: {', '.join(record[key][:20])}"
                        f"{' …' if len(record[key]) > 20 else ''}")
    _table("Sites", ["site", "ring", "state", "detail", "window", "rollback"],
           [[s["site"], s["ring"], "waiting for window" if s["state"] == "scheduled" else s["state"], s["detail"],
             s["window"] or "any time",
             f"{s['rollback']} → {s['previous']}" + (f": {s['rollback_detail']}" if s["rollback_detail"] else "")
             if s["rollback"] else ""] for s in record["sites"]])


@rollout_app.command("start")
def rollout_start(version: str = typer.Argument(..., help="Kit version (image tag) to move the sites to."),
                  rings: str = typer.Option("0,1", "--rings", help="Rings in the order they go, canary first."),
                  soak: int = typer.Option(600, "--soak", help="Seconds a ring runs the version before the next "
                                           "ring starts (0-604800)."),
                  hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                  as_json: bool = JSON) -> None:
    """Send the sites of the first ring a signed upgrade; the next ring follows once it upgraded and soaked."""
    from hq import rollouts

    ring_list = _rings(rings)
    with local_hq(hq_dir, database_url) as hq:
        _print_rollout(rollouts.start(hq, _operator_name(), version, ring_list, soak), as_json)


@rollout_app.command("status")
def rollout_status(rollout_id: Optional[str] = typer.Argument(None, help="A rollout's id (default: the newest)."),
                   hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """A rollout's state and each site's: waiting, sent, upgraded or failed."""
    from hq import rollouts

    with local_hq(hq_dir, database_url) as hq:
        _print_rollout(rollouts.status(hq, _uuid_arg(rollout_id)), as_json)


@rollout_app.command("halt")
def rollout_halt(rollout_id: str, reason: str = typer.Option(..., "--reason", help="Why it stops (kept in the audit log)."),
                 hq_dir: Optional[Path] = HQ_DIR,
                 database_url: Optional[str] = DATABASE_URL, as_json: bool = JSON) -> None:
    """Stop a running rollout where it is: no further ring gets the version."""
    from hq import rollouts

    _require_reason(reason)
    with local_hq(hq_dir, database_url) as hq:
        _print_rollout(rollouts.halt(hq, _operator_name(), str(_uuid_arg(rollout_id)), reason), as_json)


@rollout_app.command("resume")
def rollout_resume(rollout_id: str, hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                   as_json: bool = JSON) -> None:
    """Go on with a halted rollout from its ring; that ring's failed sites are sent the version again."""
    from hq import rollouts

    with local_hq(hq_dir, database_url) as hq:
        _print_rollout(rollouts.resume(hq, _operator_name(), str(_uuid_arg(rollout_id))), as_json)


@rollout_app.command("rollback")
def rollout_rollback(rollout_id: str,
                     reason: str = typer.Option(..., "--reason", help="Why it goes back (kept in the audit log)."),
                     hq_dir: Optional[Path] = HQ_DIR, database_url: Optional[str] = DATABASE_URL,
                     as_json: bool = JSON) -> None:
    """Halt the rollout and send each site that rolled forward in it back to the version it ran before."""
    from hq import rollouts

    _require_reason(reason)
    with local_hq(hq_dir, database_url) as hq:
        _print_rollout(rollouts.rollback(hq, _operator_name(), str(_uuid_arg(rollout_id)), reason), as_json)


def _uuid_arg(value: Optional[str]) -> Optional[str]:
    import re

    from kitcore.errors import InvalidInput

    if value is not None and not re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", value):
        raise InvalidInput(f"{value[:40]!r} is not a rollout id")
    return value


# -- HQ on an orchestrator (docs/scale-out.md) ----------------------------------

def _settings_pairs(values: Optional[list[str]]) -> tuple[tuple[str, str], ...]:
    """`--setting heartbeat_interval_seconds=5` → ((name, value),); names checked against HQ's settings."""
    from hq.settings import HQSettings
    from kitcore.errors import InvalidInput

    pairs = []
    for raw in values or []:
        name, sep, value = raw.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep or name not in HQSettings.model_fields or name in ("dir", "database_url", "bind", "migrate"):
            raise InvalidInput(f"--setting {raw!r}: NAME=VALUE with NAME one of HQ's settings (not dir, database_url, "
                               "bind or migrate, which the deployment sets)")
        pairs.append((name, value))
    return tuple(pairs)


@app.command("deploy")
def deploy(
    orchestrator: str = typer.Option(..., "--orchestrator", help="swarm: HQ's instances as one Swarm service."),
    database_url: str = typer.Option(..., "--database-url", envvar="KIT_HQ_DATABASE_URL",
                                     help="The PostgreSQL database the instances share (their only shared state)."),
    replicas: int = typer.Option(2, "--replicas", help="HQ instances (1-32)."),
    hq_dir: Optional[Path] = HQ_DIR,
    name: str = typer.Option("kitctl-hq", "--name", help="Service name: the name sites reach HQ by on the network."),
    network: str = typer.Option("kitctl-hq", "--network", help="Attachable overlay network (sites: --hq-network)."),
    hq_url: Optional[str] = typer.Option(None, "--hq-url", help="Public URL written into licences "
                                         "(default http://NAME:8600)."),
    publish: Optional[int] = typer.Option(None, "--publish", min=1, max=65535,
                                          help="Publish this host-mode port (one instance per node)."),
    image: Optional[str] = typer.Option(None, "--image", help="HQ image (default kitctl/hq:<kit version>)."),
    setting: Optional[list[str]] = typer.Option(None, "--setting", help="Further HQ setting NAME=VALUE (repeatable)."),
    docker_host: Optional[str] = typer.Option(None, "--docker-host", envvar="KITCTL_DOCKER_HOST",
                                              help="A Swarm manager: unix:///… or ssh://user@host[:port]."),
    timeout: float = typer.Option(180.0, "--timeout", help="Longest wait, in seconds, for the instances to turn healthy."),
) -> None:
    """Run HQ as N instances on an orchestrator: migrated once, rolled over start-first, health-gated."""
    from kitcore import __version__
    from kitcore.errors import InvalidInput
    from kitctl.deploy.swarm.hq_deploy import hq_deploy
    from kitctl.deploy.swarm.hq_stack import HqSwarmOptions
    from kitctl.engine import connect

    if orchestrator != "swarm":
        raise InvalidInput("--orchestrator must be swarm (on one engine run `kitctl hq serve` or the kitctl/hq image)")
    options = HqSwarmOptions(hq_dir=hq_dir_or_default(hq_dir), database_url=database_url,
                             image=image or f"kitctl/hq:{__version__}", replicas=replicas, name=name, network=network,
                             public_url=hq_url, publish=publish, settings=_settings_pairs(setting)).checked()
    done = hq_deploy(connect(docker_host).api, options, timeout, lambda line: typer.echo(line))
    if not done.changed:
        typer.echo(f"nothing to do: {name} runs this spec")
    else:
        typer.echo(f"hq deploy done: {name}, {replicas} instances healthy in {done.seconds:.1f}s "
                   f"(network {network}; sites join it with --hq-network {network})")


@app.command("undeploy")
def undeploy(
    orchestrator: str = typer.Option(..., "--orchestrator", help="swarm"),
    name: str = typer.Option("kitctl-hq", "--name", help="The deployment's service name."),
    docker_host: Optional[str] = typer.Option(None, "--docker-host", envvar="KITCTL_DOCKER_HOST"),
) -> None:
    """Remove an HQ deployment's services, secrets and the network it made (the database is left alone)."""
    from kitcore.errors import InvalidInput
    from kitctl.deploy.swarm.hq_deploy import hq_remove
    from kitctl.engine import connect

    if orchestrator != "swarm":
        raise InvalidInput("--orchestrator must be swarm")
    for line in hq_remove(connect(docker_host).api, name) or [f"nothing to remove: no HQ deployment {name}"]:
        typer.echo(line)
