"""Licence-gated extensions of the kit: the contract, the host, the built-ins.

Third parties implement `plugins.contract.Plugin` in their own package and
register it under the entry-point group `kitctl.plugins`; the storefront, the
agent and kitctl load plugins only through `plugins.host.PluginHost`.
Nothing heavy is imported here.
"""

ENTRY_POINT_GROUP = "kitctl.plugins"
