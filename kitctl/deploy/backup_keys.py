"""Backups encrypted to age recipients (pyrage): keys, and the encrypt/decrypt of archive files.

A backup holds the site key, which unseals every delivered card key and buyer
contact, so it is written for a recipient's public key: whoever holds the file
alone reads nothing. The identity (the secret half) is a file of mode 0600 in
age's own format (`age-keygen` writes the same), so `age -d -i FILE` opens a
backup too. Its secret line is never printed; only the public recipient is.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Sequence

from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from pyrage import x25519

BINARY_MAGIC = b"age-encryption.org/v1\n"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
IDENTITY_ENV = "KITCTL_BACKUP_IDENTITY"


def default_identity_path() -> Path:
    """Where `kitctl backup` keeps its identity unless told otherwise: the operator's config, not the site
    directory (a backup of the site must not carry the key that opens it)."""
    configured = os.environ.get(IDENTITY_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kitctl" / "backup-identity.txt"


def generate_identity(path: Path) -> str:
    """A new identity at `path` (0600, in a 0700 directory, never over an existing file); its recipient."""
    from pyrage import x25519

    if path.exists():
        raise InvalidInput(f"{path} already exists; an identity is never overwritten")
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
    return recipient


def ensure_identity(path: Path) -> tuple[str, bool]:
    """The recipient of the identity at `path`, creating the identity when missing: (recipient, created)."""
    if path.exists():
        return recipients_of(load_identities(path))[0], False
    return generate_identity(path), True


def load_identities(path: Path) -> list["x25519.Identity"]:
    """The identities in an age identity file; refused when others may read it (as ssh refuses keys)."""
    from pyrage import IdentityError, x25519

    try:
        mode = path.stat().st_mode
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        raise InvalidInput(f"identity file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read identity file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(f"identity file {path} is readable by others (mode {oct(mode & 0o777)}); chmod 600 it")
    found = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(x25519.Identity.from_str(line))
        except IdentityError:
            raise InvalidInput(f"{path}:{number} is not an age identity (AGE-SECRET-KEY-1…)") from None
    if not found:
        raise InvalidInput(f"{path} holds no age identity")
    return found


def recipients_of(identities: Sequence["x25519.Identity"]) -> list[str]:
    return [str(identity.to_public()) for identity in identities]


def parse_recipients(texts: Sequence[str], source: str = "--recipient") -> list[object]:
    """age (`age1…`) or ssh (`ssh-ed25519 …`, `ssh-rsa …`) public keys; one clear line for anything else."""
    from pyrage import RecipientError, ssh, x25519

    parsed: list[object] = []
    for text in texts:
        text = text.strip()
        try:
            parsed.append(ssh.Recipient.from_str(text) if text.startswith("ssh-") else x25519.Recipient.from_str(text))
        except RecipientError:
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise InvalidInput(f"{source}: {shown!r} is not an age recipient (age1…) or ssh public key") from None
    return parsed


def read_recipients_file(path: Path) -> list[str]:
    """One recipient a line; blank lines and `#` comments skipped (age's `-R` format)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read recipients file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    found = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not found:
        raise InvalidInput(f"{path} names no recipient")
    return found


def is_encrypted(head: bytes) -> bool:
    return head.startswith(BINARY_MAGIC) or head.startswith(ARMOR_MAGIC)


def encrypt_file(plain: BinaryIO, out: BinaryIO, recipients: Sequence[object]) -> None:
    import pyrage

    pyrage.encrypt_io(plain, out, list(recipients))


def decrypt_file(sealed: BinaryIO, out: BinaryIO, identities: Sequence["x25519.Identity"], name: str,
                 identity_path: Path) -> None:
    import pyrage

    try:
        pyrage.decrypt_io(sealed, out, list(identities))
    except pyrage.DecryptError as exc:
        if "No matching keys" in str(exc):
            raise InvalidInput(f"{name} was not encrypted to the identity in {identity_path}; "
                               "pass the --identity its backup was made for") from None
        raise InvalidInput(f"{name} cannot be decrypted ({exc}): damaged or not a kitctl backup") from None


def backup_recipients(recipients: Sequence[str], recipients_file: Path | None, identity: Path,
                      plain: bool) -> tuple[list[object] | None, str, bool]:
    """Whom a backup is encrypted to: (recipients or None for a plain backup, what to say, identity created).

    Explicit recipients win; otherwise the identity file's own recipient, creating the identity when
    it does not exist yet, so that a backup is encrypted without any set-up.
    """
    if plain:
        if recipients or recipients_file:
            raise InvalidInput("--plain and --recipient/--recipients-file exclude each other")
        return None, "plain", False
    texts = list(recipients) + (read_recipients_file(recipients_file) if recipients_file else [])
    if texts:
        source = "--recipient" if recipients else f"--recipients-file {recipients_file}"
        return parse_recipients(texts, source), f"encrypted to {len(texts)} recipient(s)", False
    recipient, created = ensure_identity(identity)
    return parse_recipients([recipient], str(identity)), f"encrypted to {recipient} (identity {identity})", created
