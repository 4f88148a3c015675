"""Domains as a licensee types them (`商店.example.cn`) and as machines need them.

IDNA (UTS #46) turns the Unicode form into the ASCII A-label form used in the
proxy config and certificates; `localhost`-like names and IP literals are
allowed for local sites, which get a self-signed certificate.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_LOCAL_SUFFIXES = (".localhost", ".local", ".test", ".internal", ".lan", ".home.arpa")


@dataclass(frozen=True)
class Domain:
    ascii: str  # A-labels, lower case: what goes into Caddyfile and certificates
    unicode: str  # what a person reads

    @property
    def is_local(self) -> bool:
        """True when no public CA could issue a certificate for it."""
        return is_local_host(self.ascii)


def is_local_host(host: str) -> bool:
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return "." not in host


def parse_domain(value: str) -> Domain:
    """The domain in both forms, or ValueError with one line."""
    import idna

    text = value.strip().rstrip(".")
    if not text:
        raise ValueError("domain must not be empty")
    if len(text) > 253:
        raise ValueError("domain is longer than 253 characters")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is not None:
        if ip.version != 4:
            raise ValueError("domain: only IPv4 literals are accepted as an address (use a name for IPv6)")
        return Domain(ascii=str(ip), unicode=str(ip))
    try:
        ascii_form = idna.encode(text, uts46=True, std3_rules=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"domain {text!r} is not a valid internationalised domain name ({_first_line(exc)})") from None
    labels = ascii_form.split(".")
    if not all(_LABEL.match(label) for label in labels) or len(ascii_form) > 253:
        raise ValueError(f"domain {text!r} is not a valid host name")
    if labels[-1].isdigit():
        raise ValueError(f"domain {text!r}: the last label must not be numeric")
    try:
        unicode_form = idna.decode(ascii_form)
    except (idna.IDNAError, UnicodeError):
        unicode_form = ascii_form
    return Domain(ascii=ascii_form, unicode=unicode_form)


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]
