"""Errors that carry a one-line message meant for a person.

Anything raised as `InvalidInput` is shown as `error: <message>` and the CLI
exits with code 2; nothing else about the failure (no traceback) is printed.
"""


class KitError(Exception):
    """A failure with a message a person can act on (exit code 1)."""

    exit_code = 1


class InvalidInput(KitError):
    """Input from a person or a peer was refused; nothing was changed."""

    exit_code = 2


class LicenceError(InvalidInput):
    """A licence token (or a signed HQ command) did not verify."""
