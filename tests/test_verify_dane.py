"""verify's DANE and DNSSEC checks: TLSA from knotd (signing its zones itself), validation by a real
Unbound, and the key a real STARTTLS listener (aiosmtpd) presents on "port 25"."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailstack import verify
from tests import test_verify
from tests.dnsserver import KnotServer
from tests.resolver import Unbound
from tests.test_verify import Cert, MailPorts, make_cert
from tests.verify_zones import HOST, NS1, good_stack, record, zone

pytestmark = pytest.mark.integration

TLSA_NAME = f"_25._tcp.{HOST}"
# The loopback guard and the mail-port listeners of tests/test_verify.py, as this module's fixtures.
loopback_only = test_verify.loopback_only
mail_ports = test_verify.mail_ports
SKIP = "records,spf,dkim,dmarc,mx,ptr,ports,mta-sts,autoconfig"


def tlsa_311(cert: Cert) -> str:
    key = x509.load_pem_x509_certificate(cert.cert.read_bytes()).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "3 1 1 " + hashlib.sha256(spki).hexdigest()


@pytest.fixture
def world() -> Iterator[Callable[..., tuple[dict[str, Any], Unbound]]]:
    """The good stack plus a TLSA record, served by knotd, validated by Unbound for the `signed` zones."""
    with ExitStack() as stack:

        def start(tlsa: str | None, signed: frozenset[str]) -> tuple[dict[str, Any], Unbound]:
            """`tlsa`: the TLSA value served (and expected); None: expected but not served."""
            data, _ = good_stack()
            expected = record("example.com", TLSA_NAME, "TLSA", tlsa or "3 1 1 " + "00" * 32)
            served = [*data["dnsRecords"], *([expected] if tlsa else [])]
            data["dnsRecords"].append(expected)
            zones = {z: zone(z, served) for z in ("example.com", "another.com")}
            ns = stack.enter_context(KnotServer(zones, address=NS1, signed=signed))
            anchors = [k for z in sorted(signed) for k in ns.dnskey(z) if " DNSKEY 257 " in k]
            resolver = stack.enter_context(Unbound(ns, ["example.com", "another.com"], anchors=anchors))
            return data, resolver

        yield start


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any], resolver: Unbound, ports: MailPorts
) -> tuple[int, dict[tuple[str, str], dict[str, Any]]]:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    code = verify.main(
        [
            "--outputs",
            str(path),
            "--json",
            "--timeout",
            "3",
            "--skip",
            SKIP,
            "--resolver",
            f"{resolver.address}:{resolver.port}",
            *ports.args(),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    return code, {(f["check"], f["subject"]): f for f in report["findings"]}


def subjects(ports: MailPorts) -> dict[tuple[str, str], str]:
    return {
        ("dane", f"TLSA {TLSA_NAME} vs the certificate on port 25 at 127.0.0.1:{ports.smtp}"): "ok",
        ("dnssec", "DNSSEC MX example.com"): "ok",
        ("dnssec", "DNSSEC MX another.com"): "ok",
        ("dnssec", f"DNSSEC TLSA {TLSA_NAME}"): "ok",
    }


def test_matching_tlsa_in_signed_zones_is_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], world: Callable[..., Any], mail_ports: Callable[..., MailPorts]
) -> None:
    cert = make_cert(tmp_path, "dane")
    ports = mail_ports(cert)
    data, resolver = world(tlsa_311(cert), frozenset({"example.com", "another.com"}))
    code, findings = run(tmp_path, capsys, data, resolver, ports)
    assert {k: f["status"] for k, f in findings.items()} == subjects(ports)
    assert code == 0
    dane = findings[next(k for k in findings if k[0] == "dane")]
    assert dane["detail"] == f"3 1 1 {tlsa_311(cert)[6:22]}… matches the server's key"


def test_an_unsigned_zone_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], world: Callable[..., Any], mail_ports: Callable[..., MailPorts]
) -> None:
    cert = make_cert(tmp_path, "dane")
    ports = mail_ports(cert)
    data, resolver = world(tlsa_311(cert), frozenset({"example.com"}))
    code, findings = run(tmp_path, capsys, data, resolver, ports)
    expected = subjects(ports) | {("dnssec", "DNSSEC MX another.com"): "fail"}
    assert {k: f["status"] for k, f in findings.items()} == expected
    assert code == 1
    assert findings[("dnssec", "DNSSEC MX another.com")]["detail"] == (
        f"not validated by {resolver.address}:{resolver.port} (NOERROR, AD bit clear): DANE senders ignore the TLSA record"
    )


def test_a_tlsa_for_another_key_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], world: Callable[..., Any], mail_ports: Callable[..., MailPorts]
) -> None:
    served, other = make_cert(tmp_path, "served"), make_cert(tmp_path, "next")
    ports = mail_ports(served)
    data, resolver = world(tlsa_311(other), frozenset({"example.com", "another.com"}))
    code, findings = run(tmp_path, capsys, data, resolver, ports)
    key = next(k for k in findings if k[0] == "dane")
    assert (code, findings[key]["status"]) == (1, "fail")
    assert findings[key]["expected"] == tlsa_311(served)
    assert findings[key]["found"] == [tlsa_311(other)]


def test_no_tlsa_served_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], world: Callable[..., Any], mail_ports: Callable[..., MailPorts]
) -> None:
    cert = make_cert(tmp_path, "dane")
    ports = mail_ports(cert)
    data, resolver = world(None, frozenset({"example.com", "another.com"}))
    code, findings = run(tmp_path, capsys, data, resolver, ports)
    key = next(k for k in findings if k[0] == "dane")
    assert (code, findings[key]["status"], findings[key]["fix"]) == (
        1,
        "missing",
        f"publish {TLSA_NAME} TLSA {tlsa_311(cert)}",
    )
