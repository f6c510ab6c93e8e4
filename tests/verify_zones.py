"""What a stack says for its mail domains, and the zone texts that publish exactly that.

Shared by tests/test_verify.py (knotd serves these zones on loopback) and
benchmarks/verify_vs_checkdmarc.py (100 generated domains). Zone lines are written here by hand,
independently of verify's own record code, so a bug there cannot hide in both.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import dns.reversename
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HOST = "mail.example.com"
IPV4 = "203.0.113.25"
IPV6 = "2001:db8::25"
NS1 = "127.0.0.2"
NS2 = "127.0.0.3"
TTL = 3600


@functools.cache
def dkim_key(seed: int = 0) -> str:
    """A real 2048-bit RSA public key, base64 SubjectPublicKeyInfo as OpenDKIM publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def record(
    zone: str, name: str, rtype: str, content: str, priority: int | None = None, *, purpose: str = ""
) -> dict[str, Any]:
    return {
        "zone": zone,
        "name": name,
        "type": rtype,
        "content": content,
        "priority": priority,
        "ttl": TTL,
        "purpose": purpose,
    }


def domain_records(
    domain: str,
    *,
    key: str | None = None,
    spf: str = "v=spf1 mx -all",
    dmarc: str | None = None,
    selector: str = "mail",
) -> list[dict[str, Any]]:
    """What the stack outputs for one mail domain (same shapes as the real dnsRecords output)."""
    return [
        record(domain, domain, "MX", HOST, 10, purpose="inbound mail goes to the server"),
        record(domain, domain, "TXT", spf, purpose="SPF"),
        record(
            domain, f"{selector}._domainkey.{domain}", "TXT", f"v=DKIM1; k=rsa; p={key or dkim_key()}", purpose="DKIM"
        ),
        record(domain, f"_dmarc.{domain}", "TXT", dmarc or f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"),
        record(domain, f"_submissions._tcp.{domain}", "SRV", f"1 465 {HOST}", 0, purpose="RFC 8314 submission"),
        record(domain, f"_imaps._tcp.{domain}", "SRV", f"1 993 {HOST}", 0, purpose="RFC 6186 IMAP"),
        record(domain, f"_submission._tcp.{domain}", "SRV", "0 0 .", 0, purpose="plaintext submission disabled"),
    ]


def host_records(ipv4: str = IPV4, ipv6: str = IPV6) -> list[dict[str, Any]]:
    return [record("example.com", HOST, "A", ipv4), record("example.com", HOST, "AAAA", ipv6)]


def outputs(records: Sequence[Mapping[str, Any]], ipv4: str | None = IPV4, ipv6: str | None = IPV6) -> dict[str, Any]:
    return {"hostname": HOST, "publicIPv4": ipv4, "publicIPv6": ipv6, "dnsRecords": list(records)}


def quoted(text: str) -> str:
    """TXT rdata in zone syntax, split into 255-byte strings as a DNS host does."""
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))


def rr(rec: Mapping[str, Any]) -> str:
    """One output record as a zone-file line (written here by hand, independently of verify's code)."""
    name, rtype, content = rec["name"], rec["type"], rec["content"]
    if rtype == "TXT":
        data = quoted(content)
    elif rtype == "MX":
        data = f"{rec['priority']} {content}."
    elif rtype == "SRV":
        weight, port, target = content.split()
        data = f"{rec['priority']} {weight} {port} {target if target == '.' else target + '.'}"
    else:
        data = content
    return f"{name}. {TTL} IN {rtype} {data}"


def zone(
    origin: str,
    records: Sequence[Mapping[str, Any]] = (),
    *,
    ns: Sequence[tuple[str, str]] = (("ns1", NS1),),
    serial: int = 1,
    extra: Sequence[str] = (),
) -> str:
    """Zone text: SOA, NS with glue inside the zone, the records of this zone, extra lines."""
    lines = [
        f"$ORIGIN {origin}.",
        "$TTL 300",
        f"@ SOA {ns[0][0]} hostmaster {serial} 3600 600 86400 300",
        *(f"@ NS {name}" for name, _ in ns),
        *(f"{name} A {address}" for name, address in ns),
        *(rr(r) for r in records if r["zone"] == origin),
        *extra,
    ]
    return "\n".join(lines) + "\n"


def reverse_zones(ptr: str = HOST) -> dict[str, str]:
    """PTR zones for IPV4 and IPV6."""
    v4 = dns.reversename.from_address(IPV4).to_text()
    v6 = dns.reversename.from_address(IPV6).to_text()
    return {
        "113.0.203.in-addr.arpa": zone("113.0.203.in-addr.arpa", extra=[f"{v4} PTR {ptr}."]),
        "8.b.d.0.1.0.0.2.ip6.arpa": zone("8.b.d.0.1.0.0.2.ip6.arpa", extra=[f"{v6} PTR {ptr}."]),
    }


def good_stack() -> tuple[dict[str, Any], dict[str, str]]:
    """Two mail domains; another.com sends DMARC reports to example.com, which authorizes them."""
    example = domain_records("example.com")
    another = domain_records("another.com", dmarc="v=DMARC1; p=reject; rua=mailto:dmarc@example.com")
    authorization = record("example.com", "another.com._report._dmarc.example.com", "TXT", "v=DMARC1")
    records = [*example, *host_records(), authorization, *another]
    zones = {"example.com": zone("example.com", records), "another.com": zone("another.com", records)}
    return outputs(records), {**zones, **reverse_zones()}
