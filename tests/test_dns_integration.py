"""The stack's zone files in real DNS software: kzonecheck loads them, knotd serves them, and DKIM, SPF and
DMARC are evaluated by dkimpy, pyspf and checkdmarc through real queries to that server.

Nothing here is mocked on the DNS side: every lookup is a UDP (or TCP) query to a knotd process on
loopback serving the `zoneFile` output of the stack, with the DKIM private key the stack generated.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import checkdmarc.dmarc
import checkdmarc.utils
import dkim
import dns.message
import dns.query
import dns.rdatatype
import dns.resolver
import pytest
import spf

from mailstack.config.records import RecordSpec
from mailstack.config.zonefile import render_zone_files
from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, prod_config_values, require_tool
from tests.dnsserver import KnotServer
from tests.harness import ROOT, RunResult, plain, run_program, stack_config

pytestmark = pytest.mark.integration

DNS_PROGRAM = ROOT / "tests" / "programs" / "mail_dns.py"
MESSAGE = (
    b"From: Postmaster <postmaster@{domain}>\r\n"
    b"To: someone@example.net\r\n"
    b"Subject: mailstack DKIM check\r\n"
    b"Message-ID: <1@{domain}>\r\n"
    b"\r\n"
    b"Signed with the key the stack generated, verified against the record it publishes.\r\n"
)


def stack_run(stack: str) -> RunResult:
    if stack == "dev":
        result = run_program(stack_config(DEV_STACK), stack="dev", program=DNS_PROGRAM)
    else:
        result = run_program(prod_config_values(), PROD_SECRET_KEYS, stack="prod", program=DNS_PROGRAM)
    assert result.error is None, result.error
    return result


def private_key(result: RunResult, domain: str, selector: str = "mail") -> bytes:
    reg = result.named(f"dkim-{selector}-{domain}")
    return str(plain(reg.state["privateKeyPem"])).encode()


@pytest.fixture(autouse=True)
def _fresh_checkdmarc_cache() -> None:
    """checkdmarc caches answers by name alone, across servers; every test must ask its own server."""
    checkdmarc.utils.DNS_CACHE.clear()


@pytest.fixture(scope="module")
def dev() -> RunResult:
    return stack_run("dev")


@pytest.fixture(scope="module")
def prod() -> RunResult:
    return stack_run("prod")


@pytest.fixture(scope="module")
def dev_server(dev: RunResult) -> Iterator[KnotServer]:
    require_tool("knotd")
    with KnotServer(dev.plain_outputs["zoneFile"], address="127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def prod_server(prod: RunResult) -> Iterator[KnotServer]:
    require_tool("knotd")
    with KnotServer(prod.plain_outputs["zoneFile"], address="127.0.0.1") as server:
        yield server


def ask(server: KnotServer, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    response, _ = dns.query.udp_with_fallback(query, server.address, port=server.port, timeout=3)
    return response


def dkim_dnsfunc(server: KnotServer) -> Callable[..., bytes | None]:
    """dkimpy's TXT lookup (dkim.dnsplug.get_txt), answered by the knot server."""

    def get_txt(name: bytes | str, timeout: int = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        for rrset in ask(server, text, "TXT").answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None

    return get_txt


def spf_lookup(server: KnotServer) -> Callable[..., list[tuple[tuple[str, str], Any]]]:
    """pyspf's DNSLookup(name, qtype, strict, timeout), answered by the knot server (same result shapes)."""

    def lookup(name: Any, qtype: str, strict: bool = True, timeout: int = 20) -> list[tuple[tuple[str, str], Any]]:
        out: list[tuple[tuple[str, str], Any]] = []
        for rrset in ask(server, str(name), qtype).answer:
            owner = rrset.name.to_text(omit_final_dot=True)
            kind = dns.rdatatype.to_text(rrset.rdtype)
            for rdata in rrset:
                if kind in ("A", "AAAA"):
                    out.append(((owner, kind), rdata.address))
                elif kind == "MX":
                    out.append(((owner, kind), (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))))
                elif kind == "TXT":
                    out.append(((owner, kind), rdata.strings))
                elif kind == "CNAME":
                    out.append(((owner, kind), rdata.target.to_text(omit_final_dot=True)))
        return out

    return lookup


def resolver_for(server: KnotServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.address]
    resolver.port = server.port
    return resolver


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_zone_files_pass_kzonecheck(stack: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    kzonecheck = require_tool("kzonecheck")
    result: RunResult = request.getfixturevalue(stack)
    zones = result.plain_outputs["zoneFile"]
    assert sorted(zones) == (["example.test"] if stack == "dev" else ["another.com", "example.com"])
    for zone, text in zones.items():
        path = tmp_path / f"{zone}.zone"
        path.write_text(text)
        check = subprocess.run([kzonecheck, "-o", zone, str(path)], capture_output=True, text=True, check=False)
        assert (check.returncode, check.stdout, check.stderr) == (0, "", ""), text


def test_knot_serves_every_exported_record(prod: RunResult, prod_server: KnotServer) -> None:
    for record in prod.plain_outputs["dnsRecords"]:
        response = ask(prod_server, record["name"], record["type"])
        values = [
            r for rrset in response.answer for r in rrset if dns.rdatatype.to_text(rrset.rdtype) == record["type"]
        ]
        if record["type"] == "TXT":
            assert record["content"] in [b"".join(v.strings).decode() for v in values], record
        elif record["type"] == "MX":
            assert (record["priority"], record["content"] + ".") in [
                (v.preference, v.exchange.to_text()) for v in values
            ]
        elif record["type"] == "SRV":
            weight, port, target = record["content"].split()
            assert (record["priority"], int(weight), int(port), target.rstrip(".") + ".") in [
                (v.priority, v.weight, v.port, v.target.to_text()) for v in values
            ]
        else:
            assert record["content"] in [v.to_text() for v in values], record


@pytest.mark.parametrize(
    ("stack", "domain"), [("dev", "example.test"), ("prod", "example.com"), ("prod", "another.com")]
)
def test_dkim_signature_verifies_against_the_served_key(
    stack: str, domain: str, request: pytest.FixtureRequest
) -> None:
    result: RunResult = request.getfixturevalue(stack)
    server: KnotServer = request.getfixturevalue(f"{stack}_server")
    message = MESSAGE.replace(b"{domain}", domain.encode())
    signature = dkim.sign(
        message,
        selector=b"mail",
        domain=domain.encode(),
        privkey=private_key(result, domain),
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    assert dkim.verify(signature + message, dnsfunc=dkim_dnsfunc(server))
    # The same signature over an altered body must fail: the check is not vacuous.
    assert not dkim.verify(signature + message.replace(b"Signed", b"Forged"), dnsfunc=dkim_dnsfunc(server))


def test_dkim_key_of_another_domain_does_not_verify(prod: RunResult, prod_server: KnotServer) -> None:
    message = MESSAGE.replace(b"{domain}", b"example.com")
    signature = dkim.sign(message, selector=b"mail", domain=b"example.com", privkey=private_key(prod, "another.com"))
    assert not dkim.verify(signature + message, dnsfunc=dkim_dnsfunc(prod_server))


def test_spf_passes_the_server_and_fails_a_foreign_host(
    dev_server: KnotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spf, "DNSLookup", spf_lookup(dev_server))
    own = spf.check2(i="127.0.0.1", s="postmaster@example.test", h="mail.example.test")
    foreign = spf.check2(i="192.0.2.99", s="postmaster@example.test", h="attacker.example")
    assert own[0] == "pass"
    assert foreign[0] == "fail"


def test_spf_passes_the_prod_server_by_its_mx(prod_server: KnotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mx` matches before the includes, whose providers are not reachable offline."""
    monkeypatch.setattr(spf, "DNSLookup", spf_lookup(prod_server))
    assert spf.check2(i="93.184.215.14", s="me@another.com", h="mail.example.com")[0] == "pass"


def test_dmarc_parses_through_the_server(dev_server: KnotServer) -> None:
    record = checkdmarc.dmarc.get_dmarc_record("example.test", resolver=resolver_for(dev_server))
    assert record["record"] == "v=DMARC1; p=none; rua=mailto:postmaster@example.test"
    assert record["location"] == "example.test"
    tags = record["parsed"]["tags"]
    assert tags["p"]["value"] == "none"
    assert [uri["address"] for uri in tags["rua"]["value"]] == ["postmaster@example.test"]


def test_dmarc_reports_to_another_domain_are_authorised(prod_server: KnotServer) -> None:
    """checkdmarc verifies `another.com._report._dmarc.example.com` (RFC 7489 §7.1) through the server."""
    record = checkdmarc.dmarc.get_dmarc_record("another.com", resolver=resolver_for(prod_server))
    assert record["record"] == (
        "v=DMARC1; p=none; sp=reject; rua=mailto:dmarc@example.com; ruf=mailto:dmarc@example.com; ri=86400"
    )
    tags = record["parsed"]["tags"]
    assert (tags["p"]["value"], tags["sp"]["value"]) == ("none", "reject")
    # `ri` is the example's (the how-to's) choice; RFC 9989 dropped it and readers ignore it.
    assert "Support for the ri tag was removed in RFC 9989" in record["parsed"]["warnings"]
    assert not [w for w in record["parsed"]["warnings"] if "Authorization record not found" in w]
    assert [uri["address"] for uri in tags["rua"]["value"]] == ["dmarc@example.com"]
    assert [uri["address"] for uri in tags["ruf"]["value"]] == ["dmarc@example.com"]


def test_without_the_authorisation_record_checkdmarc_warns(prod: RunResult) -> None:
    """Negative control: the same zones minus `another.com._report._dmarc.example.com`."""
    kept = [RecordSpec(**r) for r in prod.plain_outputs["dnsRecords"] if "._report._dmarc." not in r["name"]]
    zones = render_zone_files(kept, stack="prod", provider="cloudflare")
    with KnotServer(zones, address="127.0.0.1") as server:
        record = checkdmarc.dmarc.get_dmarc_record("another.com", resolver=resolver_for(server))
    missing = (
        "example.com does not indicate that it accepts DMARC reports about another.com - Authorization record "
        'not found: another.com._report._dmarc.example.com IN TXT "v=DMARC1"'
    )
    # Once for rua and once for ruf.
    assert [w for w in record["parsed"]["warnings"] if "Authorization record" in w] == [missing, missing]
