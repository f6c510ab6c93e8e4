"""DANE for inbound SMTP (RFC 7672): the TLSA records at `_25._tcp.<hostname>` against the key the
server presents on port 25 after STARTTLS."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

from mailstack.verify.findings import Finding, Status
from mailstack.verify.probes import presented_certificate

if TYPE_CHECKING:
    from mailstack.verify.groups import Checks

CHECK = "dane"


def tlsa_name(hostname: str) -> str:
    return f"_25._tcp.{hostname}"


def spki_sha256(der_cert: bytes) -> str:
    """`3 1 1` association data: SHA-256 of the certificate's SubjectPublicKeyInfo (RFC 6698 §2.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_der_x509_certificate(der_cert).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def parse_tlsa(text: str) -> tuple[int, int, int, str] | None:
    """`3 1 1 ab12…` → (3, 1, 1, 'ab12…'); None for text that is not a TLSA value."""
    fields = text.split()
    if len(fields) < 4 or not all(f.isdigit() for f in fields[:3]):
        return None
    return int(fields[0]), int(fields[1]), int(fields[2]), "".join(fields[3:]).lower()


def judge(hostname: str, where: str, tlsa: list[str], der: bytes | None, error: str) -> Finding:
    subject = f"TLSA {tlsa_name(hostname)} vs the certificate on port 25 at {where}"
    if der is None:
        return Finding(hostname, CHECK, subject, Status.FAIL, f"no certificate read: {error}", "check port 25 first")
    digest = spki_sha256(der)
    ee = [p for p in (parse_tlsa(t) for t in tlsa) if p is not None and p[:3] == (3, 1, 1)]
    if not tlsa:
        return Finding(
            hostname,
            CHECK,
            subject,
            Status.MISSING,
            "no TLSA record at the resolver",
            f"publish {tlsa_name(hostname)} TLSA 3 1 1 {digest}",
        )
    if any(p[3] == digest for p in ee):
        return Finding(hostname, CHECK, subject, Status.OK, f"3 1 1 {digest[:16]}… matches the server's key")
    # RFC 7672 §2.2: a DANE sender finding TLSA records none of which matches does not deliver.
    return Finding(
        hostname,
        CHECK,
        subject,
        Status.FAIL,
        f"the server's key is 3 1 1 {digest}; published: {', '.join(tlsa)}; DANE senders would not deliver",
        "publish the key's TLSA before the server uses it (docs/dns.md, DANE rollover); `pulumi up`",
        expected=f"3 1 1 {digest}",
        found=tuple(tlsa),
    )


async def check(checks: Checks) -> list[Finding]:
    hostname = checks.outputs.hostname
    reply = await checks.resolve(tlsa_name(hostname), "TLSA")
    if reply.error:
        subject = f"TLSA {tlsa_name(hostname)}"
        return [Finding(hostname, CHECK, subject, Status.ERROR, f"resolver lookup failed: {reply.error}")]
    tlsa = [v.text for v in reply.values]
    port = checks.options.port_map.get(25, 25)
    addresses = checks.options.addresses or checks.outputs.ips
    results = await asyncio.gather(
        *(presented_certificate(a, port, hostname, starttls=True, timeout=checks.options.timeout) for a in addresses)
    )
    return [
        judge(hostname, f"{a}:{port}" if ":" not in a else f"[{a}]:{port}", tlsa, der, error)
        for a, (der, error) in zip(addresses, results, strict=True)
    ]
