"""The rendered Caddyfile run by a real Caddy (Debian's caddy 2.6): health, branding, offline page, TLS."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from kitctl.render import render_site


def _caddy() -> str:
    found = shutil.which("caddy")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("caddy (Debian's) is required in CI: apt-get install caddy")
        pytest.skip("caddy not installed (not CI)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local_copy(site: Path, tmp: Path, srv: Path | None = None) -> tuple[Path, dict[str, int]]:
    """The rendered Caddyfile with container paths and ports mapped to free local ones (nothing else changed)."""
    ports = {"http": _free_port(), "https": _free_port(), "health": _free_port(), "storefront": _free_port()}
    text = (site / "Caddyfile").read_text()
    text = text.replace("storefront:8000", f"127.0.0.1:{ports['storefront']}")
    text = text.replace("/srv/branding", str(site / "branding"))
    text = text.replace("root /srv\n", f"root {srv or tmp / 'no-srv'}\n").replace("root * /srv\n", f"root * {srv or tmp / 'no-srv'}\n")
    text = text.replace("http://:8081", f"http://:{ports['health']}")
    text = text.replace("\tadmin off\n", f"\tadmin off\n\thttp_port {ports['http']}\n\thttps_port {ports['https']}\n", 1)
    path = tmp / "Caddyfile.local"
    path.write_text(text)
    return path, ports


def _get(url: str, host: str | None = None, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _run_caddy(binary: str, config: Path, tmp: Path, health_port: int) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "data"),
           "XDG_CONFIG_HOME": str(tmp / "config")}
    proc = subprocess.Popen([binary, "run", "--config", str(config), "--adapter", "caddyfile"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "caddy.log", "wb"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if _get(f"http://127.0.0.1:{health_port}/healthz")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("caddy did not become healthy: " + (tmp / "caddy.log").read_text()[-800:])


@contextmanager
def _storefront(port: int, theme: bytes) -> Iterator[None]:
    """A stand-in storefront on the port the proxy forwards to: theme.css, and a page for every other path."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = theme if self.path == "/branding/theme.css" else b"shop page"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_caddy_adapts_every_tls_mode(flags, tmp_path):
    binary = _caddy()
    for domain, tls in (("商店.example.cn", "auto"), ("localhost", "auto"), ("shop.example.cn", "off")):
        render_site({**flags, "domain": domain, "tls": tls})
        out = subprocess.run([binary, "adapt", "--config", str(Path(flags["site_dir"]) / "Caddyfile"),
                              "--adapter", "caddyfile"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_caddy_serves_health_branding_and_the_offline_page(flags, tmp_path):
    binary = _caddy()
    name = '星辰 <b>"游戏"</b>'
    render_site({**flags, "domain": "localhost", "tls": "off", "name": name, "primary_color": "#112233"})
    site = Path(flags["site_dir"])
    config, ports = _local_copy(site, tmp_path)
    proc = _run_caddy(binary, config, tmp_path, ports["health"])
    try:
        with _storefront(ports["storefront"], (site / "theme.css").read_bytes()):
            # the colours come from the storefront (a colour change replaces it, not the proxy)
            status, body = _get(f"http://127.0.0.1:{ports['http']}/branding/theme.css", host="localhost")
            assert status == 200 and body == (site / "theme.css").read_bytes()
        assert not (site / "branding/theme.css").exists()
        status, body = _get(f"http://127.0.0.1:{ports['http']}/branding/logo.png", host="localhost")
        assert status == 200 and body == (site / "branding/logo.png").read_bytes()
        # No storefront is running: the proxy answers with the branded offline page, name escaped.
        status, body = _get(f"http://127.0.0.1:{ports['http']}/", host="localhost")
        assert status >= 500
        assert "&lt;b&gt;&#34;游戏&#34;&lt;/b&gt;" in body.decode()
        assert "/branding/theme.css" not in body.decode()  # the storefront's, and it is the one not answering
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_a_request_waits_for_a_storefront_that_comes_up_shortly(flags, tmp_path):
    """While the storefront is replaced its address may refuse for a moment: the proxy tries again, the buyer
    gets the page, not the offline page."""
    binary = _caddy()
    render_site({**flags, "domain": "localhost", "tls": "off"})
    site = Path(flags["site_dir"])
    config, ports = _local_copy(site, tmp_path)
    proc = _run_caddy(binary, config, tmp_path, ports["health"])
    try:
        answer: list[tuple[int, bytes]] = []
        asking = threading.Thread(target=lambda: answer.append(_get(f"http://127.0.0.1:{ports['http']}/",
                                                                    host="localhost")))
        asking.start()
        time.sleep(1.0)  # the request is in the proxy, the storefront's port refuses
        with _storefront(ports["storefront"], b""):
            asking.join(timeout=10)
        assert answer == [(200, b"shop page")]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_caddy_serves_tls_internal_for_a_local_domain(flags, tmp_path):
    binary = _caddy()
    render_site({**flags, "domain": "localhost"})
    config, ports = _local_copy(Path(flags["site_dir"]), tmp_path)
    proc = _run_caddy(binary, config, tmp_path, ports["health"])
    try:
        status, body = _until_tls_answers(
            lambda: _get(f"https://localhost:{ports['https']}/branding/logo.png", context=_internal_ca_tls()))
        assert status == 200 and body == (Path(flags["site_dir"]) / "branding/logo.png").read_bytes()
        assert _peer_certificate(ports["https"], "localhost")  # Caddy issued one for localhost from its internal CA
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_a_client_sending_no_name_gets_the_sites_certificate(flags, tmp_path):
    """https://<IP> sends no SNI; with `tls internal` Caddy answers with the site's own certificate."""
    from cryptography import x509

    binary = _caddy()
    render_site({**flags, "domain": "shop.example.cn", "tls": "internal"})
    config, ports = _local_copy(Path(flags["site_dir"]), tmp_path)
    proc = _run_caddy(binary, config, tmp_path, ports["health"])
    try:
        cert = x509.load_der_x509_certificate(_until_tls_answers(lambda: _peer_certificate(ports["https"], None)))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert names == ["shop.example.cn"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _internal_ca_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed by Caddy's internal CA, by design
    return context


def _peer_certificate(port: int, server_name: str | None) -> bytes:
    """The certificate Caddy presents on 127.0.0.1:port for `server_name` (None: no SNI, as for https://<IP>)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with _internal_ca_tls().wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def _until_tls_answers(action, seconds: float = 20):
    """Caddy issues its internal certificates just after start: retry the handshake for a while."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


@pytest.mark.slow
def test_http_redirects_to_https_on_the_published_port(flags, tmp_path):
    """`http://localhost:8080` led to `https://localhost/`, a dead end: the redirect keeps the published port."""
    binary = _caddy()
    render_site({**flags, "domain": "localhost", "https_port": 8443})
    config, ports = _local_copy(Path(flags["site_dir"]), tmp_path)
    proc = _run_caddy(binary, config, tmp_path, ports["health"])
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        for host in ("localhost", "127.0.0.1"):
            request = urllib.request.Request(f"http://127.0.0.1:{ports['http']}/p?q=1", headers={"Host": host})
            with pytest.raises(urllib.error.HTTPError) as answer:
                opener.open(request, timeout=5)
            assert answer.value.code == 308 and answer.value.headers["Location"] == f"https://{host}:8443/p?q=1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_redirect_names_no_port_on_443_and_none_without_tls(flags):
    render_site({**flags, "domain": "localhost", "https_port": 443, "http_port": 80})
    assert "redir https://{host}{uri} 308" in (Path(flags["site_dir"]) / "Caddyfile").read_text()
    render_site({**flags, "domain": "localhost", "tls": "off"})
    assert "redir" not in (Path(flags["site_dir"]) / "Caddyfile").read_text()


@pytest.mark.slow
def test_caddy_serves_the_versioned_static_files_of_its_image_immutable(flags, tmp_path):
    """/srv/static as the proxy image holds it (kitctl.images.checkout); other /static/ names go to the shop."""
    from kitctl.images.checkout import _versioned_static
    from kitcore.assets import IMMUTABLE
    from tests.storefront.support import versioned_url

    binary = _caddy()
    render_site({**flags, "domain": "localhost", "tls": "off"})
    site = Path(flags["site_dir"])
    (tmp_path / "srv").mkdir()
    _versioned_static(Path(__file__).resolve().parents[2] / "storefront" / "static", tmp_path / "srv" / "static")
    config, ports = _local_copy(site, tmp_path, srv=tmp_path / "srv")
    proc = _run_caddy(binary, config, tmp_path, ports["health"])
    try:
        url = f"http://127.0.0.1:{ports['http']}{versioned_url('app.css')}"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": "localhost"}), timeout=5) as answer:
            assert answer.status == 200 and answer.headers["Cache-Control"] == IMMUTABLE
            assert answer.read() == (tmp_path / "srv" / versioned_url("app.css").lstrip("/")).read_bytes()
        # no storefront runs here: an unversioned name is not the proxy's to answer
        assert _get(f"http://127.0.0.1:{ports['http']}/static/app.css", host="localhost")[0] >= 500
    finally:
        proc.terminate()
        proc.wait(timeout=10)
