"""The sub-site web app buyers visit, and its owner's small admin.

It shares the site database with the agent and never calls HQ: checkout
writes an order row (the outbox) and the order page shows what the agent
later records in it.
"""

__all__ = ["create_app"]


def create_app(settings=None):  # type: ignore[no-untyped-def]
    """Build the ASGI app (imported lazily so `import storefront` stays cheap)."""
    from storefront.app import create_app as _create

    return _create(settings)
