"""ddns: the ddclient.conf mailstack builds, run by the real ddclient (Debian's) against loopback endpoints.

Each protocol talks to a server this test runs on 127.0.0.1: a dyndns2/No-IP/Duck DNS endpoint over
HTTP, a Cloudflare-API stand-in over HTTPS (ddclient forces https there) with a throwaway CA, and a
real knotd with a TSIG key for the `nsupdate` protocol (ddclient → nsupdate → knotd). The address
ddclient discovers comes from the same server (`ipSource`), so nothing leaves the machine.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from mailstack.config import ConfigError, load_settings
from mailstack.config.ddns import ddclient_conf, tsig_key_file
from mailstack.config.settings import DdnsSettings, Rfc2136Settings
from tests.conftest import PROD_SECRET_KEYS
from tests.dnsserver import KnotServer
from tests.test_mail_dns import prod_config
from tests.test_rfc2136 import KEY, ZONE, served
from tests.tools import require

ADDRESS = "198.51.100.23"
PASSWORD = 'p@ss, w\'rd #1 \\ "x"'  # commas, quotes, a hash and a backslash: ddclient.conf's hard cases


@dataclass
class Endpoint:
    """A loopback HTTP(S) server answering as the DDNS services and Cloudflare's API do, recording requests."""

    port: int
    scheme: str
    requests: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"


def _handler(endpoint: Endpoint) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            endpoint.requests.append(("GET", self.path, self.headers.get("Authorization"), ""))
            if self.path == "/ip":
                self._send(ADDRESS.encode())
            elif self.path.startswith("/nic/update"):
                self._send(f"good {ADDRESS}".encode())  # dyndns2 and No-IP answer
            elif self.path.startswith("/update"):
                self._send(b"OK")  # Duck DNS answer
            elif self.path.startswith("/client/v4/zones/?"):
                self._send(json.dumps({"result": [{"id": "zid", "name": "example.com"}]}).encode(), "application/json")
            else:
                record = {"id": "rid", "name": "mail.example.com", "content": "93.184.215.14"}
                self._send(json.dumps({"result": [record]}).encode(), "application/json")

        def do_PATCH(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            endpoint.requests.append(("PATCH", self.path, self.headers.get("Authorization"), body))
            self._send(json.dumps({"result": {"id": "rid"}, "success": True}).encode(), "application/json")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _serve(endpoint: Endpoint, server: http.server.ThreadingHTTPServer) -> Iterator[Endpoint]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def plain_http() -> Iterator[Endpoint]:
    endpoint = Endpoint(0, "http")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
    endpoint.port = int(server.server_address[1])
    yield from _serve(endpoint, server)


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[Endpoint, Path]]:
    """HTTPS with a throwaway self-signed certificate for 127.0.0.1, handed to ddclient as its CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    endpoint = Endpoint(0, "https")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    endpoint.port = int(server.server_address[1])
    for served_endpoint in _serve(endpoint, server):
        yield served_endpoint, cert_file


def run_ddclient(tmp_path: Path, conf: str) -> str:
    """One forced update, in the foreground, with the config and cache in tmp_path; returns its output."""
    ddclient = require("ddclient")
    path = tmp_path / "ddclient.conf"
    path.write_text(conf)
    path.chmod(0o600)  # ddclient refuses (and fixes) a config others can read
    result = subprocess.run(
        [
            ddclient,
            "-daemon=0",
            "-foreground",
            "-file",
            str(path),
            "-cache",
            str(tmp_path / "cache"),
            "-force",
            "-verbose",
            "-noquiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output  # every key of the config is one ddclient knows, with a valid value
    return output


def ddns(
    provider: str, hostname: str, ip_source: str, zone: str | None = None, username: str | None = None
) -> DdnsSettings:
    return DdnsSettings(provider, hostname, zone, username, None, 300, ip_source)


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_conf_text_for_a_dyndns2_service() -> None:
    conf = ddclient_conf(ddns("dynu", "home.example.net", "ipify-ipv4", username="me"), PASSWORD)
    assert conf == (
        "# Written by mailstack (components/ddns.py); edit the stack config, not this file.\n"
        "daemon=300\n"
        "syslog=yes\n"
        "ssl=yes\n"
        "use=web, web=ipify-ipv4\n"
        "protocol=dyndns2, \\\n"
        "server=api.dynu.com, \\\n"
        "login=me, \\\n"
        f"password='{PASSWORD}' \\\n"
        "home.example.net\n"
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("provider", "path"),
    [("dynu", "/nic/update?system=dyndns&hostname="), ("noip", "/nic/update?system=noip&hostname=")],
)
def test_dyndns2_and_noip_update_with_the_password_intact(
    provider: str, path: str, https: tuple[Endpoint, Path], tmp_path: Path
) -> None:
    endpoint, ca_file = https
    settings = ddns(provider, "home.example.net", f"https://{endpoint.base}/ip", username="me@example.com")
    output = run_ddclient(tmp_path, ddclient_conf(settings, PASSWORD, server=endpoint.base, ca_file=str(ca_file)))
    assert f"SUCCESS:  updating home.example.net: good: IP address set to {ADDRESS}" in output
    [(method, url, auth, _)] = [r for r in endpoint.requests if r[1] != "/ip"]
    assert (method, auth) == ("GET", basic("me@example.com", PASSWORD))
    assert url.startswith(path + "home.example.net") and f"myip={ADDRESS}" in url


@pytest.mark.integration
def test_duckdns_sends_the_label_and_token(https: tuple[Endpoint, Path], tmp_path: Path) -> None:
    endpoint, ca_file = https
    settings = ddns("duckdns", "mail.myhome.duckdns.org", f"https://{endpoint.base}/ip")
    run_ddclient(tmp_path, ddclient_conf(settings, "0123-token", server=endpoint.base, ca_file=str(ca_file)))
    [(_, url, _, _)] = [r for r in endpoint.requests if r[1] != "/ip"]
    assert url == f"/update?domains=mail.myhome&token=0123-token&ip={ADDRESS}"


@pytest.mark.integration
def test_cloudflare_patches_the_record_pulumi_created(https: tuple[Endpoint, Path], tmp_path: Path) -> None:
    endpoint, ca_file = https
    settings = ddns("cloudflare", "mail.example.com", f"https://{endpoint.base}/ip", zone="example.com")
    conf = ddclient_conf(settings, "cf-token", server=f"{endpoint.base}/client/v4", ca_file=str(ca_file))
    output = run_ddclient(tmp_path, conf)
    assert f"SUCCESS:  updating mail.example.com: IPv4 address set to {ADDRESS}" in output
    assert endpoint.requests[1:] == [
        ("GET", "/client/v4/zones/?name=example.com", "Bearer cf-token", ""),
        ("GET", "/client/v4/zones/zid/dns_records?type=A&name=mail.example.com", "Bearer cf-token", ""),
        ("PATCH", "/client/v4/zones/zid/dns_records/rid", "Bearer cf-token", f'{{"content":"{ADDRESS}"}}'),
    ]


@pytest.mark.integration
def test_rfc2136_through_nsupdate_to_a_real_knot(plain_http: Endpoint, tmp_path: Path) -> None:
    require("nsupdate")
    with KnotServer({"example.com": ZONE}, tsig=KEY) as knot:
        server = Rfc2136Settings(knot.address, knot.port, KEY.name, KEY.algorithm, SecretStr(KEY.secret))
        key_file = tmp_path / "tsig.key"
        key_file.write_text(tsig_key_file(server))
        settings = ddns("rfc2136", "mail.example.com", f"http://{plain_http.base}/ip", zone="example.com")
        conf = ddclient_conf(settings, "", rfc2136=server, ssl=False, tsig_key_path=str(key_file))
        output = run_ddclient(tmp_path, conf)
        assert f"UPDATE:   update add mail.example.com. 300 A {ADDRESS}" in output
        assert served(knot, "mail.example.com", "A") == [f"300 {ADDRESS}"]


# -- configuration ------------------------------------------------------------------------------


def problems(changes: dict[str, Any], extra: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_settings({**prod_config(**changes), **(extra or {})}, secret_keys=PROD_SECRET_KEYS, stack="prod")
    return [(p.key, p.message, p.fix) for p in info.value.problems]


def test_ddns_on_the_stacks_cloudflare_zone_resolves() -> None:
    settings = load_settings(prod_config(**{"ddns": {"enabled": True}}), secret_keys=PROD_SECRET_KEYS, stack="prod")
    assert settings.ddns == DdnsSettings("cloudflare", "mail.example.com", "example.com", None, None, 300, "ipify-ipv4")


def test_ddns_problems_are_listed_together() -> None:
    assert problems({"ddns": {"enabled": True, "provider": "duckdns", "ipSource": "ftp://x"}}) == [
        (
            "mailstack:ddns.provider",
            "mail.example.com is in the stack's zone example.com: the stack publishes its address there, where duckdns "
            "cannot update it; use provider dns, or a hostname that the DDNS service holds",
            "pulumi config set --path 'mailstack:ddns.provider' dns",
        ),
        (
            "mailstack:hostname",
            "'mail.example.com' is not a duckdns.org name; Duck DNS only updates its own names",
            "pulumi config set 'mailstack:hostname' mail.<yours>.duckdns.org",
        ),
        (
            "mailstack:ddns.password",
            "is required: the Duck DNS token",
            "pulumi config set --path --secret 'mailstack:ddns.password' <secret>",
        ),
        (
            "mailstack:ddns.ipSource",
            "'ftp://x' is neither a ddclient web source name (e.g. ipify-ipv4) nor an http(s) URL",
            "pulumi config set --path 'mailstack:ddns.ipSource' ipify-ipv4",
        ),
    ]


def test_ddns_on_a_zone_ddclient_cannot_update() -> None:
    changes = {"ddns": {"enabled": True}, "dns/provider": "hetzner", "tls/challenge": "http", "publicIPv4": None}
    assert problems(changes, {"hcloud:token": "h"})[1:] == [
        (
            "mailstack:ddns.provider",
            "mail.example.com's zone example.com is published by hetzner, which ddclient cannot update (Debian's "
            "ddclient 3.10 speaks to Cloudflare and RFC 2136 servers); move the zone, or use a DDNS service that "
            "holds the hostname",
            "pulumi config set --path 'mailstack:ddns.provider' dynu",
        ),
        (
            "mailstack:publicIPv4",
            "is required with ddns: Pulumi creates the hostname's A record once with it (the current address); "
            "ddclient keeps it current afterwards",
            "pulumi config set 'mailstack:publicIPv4' <the current public IPv4>",
        ),
    ]
