"""kitctl: deploy and operate licensed, branded sub-sites of an HQ platform.

Kept import-free (but for the kernel's version string) so that `kitctl
--version` and `--help` start fast; every heavy dependency is imported inside
the command that needs it.
"""

from kitcore import __version__

__all__ = ["__version__"]
