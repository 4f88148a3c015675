"""HQ watches its fleet: a site gone silent, an unhealthy database, a stale sync, an outbox backlog."""

from __future__ import annotations

KINDS = ("silent", "db_unhealthy", "sync_stale", "outbox_backlog")
