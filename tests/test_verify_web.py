"""verify's MTA-STS and autoconfig checks against a real HTTPS server on loopback.

The server (http.server with TLS, a certificate from a test CA) serves exactly what the Worker
serves: the documents config/worker.py builds, the autodiscover answer to a POST included. Each
broken case changes one thing about what it serves.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailstack import verify
from mailstack.config import MailSettings, load_settings
from mailstack.config.records import static_records
from mailstack.config.worker import ADDRESS, Document, documents, documents_output
from tests.verify_zones import HOST

pytestmark = pytest.mark.integration

DOMAINS = ("another.com", "example.com")
Override = tuple[int, str, bytes, dict[str, str]]


def settings() -> MailSettings:
    raw = {
        "mailstack:hostname": HOST,
        "mailstack:dns": json.dumps({"provider": "cloudflare"}),
        "cloudflare:apiToken": "t",
        "mailstack:domains": json.dumps({d: {} for d in DOMAINS}),
        "mailstack:accounts": json.dumps({"me@example.com": {}}),
    }
    return load_settings(raw, secret_keys={"cloudflare:apiToken"}, stack="t")


SETTINGS = settings()
DOCS = {(d.host, d.path.lower()): d for d in documents(SETTINGS)}
HOSTS = sorted({host for host, _ in DOCS})


def stack_outputs() -> dict[str, Any]:
    return {
        "hostname": HOST,
        "publicIPv4": None,
        "publicIPv6": None,
        "dnsRecords": [r.as_dict() for r in static_records(SETTINGS)],
        "webDocuments": documents_output(SETTINGS),
    }


def issue(directory: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and a leaf certificate for `names` signed by it: (ca.pem, leaf.pem, leaf.key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailstack test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def answer(doc: Document, method: str, body: bytes, query: str) -> bytes:
    """What the Worker answers (config/scripts/mailstack-worker.js), in Python."""
    domain = doc.host.partition(".")[2]
    if doc.template is None:
        return doc.body.encode()
    if method == "POST":
        match = re.search(rb"<EMailAddress>\s*([^<\s]+)\s*</EMailAddress>", body, re.IGNORECASE)
        candidate = match.group(1).decode() if match else ""
    else:
        candidate = dict(p.partition("=")[::2] for p in query.split("&")).get("email", "")
    local, _, host = candidate.rpartition("@")
    if host.lower() == domain and re.fullmatch(r"[A-Za-z0-9._%+-]{1,64}", local):
        return doc.template.replace(ADDRESS, f"{local}@{domain}").encode()
    return doc.body.encode()


class WebServer:
    """HTTPS on 127.0.0.1 serving DOCS by Host and path; `overrides[(host, path)]` replaces an answer."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.overrides: dict[tuple[str, str], Override] = {}
        overrides = self.overrides

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                host = (self.headers.get("Host") or "").lower()
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                key = (host, path.lower())
                if key in overrides:
                    status, kind, data, extra = overrides[key]
                elif key in DOCS and (self.command != "POST" or DOCS[key].post):
                    doc = DOCS[key]
                    status, kind, data, extra = 200, doc.content_type, answer(doc, self.command, body, query), {}
                else:
                    status, kind, data, extra = 404, "text/plain", b"not found\n", {}
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Callable[..., tuple[WebServer, Path]]]:
    servers: list[WebServer] = []

    def start(names: list[str] | None = None) -> tuple[WebServer, Path]:
        ca, cert, key = issue(tmp_path, names or HOSTS)
        server = WebServer(cert, key)
        servers.append(server)
        return server, ca

    yield start
    for server in servers:
        server.stop()


ONLY_WEB = "records,spf,dkim,dmarc,mx,ptr,ports"


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], server: WebServer, ca: Path) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(stack_outputs()))
    args = ["--outputs", str(path), "--json", "--timeout", "2", "--resolver", "127.0.0.1:9", "--skip", ONLY_WEB]
    code = verify.main([*args, "--web-address", f"127.0.0.1:{server.port}", "--cafile", str(ca)])
    text = capsys.readouterr().out
    (tmp_path / "report.json").write_text(text)
    report = json.loads(text)
    return code, {(f["check"], f["subject"]): f for f in report["findings"]}


def policy_url(domain: str) -> str:
    return f"https://mta-sts.{domain}/.well-known/mta-sts.txt"


def test_everything_served_as_the_worker_serves_it_is_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], web: Callable[..., tuple[WebServer, Path]]
) -> None:
    server, ca = web()
    code, findings = run(tmp_path, capsys, server, ca)
    assert {k: f["status"] for k, f in findings.items()} == {
        **{("mta-sts", f"MTA-STS policy {policy_url(d)}"): "ok" for d in DOMAINS},
        **{
            ("autoconfig", f"https://{prefix}.{d}{path}"): "ok"
            for d in DOMAINS
            for prefix, path in (
                ("autoconfig", "/mail/config-v1.1.xml"),
                ("autoconfig", "/mail/config.mobileconfig"),
                ("autodiscover", "/autodiscover/autodiscover.xml"),
            )
        },
    }
    assert code == 0
    assert findings[("mta-sts", f"MTA-STS policy {policy_url('example.com')}")]["detail"] == (
        f"mode testing, mx {HOST}, max_age 604800"
    )
    assert findings[("autoconfig", "https://autoconfig.example.com/mail/config-v1.1.xml")]["detail"] == (
        f"{HOST}, ports 993, 465"
    )


def broken(server: WebServer, url: str, status: int, kind: str, body: bytes, **headers: str) -> None:
    host, _, path = url.removeprefix("https://").partition("/")
    server.overrides[(host, "/" + path.lower())] = (status, kind, body, headers)


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        (
            (200, "text/plain", b"version: STSv1\r\nmode: enforce\r\nmx: mx.other.example\r\nmax_age: 604800\r\n"),
            "fail+different",
            f"lists mx mx.other.example, not {HOST}: senders would refuse to deliver to those MX hosts",
        ),
        (
            (200, "text/plain", f"version: STSv1\r\nmode: enforce\r\nmx: {HOST}\r\nmax_age: 604800\r\n".encode()),
            "different",
            "the served policy is not the one `_mta-sts.example.com` announces",
        ),
        (
            (200, "text/html", f"version: STSv1\r\nmode: testing\r\nmx: {HOST}\r\nmax_age: 604800\r\n".encode()),
            "fail",
            "served as `text/html`; senders refuse anything but text/plain (RFC 8461 §3.3)",
        ),
        ((404, "text/plain", b"not found\n"), "fail", "HTTP 404"),
        ((200, "text/plain", b"version: STSv2\r\nmode: strict\r\n"), "fail", "version is `STSv2`, not STSv1"),
    ],
    ids=["MX not covered", "stale id", "wrong type", "not found", "malformed"],
)
def test_broken_policies(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    web: Callable[..., tuple[WebServer, Path]],
    change: tuple[int, str, bytes],
    status: str,
    detail: str,
) -> None:
    server, ca = web()
    broken(server, policy_url("example.com"), *change)
    code, findings = run(tmp_path, capsys, server, ca)
    subject = ("mta-sts", f"MTA-STS policy {policy_url('example.com')}")
    assert {k for k, f in findings.items() if f["status"] != "ok"} == {subject}
    assert code == 1
    report = json.loads((tmp_path / "report.json").read_text())
    found = [(f["status"], f["detail"]) for f in report["findings"] if (f["check"], f["subject"]) == subject]
    assert "+".join(s for s, _ in found) == status
    assert detail in found[0][1]


def test_a_redirect_is_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], web: Callable[..., tuple[WebServer, Path]]
) -> None:
    server, ca = web()
    broken(server, policy_url("another.com"), 301, "text/plain", b"", Location="https://www.another.com/mta-sts.txt")
    code, findings = run(tmp_path, capsys, server, ca)
    finding = findings[("mta-sts", f"MTA-STS policy {policy_url('another.com')}")]
    assert (code, finding["status"], finding["detail"]) == (
        1,
        "fail",
        "HTTP 301 redirecting to https://www.another.com/mta-sts.txt",
    )
    assert finding["fix"] == "senders follow no redirects (RFC 8461 §3.3): serve the file itself"


def test_a_certificate_without_the_policy_host_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], web: Callable[..., tuple[WebServer, Path]]
) -> None:
    server, ca = web([h for h in HOSTS if h != "mta-sts.another.com"])
    code, findings = run(tmp_path, capsys, server, ca)
    finding = findings[("mta-sts", f"MTA-STS policy {policy_url('another.com')}")]
    assert code == 1
    assert finding["status"] == "fail"
    assert finding["detail"].startswith("not fetched: certificate not accepted: Hostname mismatch")
    assert {k for k, f in findings.items() if f["status"] != "ok"} == {("mta-sts", finding["subject"])}


def test_broken_autoconfig_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], web: Callable[..., tuple[WebServer, Path]]
) -> None:
    server, ca = web()
    thunderbird = "https://autoconfig.example.com/mail/config-v1.1.xml"
    other = DOCS[("autoconfig.example.com", "/mail/config-v1.1.xml")].body.replace(HOST, "imap.other.example")
    broken(server, thunderbird, 200, "application/xml", other.encode())
    apple = "https://autoconfig.another.com/mail/config.mobileconfig"
    broken(server, apple, 200, "application/x-apple-aspen-config", b"<plist><dict><key>x</key>")
    outlook = "https://autodiscover.another.com/autodiscover/autodiscover.xml"
    broken(server, outlook, 405, "text/plain", b"method not allowed\n")
    code, findings = run(tmp_path, capsys, server, ca)
    problems = {k[1]: (f["status"], f["detail"]) for k, f in findings.items() if f["status"] != "ok"}
    assert code == 1
    assert problems == {
        thunderbird: (
            "fail",
            f"names imap.other.example; lacks {HOST}:993; lacks {HOST}:465: clients would be set up wrongly",
        ),
        apple: ("fail", problems[apple][1]),
        outlook: ("fail", "HTTP 405"),
    }
    assert problems[apple][1].startswith("does not parse: ")
