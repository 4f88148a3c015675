"""`python -m storefront` serves the shop on KIT_BIND; `python -m storefront create-admin NAME` makes a staff account."""

from __future__ import annotations

import sys


IF_NO_ADMIN = "--if-no-admin"  # kitctl up: create NAME only when the database has no admin at all


def _create_admin(args: list[str]) -> int:
    from storefront.admin_users import ROLES, AdminUserError, create_admin, create_first_admin
    from storefront.settings import StorefrontSettings

    first = IF_NO_ADMIN in args
    args = [a for a in args if a != IF_NO_ADMIN]
    if not args or len(args) > 2 or (len(args) == 2 and (args[1] not in ROLES or first)):
        print(f"usage: python -m storefront create-admin NAME [{'|'.join(ROLES)}] | NAME {IF_NO_ADMIN}", file=sys.stderr)
        return 2
    try:
        url = StorefrontSettings().resolved_database_url()
        if first:
            password = create_first_admin(url, args[0])
        else:
            password = create_admin(url, args[0], role=args[1] if len(args) == 2 else "admin")
    except (AdminUserError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if password is not None:  # nothing printed: the database already has an admin
        print(password)
    return 0


def _serve() -> int:
    import logging

    from pydantic import ValidationError

    from kitcore.serving import serve_asgi

    from storefront.settings import StorefrontSettings

    try:
        settings = StorefrontSettings()
        host, port = settings.host_port()
    except ValidationError as exc:
        print(f"error: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from storefront.app import served_app, shop_of

    try:
        app = served_app(settings)
        if settings.metrics_bind:
            from storefront.metrics import serve_metrics

            serve_metrics(shop_of(app).metrics, settings.metrics_bind)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve_asgi(app, host, port, proxy_headers=False,  # storefront.forwarded decides whom to believe
                      log_level=settings.log_level, access_log=False, server_header=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "create-admin":
        return _create_admin(argv[1:])
    if argv and argv[0] == "staff":  # `kitctl admin …` on the host runs this inside the container
        from storefront.staff_cli import main as staff

        return staff(argv[1:])
    if argv and argv[0] == "export":  # `kitctl export` on the host runs this inside the container
        from storefront.exporting import main as export

        return export(argv[1:])
    if argv and argv[0] == "plugin-admin":  # `kitctl plugins admin …` on the host runs this inside the container
        from storefront.plugin_actions import main as plugin_admin

        return plugin_admin(argv[1:])
    if argv and argv[0] not in ("serve",):
        print("usage: python -m storefront [serve | create-admin NAME [ROLE] | staff … | plugin-admin NAME ACTION [JSON] | export]", file=sys.stderr)
        return 2
    return _serve()


if __name__ == "__main__":
    sys.exit(main())
