"""`verify` against real servers on loopback: knotd for DNS, TLS listeners and aiosmtpd for the ports.

Nothing here leaves 127.0.0.0/8: the autouse `loopback_only` fixture makes any other connection
fail the test, and every server is started and stopped by a fixture.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import re
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailstack import verify
from mailstack.verify.probes import Probe, probe_port, tls_context
from tests.dnsserver import KnotServer, free_port
from tests.verify_zones import (
    HOST,
    IPV4,
    IPV6,
    NS1,
    NS2,
    dkim_key,
    domain_records,
    good_stack,
    host_records,
    outputs,
    quoted,
    reverse_zones,
    zone,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent

# -- running verify ------------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    report: dict[str, Any]

    @property
    def findings(self) -> list[dict[str, Any]]:
        return list(self.report["findings"])

    def statuses(self) -> dict[tuple[str, str], str]:
        """(check, subject) → status; a subject reported twice keeps both statuses joined by `+`."""
        out: dict[tuple[str, str], str] = {}
        for f in self.findings:
            key = (f["check"], f["subject"])
            out[key] = f"{out[key]}+{f['status']}" if key in out else f["status"]
        return out

    def problems(self) -> dict[tuple[str, str], str]:
        return {k: v for k, v in self.statuses().items() if v != "ok"}

    def one(self, check: str, subject: str) -> dict[str, Any]:
        matches = [f for f in self.findings if f["check"] == check and f["subject"] == subject]
        assert len(matches) == 1, (check, subject, matches)
        return matches[0]


def run_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: Mapping[str, Any], *args: str) -> Run:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    code = verify.main(["--outputs", str(path), "--json", "--timeout", "1", *args])
    out = capsys.readouterr().out
    return Run(code, json.loads(out))


def dns_args(server: KnotServer) -> list[str]:
    """Resolver = the knotd (it answers authoritatively for every zone it serves); NS discovery on."""
    return ["--resolver", f"{server.address}:{server.port}", "--ns-port", str(server.port)]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test on any connection or datagram to an address outside loopback."""

    def check(address: object) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if isinstance(host, str) and not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            raise AssertionError(f"test tried to reach {host}: only loopback is allowed")

    for method in ("connect", "connect_ex"):
        original = getattr(socket.socket, method)

        def guarded(self: socket.socket, address: object, _original: Any = original) -> Any:
            check(address)
            return _original(self, address)

        monkeypatch.setattr(socket.socket, method, guarded)
    original_sendto = socket.socket.sendto

    def guarded_sendto(self: socket.socket, data: bytes, *rest: Any) -> int:
        check(rest[-1])
        return original_sendto(self, data, *rest)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(socket.socket, "sendto", guarded_sendto)


@pytest.fixture
def knot() -> Iterator[Callable[..., KnotServer]]:
    """Factory for knotd instances; every one is stopped when the test ends."""
    with ExitStack() as stack:

        def start(zones: Mapping[str, str], address: str = NS1, port: int | None = None) -> KnotServer:
            return stack.enter_context(KnotServer(zones, address=address, port=port))

        yield start


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path


def make_cert(
    directory: Path,
    name: str,
    *,
    hostname: str = HOST,
    not_before: dt.timedelta = dt.timedelta(days=-1),
    not_after: dt.timedelta = dt.timedelta(days=90),
) -> Cert:
    """A self-signed certificate (its own CA) for `hostname`, valid relative to now."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + not_before)
        .not_valid_after(now + not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Cert(directory / f"{name}.crt", directory / f"{name}.key")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def server_context(cert: Cert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert, cert.key)
    return context


class TlsListener:
    """An implicit-TLS server on loopback that sends a greeting line (SMTPS 465 or IMAPS 993 style)."""

    def __init__(self, cert: Cert, greeting: bytes) -> None:
        context = server_context(cert)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5)
                try:
                    with context.wrap_socket(self.request, server_side=True) as tls:
                        tls.sendall(greeting)
                        tls.recv(1024)
                except (OSError, ssl.SSLError):
                    pass  # the client rejected our certificate: that is what some tests want

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Sink:
    """aiosmtpd handler that accepts and drops mail (verify never sends any)."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


@dataclass
class MailPorts:
    """Where the three mail services listen, and the CA file that trusts their certificate."""

    smtp: int
    smtps: int
    imaps: int
    cafile: Path

    def args(self) -> list[str]:
        return [
            "--address",
            "127.0.0.1",
            "--port-map",
            f"25={self.smtp},465={self.smtps},993={self.imaps}",
            "--cafile",
            str(self.cafile),
        ]


@pytest.fixture
def mail_ports(tmp_path: Path) -> Iterator[Callable[..., MailPorts]]:
    """Factory: SMTP with STARTTLS (aiosmtpd) on one port and two implicit-TLS listeners."""
    with ExitStack() as stack:

        def start(cert: Cert | None = None, *, starttls: bool = True) -> MailPorts:
            cert = cert or make_cert(tmp_path, "good")
            port = free_port("127.0.0.1")
            smtp = Controller(
                Sink(),
                hostname="127.0.0.1",
                port=port,
                server_hostname=HOST,
                tls_context=server_context(cert) if starttls else None,
            )
            smtp.start()
            stack.callback(smtp.stop)
            listeners = [
                TlsListener(cert, b"220 " + HOST.encode() + b" ESMTP\r\n"),
                TlsListener(cert, b"* OK IMAP\r\n"),
            ]
            for listener in listeners:
                stack.callback(listener.stop)
            return MailPorts(port, listeners[0].port, listeners[1].port, cert.cert)

        yield start


# -- the proofs ----------------------------------------------------------------------------------

EXPECTED_GOOD = {
    ("nameservers", "NS another.com"),
    ("nameservers", "NS example.com"),
    ("records", "MX example.com"),
    ("records", "TXT example.com"),
    ("records", "TXT mail._domainkey.example.com"),
    ("records", "TXT _dmarc.example.com"),
    ("records", "SRV _submissions._tcp.example.com"),
    ("records", "SRV _imaps._tcp.example.com"),
    ("records", "SRV _submission._tcp.example.com"),
    ("records", f"A {HOST}"),
    ("records", f"AAAA {HOST}"),
    ("records", "TXT another.com._report._dmarc.example.com"),
    ("records", "MX another.com"),
    ("records", "TXT another.com"),
    ("records", "TXT mail._domainkey.another.com"),
    ("records", "TXT _dmarc.another.com"),
    ("records", "SRV _submissions._tcp.another.com"),
    ("records", "SRV _imaps._tcp.another.com"),
    ("records", "SRV _submission._tcp.another.com"),
    ("spf", "SPF example.com"),
    ("spf", f"SPF example.com permits {IPV4}"),
    ("spf", f"SPF example.com permits {IPV6}"),
    ("spf", "SPF another.com"),
    ("spf", f"SPF another.com permits {IPV4}"),
    ("spf", f"SPF another.com permits {IPV6}"),
    ("dkim", "DKIM mail (mail._domainkey.example.com)"),
    ("dkim", "DKIM mail (mail._domainkey.another.com)"),
    ("dmarc", "DMARC example.com"),
    ("dmarc", "DMARC another.com"),
    ("dmarc", "DMARC reports to example.com"),
    ("mx", f"MX example.com → {HOST}"),
    ("mx", f"MX another.com → {HOST}"),
    ("mx", f"A {HOST}"),
    ("mx", f"AAAA {HOST}"),
    ("ptr", f"PTR {IPV4}"),
    ("ptr", f"PTR {IPV6}"),
}


def port_subjects(ports: MailPorts) -> set[tuple[str, str]]:
    return {
        ("ports", f"port 25 (SMTP with STARTTLS) at 127.0.0.1:{ports.smtp}"),
        ("ports", f"port 465 (SMTP submission over implicit TLS) at 127.0.0.1:{ports.smtps}"),
        ("ports", f"port 993 (IMAP over implicit TLS) at 127.0.0.1:{ports.imaps}"),
        ("tls", f"certificate on port 25 at 127.0.0.1:{ports.smtp}"),
        ("tls", f"certificate on port 465 at 127.0.0.1:{ports.smtps}"),
        ("tls", f"certificate on port 993 at 127.0.0.1:{ports.imaps}"),
    }


def test_all_good_with_ns_discovery_ports_and_certificates(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    knot: Callable[..., KnotServer],
    mail_ports: Callable[..., MailPorts],
) -> None:
    """Everything the stack says exists: exit 0 and every single check is ok."""
    data, zones = good_stack()
    server = knot(zones)
    ports = mail_ports()
    run = run_verify(tmp_path, capsys, data, *dns_args(server), *ports.args())
    expected = {key: "ok" for key in EXPECTED_GOOD | port_subjects(ports)}
    assert run.statuses() == expected
    assert run.code == 0
    assert run.report["exit_code"] == 0
    # NS discovery found the zone's own NS and its glue, and asked it directly on the test port.
    assert run.one("nameservers", "NS example.com")["detail"] == f"ns1.example.com ({NS1}:{server.port}) serial 1"
    assert run.one("spf", "SPF example.com")["detail"] == "1/10 DNS lookups, 0/2 void"
    assert run.one("ptr", f"PTR {IPV4}")["detail"] == f"{IPV4} → {HOST} → {IPV4}"


def skip_ports() -> list[str]:
    return ["--skip", "ports"]


def test_dkim_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]) -> None:
    """The DKIM key of another.com is not published: the exact TXT to publish is the fix."""
    data, zones = good_stack()
    published = [r for r in data["dnsRecords"] if r["name"] != "mail._domainkey.another.com"]
    zones["another.com"] = zone("another.com", published)
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), *skip_ports())
    assert run.problems() == {
        ("records", "TXT mail._domainkey.another.com"): "missing",
        ("dkim", "DKIM mail (mail._domainkey.another.com)"): "missing",
    }
    text = f"v=DKIM1; k=rsa; p={dkim_key()}"
    publish = f'publish mail._domainkey.another.com. 3600 IN TXT "{text[:255]}" "{text[255:]}"'
    assert run.one("records", "TXT mail._domainkey.another.com")["fix"] == publish
    assert run.one("dkim", "DKIM mail (mail._domainkey.another.com)")["fix"] == publish
    assert run.code == 1


def test_dkim_key_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]) -> None:
    """An old key is published: the record is `different` and the DKIM check shows both keys."""
    data, zones = good_stack()
    published = [
        {**r, "content": f"v=DKIM1; k=rsa; p={dkim_key(1)}"} if r["name"] == "mail._domainkey.example.com" else r
        for r in data["dnsRecords"]
    ]
    zones["example.com"] = zone("example.com", published)
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), *skip_ports())
    assert run.problems() == {
        ("records", "TXT mail._domainkey.example.com"): "different",
        ("dkim", "DKIM mail (mail._domainkey.example.com)"): "different",
    }
    finding = run.one("records", "TXT mail._domainkey.example.com")
    assert finding["found"] == [f"v=DKIM1; k=rsa; p={dkim_key(1)}"]
    assert finding["expected"] == f"v=DKIM1; k=rsa; p={dkim_key()}"
    old, new = dkim_key(1), dkim_key()
    assert run.one("dkim", "DKIM mail (mail._domainkey.example.com)")["detail"] == (
        f"published p={old[:10]}…{old[-10:]} but the server signs with p={new[:10]}…{new[-10:]}: signatures fail"
    )
    assert run.code == 1


def test_spf_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]) -> None:
    """A hand-edited SPF that lists another address: different, and the server's IPs are not permitted."""
    data, zones = good_stack()
    published = [
        {**r, "content": "v=spf1 ip4:198.51.100.7 -all"} if r["name"] == "example.com" and r["type"] == "TXT" else r
        for r in data["dnsRecords"]
    ]
    zones["example.com"] = zone("example.com", published)
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), *skip_ports())
    assert run.problems() == {
        ("records", "TXT example.com"): "different",
        ("spf", f"SPF example.com permits {IPV4}"): "fail",
        ("spf", f"SPF example.com permits {IPV6}"): "fail",
    }
    fix = 'publish example.com. 3600 IN TXT "v=spf1 mx -all"'
    assert run.one("records", "TXT example.com")["fix"] == f"{fix} (replacing v=spf1 ip4:198.51.100.7 -all)"
    permits = run.one("spf", f"SPF example.com permits {IPV4}")
    assert (permits["detail"], permits["fix"]) == ("SPF result for the server's address is fail", fix)
    assert run.one("spf", "SPF example.com")["detail"] == "0/10 DNS lookups, 0/2 void"
    assert run.code == 1


RELAY_ZONE_LINES = [
    # 12 DNS-querying terms in all once example.com's own `mx` and `include` are counted.
    '_spf TXT "v=spf1 include:s1.relay.test include:s2.relay.test include:s3.relay.test -all"',
    's1 TXT "v=spf1 a:h1.relay.test a:h2.relay.test -all"',
    's2 TXT "v=spf1 include:s4.relay.test exists:e.relay.test -all"',
    's4 TXT "v=spf1 ip4:192.0.2.0/24 a:h3.relay.test ~all"',
    's3 TXT "v=spf1 mx:relay.test a:h1.relay.test ip6:2001:db8:1::/48 -all"',
    "@ MX 10 h1",
    "h1 A 192.0.2.1",
    "h2 A 192.0.2.2",
    "h3 A 192.0.2.3",
    "e A 127.0.0.2",
]


def test_spf_over_the_lookup_limit_through_nested_includes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """The record matches the stack, but its includes need 12 lookups: RFC 7208 §4.6.4 permerror."""
    spf = "v=spf1 mx include:_spf.relay.test -all"
    records = [*domain_records("example.com", spf=spf), *host_records()]
    data = outputs(records)
    zones = {
        "example.com": zone("example.com", records),
        "relay.test": zone("relay.test", extra=RELAY_ZONE_LINES),
        **reverse_zones(),
    }
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), *skip_ports())
    assert run.problems() == {("spf", "SPF example.com"): "fail"}
    finding = run.one("spf", "SPF example.com")
    assert finding["detail"] == (
        "12/10 DNS lookups, 0/2 void: 12 DNS-querying terms after includes and redirects (limit 10)"
        " (RFC 7208 §4.6.4: receivers return permerror)"
    )
    assert finding["fix"] == "remove includes you do not send through, or replace an include with its ip4:/ip6: ranges"
    # The server itself is still permitted: `mx` matches before the budget runs out.
    assert run.one("spf", f"SPF example.com permits {IPV4}")["status"] == "ok"
    assert run.code == 1


def test_dmarc_external_rua_without_authorization(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """Reports go to a domain that does not publish `<domain>._report._dmarc.<dest>`: RFC 9990 §4."""
    dmarc = "v=DMARC1; p=none; rua=mailto:agg@reports.test; ruf=mailto:dmarc@example.com"
    records = [*domain_records("example.com", dmarc=dmarc), *host_records()]
    data = outputs(records)
    zones = {
        "example.com": zone("example.com", records),
        "reports.test": zone("reports.test", extra=['other.org._report._dmarc TXT "v=DMARC1"']),
        **reverse_zones(),
    }
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), *skip_ports())
    assert run.problems() == {("dmarc", "DMARC reports to reports.test"): "fail"}
    finding = run.one("dmarc", "DMARC reports to reports.test")
    assert finding["detail"] == (
        "reports.test does not publish example.com._report._dmarc.reports.test: receivers drop the reports"
        " (RFC 9990 §4)"
    )
    assert finding["fix"] == (
        'publish example.com._report._dmarc.reports.test. 3600 IN TXT "v=DMARC1" in the zone of reports.test'
    )
    # ruf to the domain itself needs no authorization, so only one destination was checked.
    assert [f["subject"] for f in run.findings if f["check"] == "dmarc"] == [
        "DMARC example.com",
        "DMARC reports to reports.test",
    ]
    assert run.code == 1


def _sibling_stack(apex_dmarc: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Mail domains a.example.com and b.example.com in zone example.com; a's reports go to b."""
    a = domain_records("a.example.com", dmarc="v=DMARC1; p=reject; rua=mailto:dmarc@b.example.com")
    b = domain_records("b.example.com")
    records = [{**r, "zone": "example.com"} for r in (*a, *b)] + host_records()
    extra = ['_dmarc TXT "v=DMARC1; p=none"'] if apex_dmarc else []
    return outputs(records), {"example.com": zone("example.com", records, extra=extra), **reverse_zones()}


def test_dmarc_reports_to_a_sibling_subdomain_follow_the_rfc_9989_tree_walk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """RFC 9989 §4.10.2: with _dmarc.example.com published, a.example.com and b.example.com share the
    Organizational Domain example.com, so no authorization record is demanded (RFC 9990 §4); without it,
    each is its own Organizational Domain and the record is required."""
    data, zones = _sibling_stack(apex_dmarc=True)
    run = run_verify(tmp_path, capsys, data, *dns_args(knot(zones)), *skip_ports())
    assert [f["subject"] for f in run.findings if f["check"] == "dmarc"] == [
        "DMARC a.example.com",
        "DMARC b.example.com",
    ]
    assert run.problems() == {}

    data, zones = _sibling_stack(apex_dmarc=False)
    run = run_verify(tmp_path, capsys, data, *dns_args(knot(zones)), *skip_ports())
    assert run.problems() == {("dmarc", "DMARC reports to b.example.com"): "fail"}
    assert run.one("dmarc", "DMARC reports to b.example.com")["detail"] == (
        "b.example.com does not publish a.example.com._report._dmarc.b.example.com: receivers drop the reports"
        " (RFC 9990 §4)"
    )


def test_one_of_two_nameservers_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """Two knotd instances serve example.com; the new DKIM key reaches one, then both."""
    new = domain_records("example.com")
    old = domain_records("example.com", key=dkim_key(1))
    data = outputs([*new, *host_records()])
    two = (("ns1", NS1), ("ns2", NS2))

    def zones(records: list[dict[str, Any]], serial: int) -> dict[str, str]:
        return {"example.com": zone("example.com", [*records, *host_records()], ns=two, serial=serial)}

    port = free_port(NS1)
    ns1 = knot(zones(old, 1), address=NS1, port=port)
    ns2 = knot(zones(old, 1), address=NS2, port=port)
    args = [*dns_args(ns1), "--skip", "ports,ptr"]
    label1, label2 = f"ns1.example.com ({NS1}:{port})", f"ns2.example.com ({NS2}:{port})"
    subject = ("records", "TXT mail._domainkey.example.com")

    before = run_verify(tmp_path, capsys, data, *args)
    assert before.problems() == {subject: "different", ("dkim", "DKIM mail (mail._domainkey.example.com)"): "different"}

    ns1.replace_zones(zones(new, 2))
    during = run_verify(tmp_path, capsys, data, *args)
    assert during.problems() == {subject: "propagating"}
    assert during.one(*subject)["detail"] == (
        f"served by {label1}; not yet by {label2} (different: v=DKIM1; k=rsa; p={dkim_key(1)})"
    )
    assert during.one("nameservers", "NS example.com")["detail"] == f"{label1} serial 2, {label2} serial 1"
    assert during.code == 1

    ns2.replace_zones(zones(new, 2))
    after = run_verify(tmp_path, capsys, data, *args)
    assert after.problems() == {}
    assert after.code == 0


def test_proxied_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]) -> None:
    """The hostname resolves to a Cloudflare proxy address (orange cloud): mail never reaches the server."""
    data, zones = good_stack()
    published = [{**r, "content": "104.16.132.229"} if r["type"] == "A" else r for r in data["dnsRecords"]]
    zones["example.com"] = zone("example.com", published)
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), "--skip", "ports,ptr,spf")
    assert run.problems() == {
        ("records", f"A {HOST}"): "different",
        ("mx", f"A {HOST}"): "fail",
        ("mx", f"MX example.com → {HOST}"): "fail",
        ("mx", f"MX another.com → {HOST}"): "fail",
    }
    finding = run.one("mx", f"A {HOST}")
    assert finding["detail"] == (
        f"{HOST} resolves to Cloudflare proxy address(es) 104.16.132.229: SMTP/IMAP never reach the server"
    )
    assert finding["fix"] == (
        f"set the record of {HOST} to 'DNS only' (grey cloud) at Cloudflare; mail records must not be proxied"
    )
    assert run.code == 1


def test_ptr_not_pointing_at_the_hostname(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """The ISP's generic PTR: the fix names the address, the hostname and who can change it."""
    data, zones = good_stack()
    zones.update(reverse_zones(ptr="host-203-0-113-25.isp.test"))
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), "--skip", "ports,records,spf,dkim,dmarc")
    assert run.problems() == {("ptr", f"PTR {IPV4}"): "different", ("ptr", f"PTR {IPV6}"): "different"}
    finding = run.one("ptr", f"PTR {IPV4}")
    assert finding["detail"] == f"PTR is host-203-0-113-25.isp.test, not {HOST}"
    assert (
        finding["fix"]
        == f"set PTR of {IPV4} to {HOST} at your ISP or hosting provider (whoever owns the address block)"
    )
    assert run.code == 1


def test_spf_missing_without_one_in_the_stack_still_says_what_to_publish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """A mail domain whose outputs carry no SPF: the `missing` line still names a record to publish."""
    records = [r for r in domain_records("example.com") if r["content"] != "v=spf1 mx -all"] + host_records()
    server = knot({"example.com": zone("example.com", records), **reverse_zones()})
    run = run_verify(tmp_path, capsys, outputs(records), *dns_args(server), "--skip", "ports")
    assert run.problems() == {("spf", "SPF example.com"): "missing"}
    assert run.one("spf", "SPF example.com")["fix"] == 'publish example.com. 3600 IN TXT "v=spf1 mx -all"'


def test_ptr_with_a_failed_forward_lookup_is_unchecked_not_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """The PTR names the host, but the host's own lookup fails (REFUSED): `error`, not a forward-DNS `fail`."""
    server = knot(reverse_zones())  # knotd refuses example.com: it does not serve that zone
    data, _ = good_stack()
    run = run_verify(tmp_path, capsys, data, *dns_args(server), "--skip", "ports,records,spf,dkim,dmarc,mx")
    assert run.statuses() == {("ptr", f"PTR {IPV4}"): "error", ("ptr", f"PTR {IPV6}"): "error"}
    assert run.one("ptr", f"PTR {IPV4}")["detail"] == f"address lookup of {HOST} failed: resolver answered REFUSED"
    assert run.code == 2


def test_blocklist_through_a_local_resolver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    """Spamhaus answers, served here by knotd: a PBL listing, and the public-resolver refusal code."""
    data, zones = good_stack()
    zones["zen.spamhaus.org"] = zone("zen.spamhaus.org", extra=["25.113.0.203 A 127.0.0.10"])
    zones["dbl.spamhaus.org"] = zone("dbl.spamhaus.org", extra=["another.com A 127.255.255.254"])
    server = knot(zones)
    run = run_verify(
        tmp_path, capsys, data, *dns_args(server), "--skip", "ports,records,spf,dkim,dmarc,mx,ptr", "--blocklist"
    )
    assert run.statuses() == {
        ("blocklist", f"Spamhaus ZEN {IPV4}"): "fail",
        ("blocklist", f"Spamhaus ZEN {IPV6}"): "ok",
        ("blocklist", "Spamhaus DBL example.com"): "ok",
        ("blocklist", "Spamhaus DBL another.com"): "error",
        ("blocklist", f"Spamhaus DBL {HOST}"): "ok",
    }
    listed = run.one("blocklist", f"Spamhaus ZEN {IPV4}")
    assert listed["detail"] == "PBL (ISP: dynamic/residential range that should not send mail directly)"
    assert listed["fix"] == (
        "send outbound mail through the relay (mailstack:relay), or ask your ISP for a static business address"
    )
    refused = run.one("blocklist", "Spamhaus DBL another.com")
    assert refused["detail"] == (
        "Spamhaus refused the query: query came through a public/open resolver, which Spamhaus refuses"
    )
    assert run.code == 1


# -- ports and certificates ----------------------------------------------------------------------


def ports_only(server: KnotServer, ports: MailPorts, *extra: str) -> list[str]:
    return [*dns_args(server), *ports.args(), "--skip", "records,spf,dkim,dmarc,mx,ptr", *extra]


@pytest.fixture
def dns_server(knot: Callable[..., KnotServer]) -> KnotServer:
    return knot(good_stack()[1])


def test_self_signed_certificate_not_trusted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dns_server: KnotServer, mail_ports: Callable[..., MailPorts]
) -> None:
    """Without --cafile the system CAs are used, and a self-signed certificate is rejected on every port."""
    ports = mail_ports()
    args = [a for a in ports_only(dns_server, ports) if a not in ("--cafile", str(ports.cafile))]
    run = run_verify(tmp_path, capsys, outputs([]), *args)
    tls = {k: v for k, v in run.statuses().items() if k[0] == "tls"}
    assert tls == {k: "fail" for k in port_subjects(ports) if k[0] == "tls"}
    detail = run.one("tls", f"certificate on port 25 at 127.0.0.1:{ports.smtp}")["detail"]
    today = dt.datetime.now(dt.UTC)
    valid = f"valid {today - dt.timedelta(days=1):%Y-%m-%d} to {today + dt.timedelta(days=90):%Y-%m-%d}"
    assert detail == (
        f"certificate not accepted: self-signed certificate (presents CN={HOST}, names {HOST}, self-signed, {valid})"
    )
    assert run.code == 1


def test_expired_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dns_server: KnotServer, mail_ports: Callable[..., MailPorts]
) -> None:
    """Trusted, right name, but expired yesterday: the handshake is refused with that reason."""
    cert = make_cert(tmp_path, "expired", not_before=dt.timedelta(days=-91), not_after=dt.timedelta(days=-1))
    ports = mail_ports(cert)
    run = run_verify(tmp_path, capsys, outputs([]), *ports_only(dns_server, ports))
    assert run.problems() == {k: "fail" for k in port_subjects(ports) if k[0] == "tls"}
    detail = run.one("tls", f"certificate on port 465 at 127.0.0.1:{ports.smtps}")["detail"]
    assert detail.startswith("certificate not accepted: certificate has expired (presents CN=mail.example.com")
    assert run.code == 1


def test_certificate_expiring_within_14_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dns_server: KnotServer, mail_ports: Callable[..., MailPorts]
) -> None:
    cert = make_cert(tmp_path, "soon", not_after=dt.timedelta(days=5, hours=12))
    ports = mail_ports(cert)
    run = run_verify(tmp_path, capsys, outputs([]), *ports_only(dns_server, ports))
    assert run.problems() == {k: "fail" for k in port_subjects(ports) if k[0] == "tls"}
    finding = run.one("tls", f"certificate on port 993 at 127.0.0.1:{ports.imaps}")
    assert finding["detail"] == f"valid for {HOST} but expires in 5.5 days (limit 14)"
    assert finding["fix"] == "renew it now; check that the certbot container runs and its logs"
    # A shorter limit accepts the same certificate.
    relaxed = run_verify(tmp_path, capsys, outputs([]), *ports_only(dns_server, ports), "--expiry-days", "5")
    assert relaxed.problems() == {}
    assert relaxed.code == 0


def test_certificate_for_another_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dns_server: KnotServer, mail_ports: Callable[..., MailPorts]
) -> None:
    ports = mail_ports(make_cert(tmp_path, "other", hostname="other.example.net"))
    run = run_verify(tmp_path, capsys, outputs([]), *ports_only(dns_server, ports))
    assert run.problems() == {k: "fail" for k in port_subjects(ports) if k[0] == "tls"}
    detail = run.one("tls", f"certificate on port 25 at 127.0.0.1:{ports.smtp}")["detail"]
    assert detail.startswith(
        f"certificate not accepted: Hostname mismatch, certificate is not valid for '{HOST}'. "
        "(presents CN=other.example.net, names other.example.net, self-signed"
    )


def test_smtp_without_starttls_and_a_closed_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dns_server: KnotServer, mail_ports: Callable[..., MailPorts]
) -> None:
    """Port 25 answers but offers no STARTTLS; port 465 is closed (nothing listens there)."""
    ports = mail_ports(starttls=False)
    closed = free_port("127.0.0.1")
    args = ports_only(dns_server, ports, "--smtps-port", str(closed))
    run = run_verify(tmp_path, capsys, outputs([]), *args)
    assert run.problems() == {
        ("ports", f"port 25 (SMTP with STARTTLS) at 127.0.0.1:{ports.smtp}"): "fail",
        ("ports", f"port 465 (SMTP submission over implicit TLS) at 127.0.0.1:{closed}"): "fail",
    }
    smtp = run.one("ports", f"port 25 (SMTP with STARTTLS) at 127.0.0.1:{ports.smtp}")
    assert smtp["detail"] == "STARTTLS is not offered after EHLO (mail would travel in clear text)"
    smtps = run.one("ports", f"port 465 (SMTP submission over implicit TLS) at 127.0.0.1:{closed}")
    assert smtps["detail"] == "connection refused: nothing listens there, or a firewall rejects it"
    assert smtps["fix"] == "allow TCP 465 in the host firewall and forward it from the router to the server"
    assert run.code == 1


class ScriptedServer:
    """A TCP server on loopback that runs `script(n, sock)` for its n-th connection, then waits for the client to close.

    `closed_by_client[n]` is True once connection n saw the client's close, False when it did not within 5 s.
    """

    def __init__(self, script: Callable[[int, socket.socket], None]) -> None:
        self.script = script
        self.closed_by_client: dict[int, bool] = {}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        for n in range(100):
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # stop() closed the listener
            threading.Thread(target=self._handle, args=(n, sock), daemon=True).start()

    def _handle(self, n: int, sock: socket.socket) -> None:
        sock.settimeout(5)
        with sock:
            try:
                self.script(n, sock)
                while sock.recv(4096):
                    pass
                self.closed_by_client[n] = True
            except OSError:
                self.closed_by_client.setdefault(n, False)

    def stop(self) -> None:
        self.listener.close()

    async def closed(self, n: int) -> bool:
        """Whether the client closed connection n, asked while the client's event loop still runs."""
        for _ in range(40):
            if n in self.closed_by_client:
                break
            await asyncio.sleep(0.05)
        return self.closed_by_client.get(n, False)


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[int, socket.socket], None]], ScriptedServer]]:
    with ExitStack() as stack:

        def start(script: Callable[[int, socket.socket], None]) -> ScriptedServer:
            server = ScriptedServer(script)
            stack.callback(server.stop)
            return server

        yield start


def test_a_stalled_certificate_refetch_keeps_the_tls_verdict_and_closes_its_socket(
    tmp_path: Path, scripted: Callable[..., ScriptedServer]
) -> None:
    """STARTTLS reaches an untrusted certificate; the unverified re-fetch then stalls after the greeting.

    The verdict is the certificate, not "no answer: a firewall drops the packets", and the stalled
    second connection is closed by verify, not left open until the event loop ends.
    """
    context = server_context(make_cert(tmp_path, "self-signed"))

    def script(n: int, sock: socket.socket) -> None:
        sock.sendall(b"220 mail ESMTP\r\n")
        if n > 0:
            return  # the re-fetch: greet, then never answer EHLO
        sock.recv(1024)
        sock.sendall(b"250-mail\r\n250 STARTTLS\r\n")
        sock.recv(1024)
        sock.sendall(b"220 go ahead\r\n")
        context.wrap_socket(sock, server_side=True)  # the client rejects the certificate: raises here

    server = scripted(script)

    async def scenario() -> tuple[Probe, bool]:
        probe = await probe_port("127.0.0.1", server.port, HOST, tls_context(None), starttls=True, timeout=1)
        return probe, await server.closed(1)

    probe, closed = asyncio.run(scenario())
    assert probe == Probe(greeting="mail ESMTP", tls_error="certificate not accepted: self-signed certificate")
    assert closed


def test_an_overlong_greeting_is_a_protocol_error(scripted: Callable[..., ScriptedServer]) -> None:
    """A line beyond asyncio's 64 KiB limit used to escape as ValueError and abort the whole run."""
    server = scripted(lambda n, sock: sock.sendall(b"220 " + b"x" * 100_000))
    probe = asyncio.run(probe_port("127.0.0.1", server.port, HOST, tls_context(None), starttls=True, timeout=1))
    assert probe == Probe(protocol_error="the server sent a line longer than 64 KiB without an end")


def test_a_tls_close_that_is_never_acknowledged_keeps_the_result(
    tmp_path: Path, scripted: Callable[..., ScriptedServer]
) -> None:
    """The server greets over TLS, then ignores the client's close_notify: the greeting still counts."""
    cert = make_cert(tmp_path, "good")
    context = server_context(cert)

    def script(n: int, sock: socket.socket) -> None:
        tls = context.wrap_socket(sock, server_side=True)
        tls.sendall(b"* OK IMAP\r\n")
        threading.Event().wait(3)  # holds the connection without reading the close_notify

    server = scripted(script)
    probe = asyncio.run(
        probe_port("127.0.0.1", server.port, HOST, tls_context(str(cert.cert)), starttls=False, timeout=1)
    )
    assert (probe.connect_error, probe.greeting, probe.tls_error) == ("", "* OK IMAP", "")
    assert probe.not_after is not None


# -- could not check -----------------------------------------------------------------------------


def test_no_nameserver_answers_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens on the given nameserver and resolver: every check is `error`, exit 2."""
    data, _ = good_stack()
    dead = f"127.0.0.9:{free_port('127.0.0.9')}"
    run = run_verify(tmp_path, capsys, data, "--resolver", dead, "--nameserver", dead, "--skip", "ports")
    assert set(run.statuses().values()) == {"error"}
    # The ICMP "port unreachable" reaches the connected UDP socket: no need to wait for a timeout.
    assert run.one("nameservers", "NS example.com")["detail"] == f"no nameserver answered: {dead}: Connection refused"
    assert run.code == 2


def data_domains(data: Mapping[str, Any]) -> set[str]:
    return {r["zone"] for r in data["dnsRecords"] if r["type"] == "MX"}


def test_a_crashing_check_is_an_error_finding_not_a_lost_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, knot: Callable[..., KnotServer]
) -> None:
    """A bug in one check group leaves the others' results and means "could not check" (exit 2)."""
    from mailstack.verify.groups import Checks

    async def broken(self: Checks, domain: str) -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(Checks, "check_spf", broken)
    data, zones = good_stack()
    server = knot(zones)
    at = f"{server.address}:{server.port}"
    run = run_verify(tmp_path, capsys, data, "--resolver", at, "--nameserver", at, "--skip", "ports,ptr")
    crashed = [f for f in run.findings if f["status"] == "error"]
    assert sorted((f["domain"], f["check"], f["detail"]) for f in crashed) == [
        (domain, "spf", "the check crashed: RuntimeError: boom") for domain in sorted(data_domains(data))
    ]
    assert run.one("dmarc", "DMARC example.com")["status"] == "ok"
    assert run.code == 2


def test_unreadable_outputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert verify.main(["--outputs", str(tmp_path / "bad.json"), "--resolver", "127.0.0.1"]) == 2
    assert capsys.readouterr().err.startswith("mailstack verify: error: outputs are not JSON: ")
    (tmp_path / "wrong.json").write_text(json.dumps({"hostname": "", "publicIPv4": "::1", "dnsRecords": {}}))
    assert verify.main(["--outputs", str(tmp_path / "wrong.json"), "--resolver", "127.0.0.1"]) == 2
    assert capsys.readouterr().err == (
        "mailstack verify: error: stack outputs are not usable:\n"
        "  - `hostname` must be a non-empty string\n"
        "  - `publicIPv4` must be an IPv4 address: '::1'\n"
        "  - `dnsRecords` must be a list\n"
    )


def test_stack_outputs_through_the_pulumi_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, knot: Callable[..., KnotServer]
) -> None:
    """`--stack prod` runs `pulumi stack output --json --stack prod` (a stand-in script on PATH here)."""
    data, zones = good_stack()
    server = knot(zones)
    (tmp_path / "outputs.json").write_text(json.dumps(data))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat {tmp_path}/outputs.json\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    code = verify.main(["--stack", "prod", "--json", *dns_args(server), "--skip", "ports"])
    assert json.loads(capsys.readouterr().out)["exit_code"] == 0
    assert code == 0
    assert (tmp_path / "argv").read_text() == "stack output --json --stack prod\n"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert verify.main(["--stack", "prod", "--resolver", "127.0.0.1"]) == 2
    assert capsys.readouterr().err == (
        "mailstack verify: error: the Pulumi CLI is not installed here; run"
        " `pulumi stack output --json --stack prod > outputs.json` where it is,"
        " then `python -m mailstack.verify --outputs outputs.json`\n"
    )


def _short(key: str) -> str:
    return f"{key[:10]}…{key[-10:]}"


def test_command_line_report(tmp_path: Path, knot: Callable[..., KnotServer]) -> None:
    """`python -m mailstack.verify` as a user runs it, piped: the exact report at 80 and at 200 columns.

    One summary line per domain; each problem with its details wrapped to the width and its fix on
    one line that is never wrapped (copyable whole); `-q` drops the summaries of domains without
    problems; `--all` adds the OK lines.
    """
    data, zones = good_stack()
    old, new = dkim_key(1), dkim_key()
    published = [
        {**r, "content": f"v=DKIM1; k=rsa; p={old}"} if r["name"] == "mail._domainkey.another.com" else r
        for r in data["dnsRecords"]
        if r["name"] != "_dmarc.another.com"
    ]
    zones["another.com"] = zone("another.com", published)
    server = knot(zones)
    (tmp_path / "outputs.json").write_text(json.dumps(data))

    def run(columns: int, *flags: str) -> tuple[int, str]:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "mailstack.verify", "--outputs", str(tmp_path / "outputs.json"), *flags),
                *(*dns_args(server), "--skip", "ports", "--timeout", "1"),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": str(columns)},
            timeout=60,
            check=False,
        )
        return result.returncode, re.sub(r" in \d+\.\d\d s: ", " in T s: ", result.stdout)

    dmarc_fix = 'publish _dmarc.another.com. 3600 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"'
    key_fix = f"publish mail._domainkey.another.com. 3600 IN TXT {quoted(f'v=DKIM1; k=rsa; p={new}')}"
    head = [
        "example.com: 15 ok",
        "another.com: 2 missing, 2 different, 10 ok",
        "  missing  records: TXT _dmarc.another.com",
        "      not published at any nameserver",
        f"      fix: {dmarc_fix}",
        "  different  records: TXT mail._domainkey.another.com",
    ]
    tail = [
        f"      fix: {key_fix}",
        "  missing  dmarc: DMARC another.com",
        "      no v=DMARC1 record at _dmarc.another.com",
        f"      fix: {dmarc_fix}",
        "mail.example.com: 6 ok",
        "31 ok, 2 missing, 2 different in T s: something is wrong: apply the fixes above (exit 1)",
    ]
    replacing = f"      fix: {key_fix} (replacing v=DKIM1; k=rsa; p={old})"
    at_80 = [
        *head,
        "      nameservers publish v=DKIM1; k=rsa;",
        f"      p={old}",
        replacing,
        "  different  dkim: DKIM mail (mail._domainkey.another.com)",
        f"      published p={_short(old)} but the server signs with",
        f"      p={_short(new)}: signatures fail",
        *tail,
    ]
    at_200 = [
        *head,
        "      nameservers publish v=DKIM1; k=rsa;",  # the 392-character key fits no line: it gets its own
        f"      p={old}",
        replacing,
        "  different  dkim: DKIM mail (mail._domainkey.another.com)",
        f"      published p={_short(old)} but the server signs with p={_short(new)}: signatures fail",
        *tail,
    ]
    assert run(80) == (1, "\n".join(at_80) + "\n")
    assert run(200) == (1, "\n".join(at_200) + "\n")
    code, quiet = run(200, "--quiet")
    assert (code, quiet.splitlines()) == (
        1,
        [line for line in at_200 if line not in ("example.com: 15 ok", "mail.example.com: 6 ok")],
    )
    code, everything = run(200, "--all")
    lines = everything.splitlines()
    assert code == 1
    assert len(lines) == len(at_200) + 31  # one line per OK check at 200 columns
    assert lines[:3] == [
        "example.com: 15 ok",
        f"  ok  nameservers: NS example.com: ns1.example.com (127.0.0.2:{server.port}) serial 1",
        "  ok  records: MX example.com: at 1 nameserver(s)",
    ]


def test_knot_server_reload_and_stop(knot: Callable[..., KnotServer]) -> None:
    """The fixture server itself: replace_zones swaps content (same serial), stop frees the port."""
    import dns.message
    import dns.query

    server = knot({"example.com": zone("example.com", extra=['@ TXT "one"'])})
    query = dns.message.make_query("example.com", "TXT")

    def txt() -> list[str]:
        answer = dns.query.udp(query, server.address, port=server.port, timeout=2).answer
        return [r.to_text() for rrset in answer for r in rrset]

    assert txt() == ['"one"']
    server.replace_zones({"example.com": zone("example.com", extra=['@ TXT "two"']), "b.test": zone("b.test")})
    assert txt() == ['"two"']
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((server.address, server.port))


def test_truncated_answers_are_asked_again_over_tcp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A TXT set larger than the EDNS payload (1232): knotd truncates the UDP answer, verify asks over TCP."""
    data, zones = good_stack()
    big = "site-verification=" + "x" * 3000
    extra = {"zone": "example.com", "name": "example.com", "type": "TXT", "content": big, "ttl": 3600}
    data["dnsRecords"].append({**extra, "priority": None, "purpose": "a provider's verification"})
    zones["example.com"] = zone("example.com", data["dnsRecords"])
    with KnotServer(zones, address=NS1, stats=True) as server:
        result = run_verify(tmp_path, capsys, data, *dns_args(server), "--skip", "ports")
        counts = server.request_counts()
    assert result.code == 0, result.problems()
    finding = next(f for f in result.findings if f["subject"] == "TXT example.com" and f["expected"] == big)
    assert finding["status"] == "ok"
    # The TXT at example.com is asked at the nameserver and at the resolver: both over TCP after UDP.
    assert counts.get("tcp4", 0) >= 2, counts
