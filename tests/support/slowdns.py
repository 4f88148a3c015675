"""Name resolution as Docker's DNS answers for a stopped container: a failure, but only after seconds."""

from __future__ import annotations

import socket
import time

import pytest

SUFFIX = ".stopped.test"  # names under it resolve slowly and then fail; every other name as usual


def slow_dns(monkeypatch: pytest.MonkeyPatch, delay: float = 3.0) -> list[str]:
    """Patch `socket.getaddrinfo`; returns the list of slow names asked for (appended as asked)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(SUFFIX):
            asked.append(host)
            time.sleep(delay)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    return asked
