"""kitctl: deploy and operate licensed, branded sub-sites of an HQ platform.

Kept import-free so that `kitctl --version` and `--help` start fast; every
heavy dependency is imported inside the command that needs it.
"""

__version__ = "0.1.0"
