"""verify's own DNS wire reading, resolv.conf reading and text report, against dnspython and by hand.

verify reads responses itself (mailstack.verify.dnsclient) for speed; every value it produces must be
exactly what dnspython's parsing gave before (Value.of on dnspython rdata), which these tests
check on messages that dnspython renders, with name compression, escapes and mixed case.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest

from mailstack.verify import InputError, system_resolver
from mailstack.verify.dnsclient import Endpoint, answer_values, name_wire, parse_response, query_wire
from mailstack.verify.findings import Finding, Status
from mailstack.verify.outputs import ExpectedRecord, StackOutputs
from mailstack.verify.report import render_text
from mailstack.verify.values import Value

ROOT = Path(__file__).resolve().parent.parent

VALUES = [
    ("TXT", '"v=spf1 mx -all"'),
    ("TXT", '"v=DKIM1; k=rsa; " "p=MIIB AQAB"'),
    ("TXT", '"a" "b\\255c" ""'),
    ("A", "192.0.2.1"),
    ("AAAA", "2001:db8::1"),
    ("AAAA", "::ffff:192.0.2.1"),
    ("MX", "10 Mail.Example.COM."),
    ("MX", "0 ."),
    ("SRV", "0 1 465 mail.example.com."),
    ("SRV", "0 0 0 ."),
    ("CNAME", 'we\\.ird\\032x\\(\\"y.example.com.'),
    ("PTR", "mail.example.com."),
    ("NS", "ns1.example.com."),
    ("SOA", "ns1.example.com. host\\.master.example.com. 2024010101 3600 600 86400 300"),
    ("CAA", '0 issue "letsencrypt.org"'),
]


def response_with(owner: str, rdtype: str, texts: list[str], *, question: str | None = None) -> bytes:
    query = dns.message.make_query(question or owner, rdtype, use_edns=0)
    response = dns.message.make_response(query)
    rdatas = [dns.rdata.from_text("IN", rdtype, t, origin=dns.name.root, relativize=False) for t in texts]
    response.answer.append(dns.rrset.from_rdata_list(owner, 300, rdatas))
    return response.to_wire()


@pytest.mark.parametrize(("rdtype", "text"), VALUES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(VALUES)])
def test_values_equal_dnspython(rdtype: str, text: str) -> None:
    rdata = dns.rdata.from_text("IN", rdtype, text, origin=dns.name.root, relativize=False)
    wire = response_with("Example.COM.", rdtype, [text], question="example.com.")
    values = answer_values(parse_response(wire), name_wire("example.com"), dns.rdatatype.from_text(rdtype))
    assert values == (Value.of(rdtype, rdata),)


def test_header_bits_rcode_and_question() -> None:
    query = dns.message.make_query("x.example.com", "TXT", use_edns=0)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA | dns.flags.TC
    response.set_rcode(dns.rcode.NXDOMAIN)
    parsed = parse_response(response.to_wire())
    assert (parsed.qid, parsed.authoritative, parsed.truncated, parsed.rcode) == (query.id, True, True, 3)
    assert parsed.answers(name_wire("X.Example.com."), dns.rdatatype.TXT)
    assert not parsed.answers(name_wire("x.example.com"), dns.rdatatype.MX)
    assert not parse_response(query.to_wire()).answers(name_wire("x.example.com"), dns.rdatatype.TXT)  # QR unset


def test_extended_rcode_from_opt() -> None:
    """RFC 6891 §6.1.3: the OPT TTL carries the upper 8 bits; BADVERS is 16."""
    query = dns.message.make_query("example.com", "A", use_edns=0)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.BADVERS)
    assert parse_response(response.to_wire()).rcode == 16


def test_cname_chain_is_followed_inside_the_answer() -> None:
    query = dns.message.make_query("www.example.com", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "CNAME", "Host.Example.net."))
    response.answer.append(dns.rrset.from_text("host.example.net.", 300, "IN", "A", "192.0.2.7", "192.0.2.8"))
    parsed = parse_response(response.to_wire())
    a = answer_values(parsed, name_wire("www.example.com"), dns.rdatatype.A)
    assert sorted(v.text for v in a) == ["192.0.2.7", "192.0.2.8"]
    cname = answer_values(parsed, name_wire("www.example.com"), dns.rdatatype.CNAME)
    assert [v.text for v in cname] == ["host.example.net"]
    assert answer_values(parsed, name_wire("other.example.com"), dns.rdatatype.A) == ()


def test_query_wire_is_what_dnspython_reads() -> None:
    wire = query_wire(4660, name_wire("Mail._domainkey.Example.com"), dns.rdatatype.TXT, recurse=False)
    message = dns.message.from_wire(wire)
    assert message.id == 4660
    assert message.question[0].name == dns.name.from_text("mail._domainkey.example.com")
    assert message.question[0].rdtype == dns.rdatatype.TXT
    assert not message.flags & dns.flags.RD
    assert (message.edns, message.payload) == (0, 1232)
    assert dns.message.from_wire(query_wire(1, name_wire("."), dns.rdatatype.NS, recurse=True)).flags & dns.flags.RD


@pytest.mark.parametrize(
    "wire",
    [
        b"\x00\x01\x81\x00",  # shorter than a header
        b"\x00\x01\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example",  # truncated question name
        b"\x00\x01\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # pointer to itself
        b"\x00\x01\x81\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x10\x00\x01\x00\x00\x00\x01\x00\x09\x02ab",
    ],
    ids=["short", "truncated-name", "pointer-loop", "rdata-past-the-end"],
)
def test_malformed_messages_are_form_errors(wire: bytes) -> None:
    with pytest.raises(dns.exception.FormError):
        parse_response(wire)


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError, match="bad label"):
        name_wire("a..b")
    with pytest.raises(ValueError, match="longer than 255"):
        name_wire(".".join(["a" * 63] * 5))
    assert name_wire("") == name_wire(".") == b"\x00"


# -- /etc/resolv.conf ----------------------------------------------------------------------------


def test_system_resolver_reads_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nsearch lan\nnameserver fe80::1%eth0\nnameserver   2001:db8::53 ; comment\nnameserver 192.0.2.53\n"
    )
    assert system_resolver(str(conf)) == Endpoint("fe80::1%eth0")  # a link-local resolver keeps its scope
    conf.write_text("nameserver not-an-address\nnameserver   2001:db8::53 ; comment\n")
    assert system_resolver(str(conf)) == Endpoint("2001:db8::53")
    conf.write_text("search lan\n")
    with pytest.raises(InputError, match=f"no nameserver in {conf}; pass --resolver"):
        system_resolver(str(conf))
    with pytest.raises(InputError, match="cannot read"):
        system_resolver(str(tmp_path / "missing"))


# -- the text report -----------------------------------------------------------------------------


def test_report_size_for_100_domains_is_a_line_per_domain_plus_the_problems() -> None:
    """8,728 lines at 80 columns before; now one summary per domain, and 3 lines per problem here."""
    domains = tuple(f"d{i:03d}.test" for i in range(100))
    outputs = StackOutputs("mail.example.com", "203.0.113.25", None, ())
    findings = [
        Finding(d, "records", f"TXT x{n}.{d}", Status.OK, "at 1 nameserver(s)") for d in domains for n in range(14)
    ]
    problems = [
        Finding(d, "dmarc", f"DMARC {d}", Status.MISSING, f"no v=DMARC1 record at _dmarc.{d}", f"publish _dmarc.{d}. …")
        for d in domains[:3]
    ]
    text = render_text([*findings, *problems], 1, _with_domains(outputs, domains), 0.5, width=80)
    lines = text.splitlines()
    assert len(lines) == 100 + 3 * 3 + 1
    assert lines[:4] == [
        "d000.test: 1 missing, 14 ok",
        "  missing  dmarc: DMARC d000.test",
        "      no v=DMARC1 record at _dmarc.d000.test",
        "      fix: publish _dmarc.d000.test. …",
    ]
    assert lines[-1] == "1400 ok, 3 missing in 0.50 s: something is wrong: apply the fixes above (exit 1)"
    assert len(
        render_text([*findings, *problems], 1, _with_domains(outputs, domains), 0.5, everything=True).splitlines()
    ) == (len(lines) + 1400)


def _with_domains(outputs: StackOutputs, domains: tuple[str, ...]) -> StackOutputs:
    """Outputs whose mail domains are `domains` (the report orders groups by them)."""
    records = tuple(ExpectedRecord(d, d, "MX", outputs.hostname, 10) for d in domains)
    return StackOutputs(outputs.hostname, outputs.ipv4, outputs.ipv6, records)


def test_verify_does_not_import_what_it_does_not_use() -> None:
    """Start-up is part of every run: dns.resolver/dns.query pull in DNS-over-HTTPS (httpx) and QUIC,
    rich rendered the old tables, cryptography.x509 is needed only for a rejected certificate."""
    code = "import sys, mailstack.verify; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, cwd=ROOT
    )
    loaded = set(result.stdout.split())
    assert "mailstack.verify.dnsclient" in loaded
    unwanted = {"dns.resolver", "dns.query", "dns.asyncquery", "dns.message", "rich", "cryptography.x509"}
    unwanted |= {"httpx", "httpx2", "httpcore", "httpcore2", "aioquic"}
    assert loaded & unwanted == set()


def test_a_name_past_its_record_data_is_a_form_error() -> None:
    response = dns.message.make_response(dns.message.make_query("example.com", "CNAME"))  # no EDNS: answer last
    response.answer.append(dns.rrset.from_text("example.com.", 300, "IN", "CNAME", "host.example.net."))
    wire = bytearray(response.to_wire())
    target = b"\x04host\x07example\x03net\x00"
    assert wire.endswith(target)
    # Shorten the record's RDLENGTH (the two bytes before its data) by 3: the name now runs past it.
    # The bytes stay in the message (trailing), so only the RDLENGTH bound can catch it.
    wire[-len(target) - 2 : -len(target)] = (len(target) - 3).to_bytes(2, "big")
    with pytest.raises(dns.exception.FormError):
        answer_values(parse_response(bytes(wire)), name_wire("example.com"), dns.rdatatype.CNAME)
