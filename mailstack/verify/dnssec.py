"""DNSSEC as the resolver sees it: the AD bit (RFC 4035 §3.2.3) on the answers DANE depends on.

RFC 7672 §2.2: a sender uses DANE only when both the MX RRset and the TLSA RRset validate, so a
DANE stack is checked on every mail domain's MX and on the hostname's TLSA. The resolver must
validate: its AD bit says it did (RFC 6840 §5.7: a query with AD set asks for it without DO).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailstack.verify.findings import Finding, Status

if TYPE_CHECKING:
    from mailstack.verify.groups import Checks

CHECK = "dnssec"


async def authenticated(checks: Checks, name: str, rdtype: str) -> tuple[bool | None, str]:
    """(AD bit, rcode text), or (None, error) when the resolver did not answer."""
    # dnspython here rather than the wire reader of dnsclient: one query per name, and it is the
    # header flag, not the records, that matters.
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode

    query = dns.message.make_query(name, rdtype)
    query.flags |= dns.flags.AD
    resolver = checks.options.resolver
    try:
        response = await dns.asyncquery.udp(query, resolver.host, timeout=checks.options.timeout, port=resolver.port)
    except (dns.exception.DNSException, OSError) as e:
        return None, f"{type(e).__name__}: {e}"
    return bool(response.flags & dns.flags.AD), dns.rcode.to_text(response.rcode())


def judge(group: str, name: str, rdtype: str, ad: bool | None, *, detail: str, resolver: str) -> Finding:
    subject = f"DNSSEC {rdtype} {name}"
    if ad is None:
        return Finding(group, CHECK, subject, Status.ERROR, f"resolver {resolver} did not answer: {detail}")
    if ad:
        return Finding(group, CHECK, subject, Status.OK, f"validated by {resolver} (AD bit set)")
    return Finding(
        group,
        CHECK,
        subject,
        Status.FAIL,
        f"not validated by {resolver} ({detail}, AD bit clear): DANE senders ignore the TLSA record",
        "sign the zone (mailstack:dane manages it at Cloudflare) and publish its DS record at the registrar "
        "(`pulumi stack output dnssecDs`); or use a validating resolver (--resolver)",
    )


async def check(checks: Checks, group: str, name: str, rdtype: str) -> list[Finding]:
    ad, detail = await authenticated(checks, name, rdtype)
    return [judge(group, name, rdtype, ad, detail=detail, resolver=str(checks.options.resolver))]
