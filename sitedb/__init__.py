"""The site database: where the storefront and the agent meet.

They never call each other. The storefront writes orders (the outbox) and
reads the catalog; the agent upserts the catalog, forwards pending orders to
HQ and writes decisions back. Schema changes go through Alembic migrations.
"""
