"""The on-host agent: keeps a sub-site in step with HQ.

It syncs the catalog, forwards the storefront's pending orders to HQ's risk
engine, applies HQ's signed commands and exposes Prometheus metrics. It never
talks to the storefront: both meet in the site database.
"""

from kitcore import __version__ as VERSION

__all__ = ["VERSION"]
