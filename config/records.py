"""DNS record specs for the mail domains: pure builders, one per record family, each record with its purpose.

Every record is a `RecordSpec` in the logical form of the `dnsRecords` output contract: `name` is the
FQDN without trailing dot; TXT `content` is the text unquoted and unsplit; MX content is the exchange
with `priority` beside it; SRV content is `"<weight> <port> <target>"` with `priority` beside it
(target `.` for a null SRV); A/AAAA content is the address. Wire syntax (quoting, splitting into
character-strings, absolute names) always comes from dnspython's rdata classes (`to_rdata`), never
from hand-formatted text.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from mailstack.config import dane, mta_sts
from mailstack.config.model import ExtraRecord
from mailstack.config.names import InvalidNameError, to_ascii
from mailstack.config.settings import DomainSettings, MailSettings

DDNS_TTL = 300
"""TTL of the hostname's address under `ddns` (config/ddns.py): a new home address shows within 5 minutes."""

TXT_STRING_LIMIT = 255
"""RFC 1035 §3.3: a <character-string> is a length byte followed by at most 255 bytes."""

NO_NULL_SRV = frozenset({"cloudflare", "digitalocean"})
"""DNS backends that cannot hold a null SRV (`0 0 0 .`) without a perpetual diff (see `srv_records`)."""

SPF_LOOKUP_LIMIT = 10
"""RFC 7208 §4.6.4: more than 10 DNS-querying terms make SPF evaluation a permerror."""

SPF_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
"""RFC 7208 §4.6.4: the mechanisms and modifier that cost a DNS query each."""

# RFC 6186 §3.4 lets a client compare priorities across the TLS and STARTTLS variants of a service;
# RFC 8314 §5.1 asks that implicit TLS be preferred, so its records sort first.
IMPLICIT_TLS_PRIORITY = 0
STARTTLS_PRIORITY = 10
SRV_WEIGHT = 1

_ROOT = dns.name.root
_IN = dns.rdataclass.IN
_SPF_TERM = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)")
_V_TAG = re.compile(r"^v=([A-Za-z0-9]+)\s*(;|\s|$)")


@dataclass(frozen=True)
class RecordSpec:
    """One DNS record in its logical (provider-neutral) form."""

    zone: str
    """The zone holding the record (Cloudflare zone, zone-file origin)."""
    name: str
    """Owner FQDN, lowercase, without trailing dot."""
    type: str
    """A, AAAA, CAA, CNAME, MX, SRV or TXT."""
    content: str
    """Logical content: see the module docstring for each type's form."""
    priority: int | None
    """MX preference or SRV priority; None for other types."""
    ttl: int
    """Seconds; 1 means automatic at Cloudflare."""
    purpose: str
    """Why the record exists, in one line."""
    tag: str | None = None
    """Tells apart records of one name and type whose content is not known up front (TLSA per key generation)."""

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.zone, self.name, self.type, self.content)

    @property
    def key(self) -> str:
        """The record's identity, which names its provider resource.

        Type and name, plus the exchange for MX (several per name by design) and, for TXT, the
        record's `v=` tag (one SPF, one DMARC, ... per name) or a digest of other TXT texts (e.g.
        several verification tokens at the apex). Content changes to SPF, DMARC or DKIM therefore
        update the record in place, and reordering config never renames anything.
        """
        base = f"{self.type.lower()}-{self.name}"
        if self.type == "MX":
            return f"{base}-{self.content}"
        if self.type == "TXT":
            return f"{base}-{txt_tag(self.content)}"
        if self.type == "CAA":
            return f"{base}-{_digest(self.content)}"
        if self.tag is not None:
            return f"{base}-{self.tag}"
        return base

    def as_dict(self) -> dict[str, object]:
        """The `dnsRecords` output entry."""
        return {
            "zone": self.zone,
            "name": self.name,
            "type": self.type,
            "content": self.content,
            "priority": self.priority,
            "ttl": self.ttl,
            "purpose": self.purpose,
        }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def txt_tag(text: str) -> str:
    """`spf1`, `dkim1`, `dmarc1`, `tlsrptv1`, ... for mail policy TXT texts; a short digest otherwise."""
    match = _V_TAG.match(text)
    return match.group(1).lower() if match else _digest(text)


def sort_records(records: Iterable[RecordSpec]) -> list[RecordSpec]:
    """Deterministic order for outputs and zone files: (zone, name, type, content)."""
    return sorted(records, key=lambda r: (*r.sort_key, r.priority if r.priority is not None else -1))


# -- wire syntax (dnspython) ---------------------------------------------------------------------


def txt_strings(text: str) -> tuple[bytes, ...]:
    """Split a logical TXT text into <character-string>s of at most 255 bytes.

    SPF (RFC 7208 §3.3), DKIM (RFC 6376 §3.6.2.2) and DMARC (RFC 7489 §6.3) concatenate the strings
    without separators, so the cut points carry no meaning; cutting inside a multi-byte UTF-8
    sequence is harmless for the same reason (the bytes are rejoined before decoding).
    """
    data = text.encode()
    if not data:
        return (b"",)
    return tuple(data[i : i + TXT_STRING_LIMIT] for i in range(0, len(data), TXT_STRING_LIMIT))


def txt_rdata(text: str) -> dns.rdtypes.ANY.TXT.TXT:
    return dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, txt_strings(text))


def quoted_txt(text: str) -> str:
    """TXT content as Cloudflare stores it: quoted strings of ≤255 bytes joined by one space.

    Cloudflare re-splits a long unsplit TXT at 255 bytes and the provider then reports a diff on
    every refresh (cloudflare/terraform-provider-cloudflare#6238); sending the stored form avoids it.
    """
    return str(txt_rdata(text).to_text())


def parse_txt(content: str) -> str:
    """The logical text of a TXT content: quoted character-strings are parsed and joined; bare text is kept."""
    stripped = content.strip()
    if not stripped.startswith('"'):
        return content
    rdata = dns.rdata.from_text(_IN, dns.rdatatype.TXT, stripped)
    assert isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
    return b"".join(rdata.strings).decode()


def _absolute(host: str) -> str:
    return host if host.endswith(".") else host + "."


def to_rdata(spec: RecordSpec) -> dns.rdata.Rdata:
    """The record's rdata, parsed and validated by dnspython.

    Raises:
        dns.exception.SyntaxError: the content is not valid for the record type.
        ValueError: a field is out of range.
    """
    if spec.type == "TXT":
        return txt_rdata(spec.content)
    rdtype = dns.rdatatype.from_text(spec.type)
    if spec.type == "MX":
        text = f"{spec.priority} {_absolute(spec.content)}"
    elif spec.type == "SRV":
        weight, port, target = spec.content.split()
        text = f"{spec.priority} {weight} {port} {_absolute(target)}"
    elif spec.type == "CNAME":
        text = _absolute(spec.content)
    else:
        text = spec.content
    return dns.rdata.from_text(_IN, rdtype, text, origin=_ROOT, relativize=False)


# -- builders ------------------------------------------------------------------------------------


def _host(name: str) -> str:
    """A configured host name in A-label form.

    A name config/checks.py already refused (an IP address, say) is kept as written, so the record
    checks can still build the other records and report their own problems in the same run.
    """
    try:
        return to_ascii(name)
    except InvalidNameError:
        return name.strip().rstrip(".").lower()


def managed_zone(settings: MailSettings, name: str) -> str | None:
    """The stack zone that holds `name` (the longest match), or None when no zone of the stack does."""
    zones = {d.zone for d in settings.domains}
    matches = [z for z in zones if name == z or name.endswith("." + z)]
    return max(matches, key=len) if matches else None


def mx_records(settings: MailSettings, domain: DomainSettings) -> list[RecordSpec]:
    records = [
        RecordSpec(
            domain.zone,
            domain.name,
            "MX",
            settings.hostname,
            domain.mx_priority,
            settings.ttl,
            f"inbound mail for {domain.name} goes to {settings.hostname} (RFC 5321 §5.1)",
        )
    ]
    for backup in domain.backup_mx:
        host = _host(backup.host)
        records.append(
            RecordSpec(
                domain.zone,
                domain.name,
                "MX",
                host,
                backup.priority,
                settings.ttl,
                f"backup MX: {host} queues mail for {domain.name} while {settings.hostname} is unreachable",
            )
        )
    return records


def host_address_records(settings: MailSettings) -> list[RecordSpec]:
    """A/AAAA for the mail hostname, only when its zone is one the stack manages."""
    zone = managed_zone(settings, settings.hostname)
    if zone is None:
        return []
    records = []
    for rtype, address in (("A", settings.public_ipv4), ("AAAA", settings.public_ipv6)):
        if address:
            ddns = settings.ddns is not None and rtype == "A"
            records.append(
                RecordSpec(
                    zone,
                    settings.hostname,
                    rtype,
                    str(ipaddress.ip_address(address)),
                    None,
                    # A changing address wants a short TTL: resolvers see a new one within 5 minutes.
                    min(settings.ttl, DDNS_TTL) if ddns and settings.ttl != 1 else settings.ttl,
                    f"address of the mail server {settings.hostname} (target of MX and SRV, SPF 'mx')"
                    + ("; kept current by ddclient on the host (created once by the stack)" if ddns else ""),
                )
            )
    return records


def _ip_term(kind: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    # RFC 7208 §5.6: a missing prefix length means a single address.
    if network.prefixlen == network.max_prefixlen:
        return f"{kind}:{network.network_address}"
    return f"{kind}:{network}"


def spf_includes(settings: MailSettings, domain: DomainSettings) -> list[str]:
    """The relay's include, the configured includes, then each backup MX's include (deduplicated, in order)."""
    includes: list[str] = []
    if settings.relay is not None and settings.relay.spf_include:
        includes.append(settings.relay.spf_include)
    includes.extend(domain.spf.include)
    includes.extend(b.spf_include for b in domain.backup_mx if b.spf_include)
    # SPF includes are domain names, not host names: `_spf.google.com` is a common one, so labels are
    # not run through IDNA's host-name rules unless they carry non-ASCII characters.
    return list(dict.fromkeys(_labels(i.strip().rstrip(".")) for i in includes))


def spf_text(settings: MailSettings, domain: DomainSettings) -> str:
    """`v=spf1 mx [ip4:…] [ip6:…] [include:…] -all` (RFC 7208).

    `mx` authorises the hosts the domain's MX names, i.e. this server (whose A/AAAA the stack
    publishes) and the backup MX, which sends bounces and may relay queued mail.
    """
    terms = ["v=spf1", "mx"]
    terms += [_ip_term("ip4", n) for n in domain.spf.ip4]
    terms += [_ip_term("ip6", n) for n in domain.spf.ip6]
    terms += [f"include:{i}" for i in spf_includes(settings, domain)]
    terms.append(domain.spf.policy)
    return " ".join(terms)


def spf_record(settings: MailSettings, domain: DomainSettings) -> RecordSpec:
    return RecordSpec(
        domain.zone,
        domain.name,
        "TXT",
        spf_text(settings, domain),
        None,
        settings.ttl,
        f"SPF: the hosts allowed to send mail from {domain.name} (RFC 7208)",
    )


def spf_term_name(term: str) -> str:
    """The mechanism or modifier name of an SPF term: `-include:x` → `include`, `redirect=x` → `redirect`."""
    match = _SPF_TERM.match(term.lstrip("+-~?"))
    return match.group(1).lower() if match else ""


def spf_lookup_terms(text: str) -> list[str]:
    """The DNS-querying terms of an SPF text, found statically (includes are not followed)."""
    return [term for term in text.split()[1:] if spf_term_name(term) in SPF_LOOKUP_TERMS]


def spf_lookup_count(text: str) -> int:
    return len(spf_lookup_terms(text))


def dkim_key_base64(public_key_pem: str) -> str:
    """The base64 body of a SubjectPublicKeyInfo PEM: DKIM's `p=` (RFC 6376 §3.6.1)."""
    lines = [line.strip() for line in public_key_pem.strip().splitlines()]
    return "".join(line for line in lines if line and not line.startswith("-----"))


def dkim_name(domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain}"


def dkim_text(public_key_pem: str) -> str:
    return f"v=DKIM1; k=rsa; p={dkim_key_base64(public_key_pem)}"


def dkim_selectors(domain: DomainSettings) -> tuple[str, ...]:
    """The active selector, then the retired ones that stay published."""
    return (domain.dkim.selector, *domain.dkim.retired)


def dkim_record(settings: MailSettings, domain: DomainSettings, selector: str, public_key_pem: str) -> RecordSpec:
    if selector == domain.dkim.selector:
        purpose = f"DKIM public key for selector {selector}: verifiers check {domain.name}'s signatures (RFC 6376)"
    else:
        # RFC 6376 §3.6.1: verifiers fetch the key when the message arrives, so a retired key stays
        # published until mail signed with it can no longer be in transit.
        purpose = f"retired DKIM key (selector {selector}), published until mail it signed has been delivered"
    return RecordSpec(
        domain.zone,
        dkim_name(domain.name, selector),
        "TXT",
        dkim_text(public_key_pem),
        None,
        settings.ttl,
        purpose,
    )


def dmarc_text(domain: DomainSettings) -> str:
    """`v=DMARC1; p=…; …` from the settings (RFC 9989 §4.7).

    `pct` and `rf` are never written: RFC 9989 removed them (config/delivery_checks.py refuses
    them; `t=y` replaces a partial `pct`). `ri` is gone too but still written when configured:
    unknown tags must be ignored (RFC 9989 §4.7), and receivers following RFC 7489 still read it.
    """
    d = domain.dmarc
    tags = [("v", "DMARC1"), ("p", d.policy)]
    if d.subdomain_policy is not None:
        tags.append(("sp", d.subdomain_policy))
    if d.np is not None:
        tags.append(("np", d.np))
    if d.t is not None:
        tags.append(("t", d.t))
    if d.adkim is not None:
        tags.append(("adkim", d.adkim))
    if d.aspf is not None:
        tags.append(("aspf", d.aspf))
    if d.rua:
        tags.append(("rua", ",".join(d.rua)))
    if d.ruf:
        tags.append(("ruf", ",".join(d.ruf)))
    if d.fo is not None:
        tags.append(("fo", d.fo))
    if d.ri is not None:
        tags.append(("ri", str(d.ri)))
    return "; ".join(f"{k}={v}" for k, v in tags)


def dmarc_record(settings: MailSettings, domain: DomainSettings) -> RecordSpec:
    return RecordSpec(
        domain.zone,
        f"_dmarc.{domain.name}",
        "TXT",
        dmarc_text(domain),
        None,
        settings.ttl,
        f"DMARC: what receivers do with mail from {domain.name} failing SPF/DKIM alignment, and where reports go (RFC 9989)",
    )


def report_domain(uri: str) -> str | None:
    """The (A-label) domain of a `mailto:` report URI, or None when it has none."""
    if not uri.startswith("mailto:"):
        return None
    address = uri[7:].split("!", 1)[0]
    local, at, host = address.rpartition("@")
    if not at or not local:
        return None
    try:
        return to_ascii(host)
    except ValueError:
        return None


def report_authorization_records(settings: MailSettings) -> list[RecordSpec]:
    """`<domain>._report._dmarc.<dest>` TXT `v=DMARC1` for reports sent to another managed domain.

    RFC 9990 §4 (formerly RFC 7489 §7.1): a report receiver whose Organizational Domain differs
    from the policy domain's only gets reports if it publishes this authorisation; without it,
    compliant reporters silently drop the reports.
    """
    known = {d.name for d in settings.domains}
    out: dict[str, RecordSpec] = {}
    for domain in settings.domains:
        for uri in (*domain.dmarc.rua, *domain.dmarc.ruf):
            dest = report_domain(uri)
            if dest is None or organizational_domain(domain.name, known) == organizational_domain(dest, known):
                continue
            zone = managed_zone(settings, dest)
            if zone is None:
                continue
            name = f"{domain.name}._report._dmarc.{dest}"
            out[name] = RecordSpec(
                zone,
                name,
                "TXT",
                "v=DMARC1",
                None,
                settings.ttl,
                f"lets {dest} receive DMARC reports for {domain.name} (RFC 9990 §4)",
            )
    return list(out.values())


def organizational_domain(name: str, dmarc_domains: Iterable[str]) -> str:
    """The Organizational Domain of `name` by RFC 9989 §4.10.2, given the names that publish DMARC records.

    RFC 9989 replaced the Public Suffix List with a DNS Tree Walk: of the names from `name` up to
    the root that publish a DMARC record, the one with the fewest labels is the Organizational
    Domain (no `psd` tags are involved: mailstack never publishes one), and `name` itself when none
    does. Here the walk sees the stack's own records only (every mail domain publishes one); a
    record published elsewhere could only merge two organisations, so the worst outcome is an
    authorisation record that is not needed, which is harmless.
    """
    name = name.lower().rstrip(".")
    labels = name.split(".")
    ancestors = {".".join(labels[i:]) for i in range(len(labels))}
    found = [d for d in dmarc_domains if d in ancestors]
    return min(found, key=lambda d: d.count(".")) if found else name


def tlsrpt_record(settings: MailSettings, domain: DomainSettings) -> RecordSpec | None:
    if domain.tlsrpt is None or not domain.tlsrpt.rua:
        return None
    return RecordSpec(
        domain.zone,
        f"_smtp._tls.{domain.name}",
        "TXT",
        f"v=TLSRPTv1; rua={','.join(domain.tlsrpt.rua)}",
        None,
        settings.ttl,
        "TLS-RPT: where sending servers report TLS failures delivering to this domain (RFC 8460)",
    )


def tlsa_record(settings: MailSettings, generation: int, content: str) -> RecordSpec:
    """`_25._tcp.<hostname>` TLSA `3 1 1 …` for the SMTP key of one generation (config/dane.py).

    Raises:
        ValueError: the hostname's zone is not managed (config/web_checks.py refuses dane then).
    """
    zone = managed_zone(settings, settings.hostname)
    if zone is None:
        raise ValueError(f"{settings.hostname} is in no zone of the stack")
    in_use = generation == settings.dane_rollover
    role = "in use" if in_use else "next, published before it is used"
    return RecordSpec(
        zone,
        dane.tlsa_name(settings.hostname),
        "TLSA",
        content,
        None,
        settings.ttl,
        f"DANE: DNSSEC-validating senders deliver only over TLS to this key ({role}, RFC 7672)",
        tag=f"g{generation}",
    )


def mta_sts_record(settings: MailSettings, domain: DomainSettings) -> RecordSpec | None:
    """`_mta-sts.<domain>` TXT `v=STSv1; id=…` (RFC 8461 §3.1) when the domain publishes a policy."""
    text = mta_sts.txt_text(settings, domain)
    if text is None or domain.mta_sts is None:
        return None
    return RecordSpec(
        domain.zone,
        mta_sts.txt_name(domain.name),
        "TXT",
        text,
        None,
        settings.ttl,
        f"MTA-STS: senders fetch https://{mta_sts.policy_host(domain.name)}{mta_sts.POLICY_PATH} and "
        f"({domain.mta_sts.mode} mode) deliver only over verified TLS to the listed MX hosts (RFC 8461)",
    )


_SRV_SERVICES: tuple[tuple[str, int, str, str | None], ...] = (
    # (service label, port, description, settings.ports flag; None = always published)
    ("_submissions._tcp", 465, "mail submission over implicit TLS", None),
    ("_imaps._tcp", 993, "IMAP over implicit TLS", None),
    ("_submission._tcp", 587, "mail submission with STARTTLS", "submission"),
    ("_imap._tcp", 143, "IMAP with STARTTLS", "imap"),
    ("_pop3s._tcp", 995, "POP3 over implicit TLS", "pop3"),
    ("_pop3._tcp", 110, "POP3 with STARTTLS", "pop3"),
)


def srv_records(settings: MailSettings, domain: DomainSettings) -> list[RecordSpec]:
    """Client autoconfiguration SRV records (RFC 6186, RFC 8314), null SRV for services that are off.

    A null SRV (`0 0 0 .`, RFC 2782) tells a mail client the service is decidedly unavailable, so it
    does not fall back to guessing plaintext ports on the domain.

    Not for a domain published at Cloudflare: there, null SRVs are left out (the services they describe are not published
    on the host either, so a client guessing their ports finds nothing). The API does not answer a
    `.` target with `.`: it has answered `"target": false` (DNSControl#561) and a missing target
    (DNSControl#1436), and a `.` record showed a change on every plan (terraform-provider-cloudflare
    #1955). terraform-provider-cloudflare v5.19.1 (b2277b8b, under pulumi-cloudflare 6.23) stores
    the API's answer as state (internal/services/dns_record/resource.go:193-198), compares
    `data.target` verbatim (custom.go:84, from ModifyPlan at resource.go:398), and fails to read a
    non-string target (internal/apijson/decoder.go:460-465): a perpetual update, or an error.
    Nor at DigitalOcean: its provider's Read appends a dot to every SRV target the API returns
    (terraform-provider-digitalocean digitalocean/domain/resource_record.go, resourceDigitalOceanRecordRead),
    so a `.` target can only read back as `..` or as whatever the API makes of it.
    """
    records = []
    for label, port, what, flag in _SRV_SERVICES:
        name = f"{label}.{domain.name}"
        enabled = flag is None or bool(getattr(settings.ports, flag))
        if not enabled and domain.dns_provider in NO_NULL_SRV:
            continue
        if enabled:
            priority = IMPLICIT_TLS_PRIORITY if port in (465, 993, 995) else STARTTLS_PRIORITY
            records.append(
                RecordSpec(
                    domain.zone,
                    name,
                    "SRV",
                    f"{SRV_WEIGHT} {port} {settings.hostname}",
                    priority,
                    settings.ttl,
                    f"mail clients find {what} on {settings.hostname}:{port} (RFC 6186)",
                )
            )
        else:
            records.append(
                RecordSpec(
                    domain.zone,
                    name,
                    "SRV",
                    "0 0 .",
                    0,
                    settings.ttl,
                    f"null SRV: {what} (port {port}) is not offered (RFC 6186, RFC 2782)",
                )
            )
    return records


def _labels(name: str) -> str:
    return ".".join(label.lower() if label.isascii() else to_ascii(label) for label in name.split("."))


def owner_name(name: str, domain: str) -> str:
    """An extra record's owner: `@` is the domain; names ending in the domain are full; others are relative.

    Labels such as `_acme-challenge` are not host names (IDNA refuses `_`), so only labels with
    non-ASCII characters go through IDNA.
    """
    text = name.strip().rstrip(".")
    if text in ("", "@"):
        return domain
    full = _labels(text)
    if full == domain or full.endswith("." + domain):
        return full
    return f"{full}.{domain}"


def extra_record(settings: MailSettings, domain: DomainSettings, rec: ExtraRecord) -> RecordSpec:
    """One record from `domains.<d>.records`, normalised to the logical form.

    Raises:
        ValueError (including dns.exception.SyntaxError and InvalidNameError): content that is not
            valid for the type.
    """
    content = rec.content.strip()
    if rec.type == "TXT":
        content = parse_txt(content)
    elif rec.type in ("A", "AAAA"):
        content = str(ipaddress.ip_address(content))
    elif rec.type in ("MX", "CNAME"):
        content = _target_name(content)
    elif rec.type == "SRV":
        fields = content.split()
        if len(fields) != 3:
            raise ValueError(f"SRV content '{rec.content}' must be '<weight> <port> <target>' (priority is separate)")
        weight, port, target = fields
        content = f"{int(weight)} {int(port)} {_target_name(target) if target != '.' else '.'}"
    spec = RecordSpec(
        domain.zone,
        owner_name(rec.name, domain.name),
        rec.type,
        content,
        rec.priority if rec.type in ("MX", "SRV") else None,
        rec.ttl if rec.ttl is not None else settings.ttl,
        rec.purpose,
    )
    if rec.type == "CAA":
        # Normalise CAA to dnspython's presentation form (`0 issue "letsencrypt.org"`).
        spec = RecordSpec(spec.zone, spec.name, spec.type, to_rdata(spec).to_text(), None, spec.ttl, spec.purpose)
    else:
        to_rdata(spec)  # validates
    return spec


class AddressError(ValueError):
    """An IP address where the record type needs a host name (MX, CNAME and SRV targets)."""


def _target_name(host: str) -> str:
    text = host.strip().rstrip(".")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return _labels(text)
    raise AddressError(f"'{host}' is an IP address; this record type needs a host name")


def domain_records(settings: MailSettings, domain: DomainSettings) -> list[RecordSpec]:
    """Every record of one domain except DKIM (whose content comes from the generated keys)."""
    records = [*mx_records(settings, domain), spf_record(settings, domain), dmarc_record(settings, domain)]
    tlsrpt = tlsrpt_record(settings, domain)
    if tlsrpt is not None:
        records.append(tlsrpt)
    sts = mta_sts_record(settings, domain)
    if sts is not None:
        records.append(sts)
    records += srv_records(settings, domain)
    records += [extra_record(settings, domain, rec) for rec in domain.records]
    return records


def static_records(settings: MailSettings) -> list[RecordSpec]:
    """Every record of the stack whose content is known from settings alone (all but DKIM), sorted."""
    records = host_address_records(settings)
    for domain in settings.domains:
        records += domain_records(settings, domain)
    records += report_authorization_records(settings)
    return sort_records(records)


def dkim_records(settings: MailSettings, public_keys: Mapping[tuple[str, str], str]) -> list[RecordSpec]:
    """DKIM TXT records for every (domain, selector) of the settings.

    Raises:
        KeyError: a (domain, selector) has no key in `public_keys`.
    """
    return [
        dkim_record(settings, domain, selector, public_keys[(domain.name, selector)])
        for domain in settings.domains
        for selector in dkim_selectors(domain)
    ]


def mail_records(settings: MailSettings, public_keys: Mapping[tuple[str, str], str]) -> list[RecordSpec]:
    """The complete, sorted record set of the stack."""
    return sort_records([*static_records(settings), *dkim_records(settings, public_keys)])


def records_by_zone(records: Sequence[RecordSpec]) -> dict[str, list[RecordSpec]]:
    out: dict[str, list[RecordSpec]] = {}
    for record in sort_records(records):
        out.setdefault(record.zone, []).append(record)
    return out
