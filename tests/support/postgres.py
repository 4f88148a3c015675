"""A throwaway PostgreSQL cluster (Debian's postgresql 15) for tests and benchmarks.

Nothing is assumed to be left on the machine: the cluster is created in a
temporary directory, listens on a free loopback port and is removed after.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

from hq.testing import free_port  # noqa: F401 (one picker for every test; imported from here too)


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster; yield its superuser URL (`postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`)."""
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    tmp = Path(tempfile.mkdtemp(prefix="kitctl-pg-"))
    data = tmp / "data"
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    port = free_port()
    try:
        subprocess.run(
            _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True,
        )
        opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={tmp} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB")
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "start"]),
            check=True, capture_output=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def create_database(admin_url: str) -> str:
    """A fresh, empty database on the cluster; returns its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    for attempt in range(50):
        try:
            with psycopg.connect(plain, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            break
        except psycopg.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.1)
    return admin_url.rsplit("/", 1)[0] + "/" + name
