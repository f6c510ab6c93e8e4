"""Pure logic of `verify`: the outputs contract, record comparison, SPF/DKIM/DMARC rules, verdicts.

Nothing here touches the network. The SPF walk takes a lookup function so the same code runs
against a real resolver (mailstack.verify_groups) and against a dict in unit tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

# -- verdicts ------------------------------------------------------------------------------------


class Status(StrEnum):
    """Outcome of one check."""

    OK = "ok"
    MISSING = "missing"  # not published anywhere
    DIFFERENT = "different"  # published with other content (found and expected are both shown)
    PROPAGATING = "propagating"  # some nameservers (or the resolver) have it, some do not yet
    FAIL = "fail"  # published but wrong by the rules (SPF budget, key mismatch, port closed, …)
    WARN = "warn"  # worth knowing, does not break mail
    ERROR = "error"  # could not check (no answer, timeout)


PROBLEMS = frozenset({Status.MISSING, Status.DIFFERENT, Status.PROPAGATING, Status.FAIL})

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNCHECKED = 2

GROUPS = ("records", "spf", "dkim", "dmarc", "mx", "ptr", "ports", "blocklist")
"""Check groups that `--skip` accepts (`ports` includes the certificate checks)."""


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    domain: str
    """Report group: a mail domain, a zone, or the mail hostname."""
    check: str
    """Check group (see GROUPS) or `nameservers`."""
    subject: str
    """What was checked, e.g. `TXT _dmarc.example.com` or `port 465 on 203.0.113.25`."""
    status: Status
    detail: str = ""
    fix: str = ""
    """The exact record to publish or the action that fixes a problem; empty when OK."""
    expected: str = ""
    found: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "check": self.check,
            "subject": self.subject,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            "expected": self.expected,
            "found": list(self.found),
        }


def exit_code(findings: Iterable[Finding]) -> int:
    """0 when everything is OK, 1 when something is wrong, 2 when something could not be checked.

    A definite problem wins over an unchecked item: the user has something to fix either way.
    """
    statuses = {f.status for f in findings}
    if statuses & PROBLEMS:
        return EXIT_PROBLEMS
    if Status.ERROR in statuses:
        return EXIT_UNCHECKED
    return EXIT_OK


# -- the outputs contract ------------------------------------------------------------------------

RECORD_TYPES = ("MX", "TXT", "A", "AAAA", "SRV", "CNAME", "CAA")


class OutputsError(ValueError):
    """The stack outputs do not follow the contract; `.reasons` lists every problem."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("stack outputs are not usable:\n" + "\n".join(f"  - {r}" for r in self.reasons))


def _fqdn(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _txt_rdata(text: str) -> dns.rdata.Rdata:
    # RFC 7208 §3.3 / RFC 6376 §3.6.2.2: one logical text is published as several ≤255-byte
    # strings; receivers concatenate them, so split exactly like a DNS host would.
    raw = text.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)


@dataclass(frozen=True)
class ExpectedRecord:
    """One entry of the stack's `dnsRecords` output."""

    zone: str
    name: str
    type: str
    content: str
    priority: int | None = None
    ttl: int = 3600
    purpose: str = ""

    @cached_property
    def rdata(self) -> dns.rdata.Rdata:
        """The record as dnspython rdata (raises dns.exception.DNSException on bad content)."""
        if self.type == "TXT":
            return _txt_rdata(self.content)
        text = self.content.strip()
        if self.type in ("MX", "CNAME") or (self.type == "SRV"):
            target = text.split()[-1] if text else text
            if target != "." and not target.endswith("."):
                text = text[: len(text) - len(target)] + target + "."
        if self.type in ("MX", "SRV"):
            text = f"{self.priority} {text}"
        return dns.rdata.from_text(dns.rdataclass.IN, self.type, text)

    @cached_property
    def key(self) -> str:
        return canonical(self.type, self.rdata)

    @cached_property
    def display(self) -> str:
        return display(self.type, self.rdata)

    def zone_line(self) -> str:
        """The record in zone-file syntax: what to publish."""
        return f"{self.name}. {self.ttl} IN {self.type} {self.rdata.to_text()}"


# What `verify` suggests for a mail domain whose outputs carry no SPF or DMARC record: the
# project's own defaults (the server's MX may send, nothing else; DMARC reports only).
DEFAULT_SPF = "v=spf1 mx -all"
DEFAULT_DMARC = "v=DMARC1; p=none"


def publish_txt(expected: Sequence[ExpectedRecord], name: str, default: str) -> str:
    """The fix for a missing TXT record: the stack's own record, else `default` at `name`."""
    record = expected[0] if expected else ExpectedRecord(name, name, "TXT", default)
    return f"publish {record.zone_line()}"


@dataclass(frozen=True)
class StackOutputs:
    """What the stack says should exist."""

    hostname: str
    ipv4: str | None
    ipv6: str | None
    records: tuple[ExpectedRecord, ...]
    ddns: str | None = None
    """The name ddclient keeps current (`ddns` output): its A record's address is ddclient's, not the stack's."""

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(ip for ip in (self.ipv4, self.ipv6) if ip)

    @cached_property
    def mail_domains(self) -> tuple[str, ...]:
        """Domains that receive mail: the owners of the stack's MX records, in output order."""
        return tuple(dict.fromkeys(r.name for r in self.records if r.type == "MX"))

    def txt(self, name: str, kind: str) -> list[ExpectedRecord]:
        return [r for r in self.records if r.type == "TXT" and r.name == name and txt_kind(r.content) == kind]


def parse_outputs(data: object) -> StackOutputs:
    """Validate `pulumi stack output --json` against the contract, reporting every problem at once.

    Raises:
        OutputsError: with one reason per problem.
    """
    reasons: list[str] = []
    if not isinstance(data, Mapping):
        raise OutputsError(["outputs must be a JSON object"])
    hostname = data.get("hostname")
    if not isinstance(hostname, str) or not hostname.strip():
        reasons.append("`hostname` must be a non-empty string")
        hostname = ""
    ips: dict[str, str | None] = {}
    for key, version in (("publicIPv4", 4), ("publicIPv6", 6)):
        value = data.get(key)
        if value is None:
            ips[key] = None
            continue
        try:
            address = ipaddress.ip_address(str(value))
        except ValueError:
            reasons.append(f"`{key}` is not an IP address: {value!r}")
            ips[key] = None
            continue
        if address.version != version:
            reasons.append(f"`{key}` must be an IPv{version} address: {value!r}")
        ips[key] = address.compressed
    raw_records = data.get("dnsRecords")
    records: list[ExpectedRecord] = []
    if not isinstance(raw_records, list):
        reasons.append("`dnsRecords` must be a list")
        raw_records = []
    for i, raw in enumerate(raw_records):
        where = f"dnsRecords[{i}]"
        if not isinstance(raw, Mapping):
            reasons.append(f"{where} must be an object")
            continue
        missing = [k for k in ("zone", "name", "type", "content") if not isinstance(raw.get(k), str)]
        if missing:
            reasons.append(f"{where} needs string fields {', '.join(missing)}")
            continue
        rtype = str(raw["type"]).upper()
        if rtype not in RECORD_TYPES:
            reasons.append(f"{where}: type {rtype} is not one of {', '.join(RECORD_TYPES)}")
            continue
        priority = raw.get("priority")
        if rtype in ("MX", "SRV") and not isinstance(priority, int):
            reasons.append(f"{where}: {rtype} needs an integer `priority`")
            continue
        ttl = raw.get("ttl")
        record = ExpectedRecord(
            zone=_fqdn(str(raw["zone"])),
            name=_fqdn(str(raw["name"])),
            type=rtype,
            content=str(raw["content"]),
            priority=priority if isinstance(priority, int) else None,
            ttl=ttl if isinstance(ttl, int) and ttl > 1 else 3600,
            purpose=str(raw.get("purpose") or ""),
        )
        if record.name != record.zone and not record.name.endswith("." + record.zone):
            reasons.append(f"{where}: {record.name} is not inside zone {record.zone}")
            continue
        try:
            _ = record.rdata  # validates the content
        except (dns.exception.DNSException, ValueError) as e:
            reasons.append(f"{where}: {rtype} content {record.content!r} is not valid: {e}")
            continue
        records.append(record)
    ddns = data.get("ddns")
    ddns_host: str | None = None
    if ddns is not None:
        if isinstance(ddns, Mapping) and isinstance(ddns.get("hostname"), str):
            ddns_host = _fqdn(str(ddns["hostname"]))
        else:
            reasons.append("`ddns` must be an object with a string `hostname`")
    if reasons:
        raise OutputsError(reasons)
    return StackOutputs(_fqdn(hostname), ips["publicIPv4"], ips["publicIPv6"], tuple(records), ddns_host)


# -- record values -------------------------------------------------------------------------------


def _name_text(name: dns.name.Name) -> str:
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


def txt_text(rdata: dns.rdata.Rdata) -> str:
    """The logical text of a TXT record: its strings concatenated (RFC 7208 §3.3)."""
    return b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]


_TAG_KINDS = {"dkim1": "dkim", "dmarc1": "dmarc", "tlsrptv1": "tlsrpt", "stsv1": "sts"}


def txt_kind(text: str) -> str | None:
    """Which mail record a TXT text is (`spf`, `dkim`, `dmarc`, `tlsrpt`, `sts`), or None."""
    low = text.strip().lower()
    if low == "v=spf1" or low.startswith("v=spf1 "):
        return "spf"
    match = re.match(r"v\s*=\s*([a-z0-9]+)\s*(;|$)", low)
    if match:
        return _TAG_KINDS.get(match.group(1))
    # A DKIM key record may omit v= (RFC 6376 §3.6.1: v= is RECOMMENDED, not required).
    if re.search(r"(^|;)\s*p\s*=", low) and re.search(r"(^|;)\s*k\s*=", low):
        return "dkim"
    return None


def parse_tags(text: str) -> dict[str, str]:
    """A tag=value list (RFC 6376 §3.2, used by DKIM, DMARC, TLS-RPT, MTA-STS).

    Raises:
        ValueError: a tag without `=`, or a tag given twice.
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"`{part.strip()}` is not tag=value")
        key = name.strip().lower()
        if key in tags:
            raise ValueError(f"tag `{key}` appears twice")
        tags[key] = value.strip()
    return tags


def _txt_key(text: str) -> str:
    """Comparison key for TXT texts: equal when a receiver would read them the same way."""
    kind = txt_kind(text)
    if kind == "spf":
        return " ".join(text.lower().split())
    if kind is not None:
        try:
            tags = parse_tags(text)
        except ValueError:
            return text.strip()
        if "p" in tags and kind == "dkim":
            # RFC 6376 §3.6.1: whitespace inside the base64 key is ignored.
            tags["p"] = "".join(tags["p"].split())
        first = [k for k in ("v",) if k in tags]
        return "; ".join(f"{k}={tags[k]}" for k in first + sorted(set(tags) - set(first)))
    return text


def canonical(rdtype: str, rdata: dns.rdata.Rdata) -> str:
    """Comparison key of one record value (case-insensitive names, joined TXT, normalized IPs)."""
    if rdtype == "TXT":
        return "TXT " + _txt_key(txt_text(rdata))
    return f"{rdtype} {display(rdtype, rdata).lower()}"


def display(rdtype: str, rdata: dns.rdata.Rdata) -> str:
    """How a value is shown in the report (same shape as the outputs' `content`)."""
    r: Any = rdata
    if rdtype == "TXT":
        return txt_text(rdata)
    if rdtype == "MX":
        return f"{r.preference} {_name_text(r.exchange)}"
    if rdtype == "SRV":
        return f"{r.priority} {r.weight} {r.port} {_name_text(r.target)}"
    if rdtype in ("CNAME", "NS", "PTR"):
        return _name_text(r.target)
    if rdtype in ("A", "AAAA"):
        return ipaddress.ip_address(r.address).compressed
    return str(rdata.to_text())


@dataclass(frozen=True)
class Value:
    """One published value as seen by a server: comparison key plus display text."""

    key: str
    text: str

    @staticmethod
    def of(rdtype: str, rdata: dns.rdata.Rdata) -> Value:
        return Value(canonical(rdtype, rdata), display(rdtype, rdata))

    @staticmethod
    def from_display(rdtype: str, text: str) -> Value:
        """The value whose display text is `text` (what `of` gives; verify_dns reads the wire itself)."""
        return Value("TXT " + _txt_key(text) if rdtype == "TXT" else f"{rdtype} {text.lower()}", text)


def related(expected: ExpectedRecord, value: Value) -> bool:
    """Whether a published value is the counterpart of an expected one (would be replaced by it).

    TXT owners hold unrelated texts side by side (site verifications next to SPF), so only a TXT
    of the same kind counts; for every other type the stack owns the whole record set.
    """
    if expected.type != "TXT":
        return True
    kind = txt_kind(expected.content)
    return kind is not None and txt_kind(value.text) == kind


# -- per-record verdicts -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerAnswer:
    """What one server said for one name and type: values, or an error."""

    server: str
    values: tuple[Value, ...] = ()
    error: str | None = None


def _state(expected: ExpectedRecord, answer: ServerAnswer, expected_keys: set[str]) -> tuple[str, tuple[str, ...]]:
    if any(v.key == expected.key for v in answer.values):
        return "ok", ()
    counterpart = tuple(v.text for v in answer.values if related(expected, v) and v.key not in expected_keys)
    return ("different" if counterpart else "missing"), counterpart


def judge_record(
    expected: ExpectedRecord,
    siblings: Sequence[ExpectedRecord],
    authoritative: Sequence[ServerAnswer],
    resolver: ServerAnswer | None,
    group: str,
) -> Finding:
    """Verdict for one expected record from the answers of the zone's nameservers and a resolver.

    Args:
        expected: the record.
        siblings: every expected record with the same name and type (including `expected`).
        authoritative: one answer per authoritative nameserver (queried directly, no recursion).
        resolver: the recursive resolver's answer (None when not asked).
        group: report group for the finding.
    """
    subject = f"{expected.type} {expected.name}"
    keys = {s.key for s in siblings}
    answered = [a for a in authoritative if a.error is None]

    def verdict(status: Status, detail: str, fix: str = "", found: tuple[str, ...] = ()) -> Finding:
        return Finding(group, "records", subject, status, detail, fix, expected.display, found)

    if not answered:
        errors = "; ".join(f"{a.server}: {a.error}" for a in authoritative) or "no nameserver known"
        return verdict(Status.ERROR, f"no nameserver of {expected.zone} answered ({errors})")
    states = {a.server: _state(expected, a, keys) for a in answered}
    good = [s for s, (state, _) in states.items() if state == "ok"]
    bad = {s: st for s, st in states.items() if st[0] != "ok"}
    publish = f"publish {expected.zone_line()}"
    if good and bad:
        lagging = ", ".join(f"{s} ({st[0]}{': ' + ' | '.join(st[1]) if st[1] else ''})" for s, st in bad.items())
        return verdict(
            Status.PROPAGATING,
            f"served by {', '.join(good)}; not yet by {lagging}",
            "wait for the zone to reach every nameserver (check the secondary's zone transfer if this lasts)",
            tuple(dict.fromkeys(v for st in bad.values() for v in st[1])),
        )
    if bad:
        found = tuple(dict.fromkeys(v for st in bad.values() for v in st[1]))
        if found:
            return verdict(
                Status.DIFFERENT,
                f"nameservers publish {' | '.join(found)}",
                f"{publish} (replacing {' | '.join(found)})",
                found,
            )
        return verdict(Status.MISSING, "not published at any nameserver", publish)
    if resolver is not None and resolver.error is None:
        state, found = _state(expected, resolver, keys)
        if state != "ok":
            return verdict(
                Status.PROPAGATING,
                f"all nameservers serve it; resolver {resolver.server} still answers "
                + (" | ".join(found) if found else "without it")
                + f" (cached for up to the old record's TTL; this record's TTL is {expected.ttl} s)",
                "wait for resolver caches to expire",
                found,
            )
    note = f" (resolver {resolver.server} did not answer: {resolver.error})" if resolver and resolver.error else ""
    return verdict(Status.OK, f"at {len(answered)} nameserver(s){note}")


def unexpected_values(siblings: Sequence[ExpectedRecord], answer: ServerAnswer) -> tuple[Value, ...]:
    """Published values the stack does not have, for a name and type whose expected values are all present."""
    keys = {s.key for s in siblings}
    if any(s.key not in {v.key for v in answer.values} for s in siblings):
        return ()  # shown as `different` on the missing record instead
    return tuple(v for v in answer.values if v.key not in keys and any(related(s, v) for s in siblings))


# -- SPF (RFC 7208) ------------------------------------------------------------------------------

# RFC 7208 §4.6.4: at most 10 mechanisms/modifiers that cause DNS queries per evaluation
# (include, a, mx, ptr, exists, redirect), and at most 2 "void" lookups (NXDOMAIN or no answer);
# going over either is a permerror, and receivers then treat the message as having no valid SPF.
SPF_LOOKUP_LIMIT = 10
SPF_VOID_LIMIT = 2
# RFC 7208 §4.6.4: an `mx` mechanism may look up addresses for at most 10 MX hosts.
SPF_MX_LIMIT = 10
SPF_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class SpfError(ValueError):
    """An SPF record that does not parse (RFC 7208 §4.6 permerror)."""


@dataclass(frozen=True)
class SpfTerm:
    """One mechanism (`qualifier` set) or modifier (`modifier` True) of an SPF record."""

    name: str
    value: str = ""
    qualifier: str = "+"
    modifier: bool = False

    @property
    def target(self) -> str:
        """Domain part of a/mx/include/exists/redirect (without the CIDR suffix)."""
        return self.value.split("/", 1)[0] if self.name in ("a", "mx") else self.value

    @property
    def cidr(self) -> tuple[int | None, int | None]:
        """(ip4-cidr-length, ip6-cidr-length) of a/mx (RFC 7208 §5.6 dual-cidr-length)."""
        match = re.fullmatch(r"[^/]*(?:/(\d+))?(?://(\d+))?", self.value) if self.name in ("a", "mx") else None
        if match is None:
            return None, None
        v4, v6 = match.groups()
        return (int(v4) if v4 else None), (int(v6) if v6 else None)

    @property
    def has_macro(self) -> bool:
        return "%" in self.value


def parse_spf(text: str) -> list[SpfTerm]:
    """Terms of an SPF record.

    Raises:
        SpfError: not `v=spf1`, an unknown mechanism, a bad address, or a repeated modifier.
    """
    parts = text.split()
    if not parts or parts[0].lower() != "v=spf1":
        raise SpfError("does not start with v=spf1")
    terms: list[SpfTerm] = []
    seen_modifiers: set[str] = set()
    for raw in parts[1:]:
        modifier = re.fullmatch(r"([a-zA-Z][a-zA-Z0-9_.-]*)=(.*)", raw)
        if modifier:
            name = modifier.group(1).lower()
            # RFC 7208 §6: redirect and exp may each appear at most once.
            if name in ("redirect", "exp") and name in seen_modifiers:
                raise SpfError(f"modifier {name}= appears twice")
            seen_modifiers.add(name)
            terms.append(SpfTerm(name, modifier.group(2), modifier=True))
            continue
        qualifier = raw[0] if raw[0] in _QUALIFIERS else "+"
        body = raw[1:] if raw[0] in _QUALIFIERS else raw
        match = re.fullmatch(r"([a-zA-Z0-9]+)(?:[:/](.*))?", body)
        if not match or match.group(1).lower() not in _MECHANISMS:
            raise SpfError(f"unknown mechanism `{raw}`")
        name = match.group(1).lower()
        value = body[len(match.group(1)) :]
        value = value[1:] if value.startswith(":") else value
        if name in ("include", "exists") and not value:
            raise SpfError(f"`{raw}` needs a domain")
        if name in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError as e:
                raise SpfError(f"`{raw}` is not a valid {name} network") from e
            if network.version != int(name[-1]):
                raise SpfError(f"`{raw}` has an IPv{network.version} address")
        if name in ("a", "mx") and value and not re.fullmatch(r"[^/]*(/\d{1,2})?(//\d{1,3})?", value):
            raise SpfError(f"`{raw}` has a bad CIDR length")
        if name == "all" and value:
            raise SpfError(f"`{raw}`: all takes no argument")
        terms.append(SpfTerm(name, value, qualifier))
    return terms


@dataclass(frozen=True)
class Answer:
    """A lookup result as the SPF walk needs it: values, or NXDOMAIN/no-data (void), or an error."""

    values: tuple[str, ...] = ()
    nxdomain: bool = False
    error: str | None = None

    @property
    def void(self) -> bool:
        return self.error is None and not self.values


Lookup = Callable[[str, str], Awaitable[Answer]]
"""(name, rdtype) → Answer; MX values are `"<preference> <exchange>"`, TXT values the joined text."""


@dataclass
class SpfNode:
    """An SPF record and everything its evaluation looks up (filled by `walk_spf`)."""

    domain: str
    records: tuple[str, ...] = ()
    """Every v=spf1 text at the domain (more than one is a permerror)."""
    error: str | None = None
    """Lookup failure, or why the record does not parse."""
    terms: list[SpfTerm] = field(default_factory=list)
    children: dict[int, SpfNode] = field(default_factory=dict)
    """Term index → node for include and redirect."""
    addresses: dict[int, Answer] = field(default_factory=dict)
    """Term index → A+AAAA answer of a / exists targets."""
    mx: dict[int, tuple[Answer, dict[str, Answer]]] = field(default_factory=dict)
    """Term index → (MX answer, exchange → its A+AAAA answer)."""
    truncated: bool = False
    """Not expanded further: include loop or depth beyond the lookup limit."""

    @property
    def record(self) -> str | None:
        return self.records[0] if len(self.records) == 1 else None


async def lookup_addresses(lookup: Lookup, name: str) -> Answer:
    """A and AAAA of `name` as one answer.

    The error of either lookup is kept even when the other found addresses: a failed half means
    "unknown", so an empty result is not a void lookup (RFC 7208 §4.6.4) and not "no address".
    """
    a, aaaa = await asyncio.gather(lookup(name, "A"), lookup(name, "AAAA"))
    return Answer(a.values + aaaa.values, nxdomain=a.nxdomain and aaaa.nxdomain, error=a.error or aaaa.error)


async def walk_spf(domain: str, lookup: Lookup, _path: tuple[str, ...] = ()) -> SpfNode:
    """Fetch the SPF record of `domain` and, concurrently, everything its evaluation would look up."""
    node = SpfNode(domain)
    # A loop or a chain deeper than the lookup limit is a permerror anyway; stop expanding there.
    if domain.lower() in _path or len(_path) > SPF_LOOKUP_LIMIT:
        node.truncated = True
        return node
    answer = await lookup(domain, "TXT")
    if answer.error:
        node.error = answer.error
        return node
    node.records = tuple(t for t in answer.values if txt_kind(t) == "spf")
    if node.record is None:
        return node
    try:
        node.terms = parse_spf(node.record)
    except SpfError as e:
        node.error = str(e)
        return node
    path = (*_path, domain.lower())
    jobs: list[Awaitable[None]] = []

    async def child(i: int, target: str) -> None:
        node.children[i] = await walk_spf(target, lookup, path)

    async def addresses(i: int, target: str) -> None:
        node.addresses[i] = await lookup_addresses(lookup, target)

    async def mx(i: int, target: str) -> None:
        answer = await lookup(target, "MX")
        hosts = [v.split()[-1] for v in answer.values][:SPF_MX_LIMIT]
        found = await asyncio.gather(*(lookup_addresses(lookup, h) for h in hosts))
        node.mx[i] = (answer, dict(zip(hosts, found, strict=True)))

    for i, term in enumerate(node.terms):
        if term.has_macro or term.name not in {*SPF_LOOKUP_TERMS, "redirect"}:
            continue
        target = term.target or domain
        if term.name in ("include", "redirect"):
            jobs.append(child(i, target))
        elif term.name in ("a", "exists"):
            jobs.append(addresses(i, target))
        elif term.name == "mx":
            jobs.append(mx(i, target))
    await asyncio.gather(*jobs)
    return node


@dataclass(frozen=True)
class SpfBudget:
    lookups: int
    voids: int
    problems: tuple[str, ...]


def _redirect_applies(terms: Sequence[SpfTerm]) -> bool:
    # RFC 7208 §6.1: redirect is ignored when the record has an `all` mechanism.
    return not any(t.name == "all" and not t.modifier for t in terms)


def spf_budget(node: SpfNode) -> SpfBudget:
    """DNS-querying terms and void lookups of a full evaluation (RFC 7208 §4.6.4), plus structural problems."""
    lookups = 0
    voids = 0
    problems: list[str] = []

    def visit(n: SpfNode, via: str) -> None:
        nonlocal lookups, voids
        if n.truncated:
            problems.append(f"{via}{n.domain}: include loop or chain too deep")
            return
        if n.error:
            problems.append(f"{via}{n.domain}: {n.error}")
            return
        if not n.records:
            # RFC 7208 §5.2: include/redirect of a domain without SPF is a permerror.
            problems.append(f"{via}{n.domain}: no SPF record")
            return
        if len(n.records) > 1:
            problems.append(f"{via}{n.domain}: {len(n.records)} SPF records (RFC 7208 §3.2 allows one)")
            return
        for i, term in enumerate(n.terms):
            if term.modifier and (term.name != "redirect" or not _redirect_applies(n.terms)):
                continue
            if term.name not in SPF_LOOKUP_TERMS and term.name != "redirect":
                continue
            lookups += 1
            if term.name == "ptr":
                problems.append(f"{via}{n.domain}: `ptr` is deprecated (RFC 7208 §5.5) and slow for receivers")
            if i in n.children:
                child = n.children[i]
                if child.error is None and not child.records and not child.truncated:
                    voids += 1
                visit(child, f"{via}{n.domain} → ")
            elif i in n.addresses:
                voids += n.addresses[i].void
            elif i in n.mx:
                answer, _ = n.mx[i]
                voids += answer.void
                if len(answer.values) > SPF_MX_LIMIT:
                    problems.append(f"{via}{n.domain}: mx has {len(answer.values)} hosts (limit {SPF_MX_LIMIT})")

    visit(node, "")
    return SpfBudget(lookups, voids, tuple(problems))


def _ip_in(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, address: str, cidr: tuple[int | None, int | None]
) -> bool:
    try:
        candidate = ipaddress.ip_address(address)
    except ValueError:
        return False
    if candidate.version != ip.version:
        return False
    length = cidr[0] if ip.version == 4 else cidr[1]
    if length is None:
        return candidate == ip
    return ip in ipaddress.ip_network(f"{candidate}/{length}", strict=False)


def spf_result(node: SpfNode, ip: str) -> str:
    """check_host() result (RFC 7208 §4) for a client IP, on the walked data.

    Returns one of pass, fail, softfail, neutral, none, permerror, temperror. Terms with macros
    and `ptr` are not evaluated (they never match here), which can only make the result stricter.
    """
    address = ipaddress.ip_address(ip)
    if node.truncated:
        return "permerror"
    if node.error:
        return "temperror" if not node.records else "permerror"
    if not node.records:
        return "none"
    if len(node.records) > 1:
        return "permerror"
    for i, term in enumerate(node.terms):
        if term.modifier:
            continue
        matched = False
        if term.name == "all":
            matched = True
        elif term.name in ("ip4", "ip6"):
            matched = address in ipaddress.ip_network(term.value, strict=False)
        elif term.name == "a" and i in node.addresses:
            matched = any(_ip_in(address, a, term.cidr) for a in node.addresses[i].values)
        elif term.name == "mx" and i in node.mx:
            _, hosts = node.mx[i]
            matched = any(_ip_in(address, a, term.cidr) for answer in hosts.values() for a in answer.values)
        elif term.name == "exists" and i in node.addresses:
            matched = any(":" not in a for a in node.addresses[i].values)
        elif term.name == "include" and i in node.children:
            inner = spf_result(node.children[i], ip)
            # RFC 7208 §5.2: an included none is a permerror; temperror/permerror propagate.
            if inner in ("none", "permerror"):
                return "permerror"
            if inner == "temperror":
                return "temperror"
            matched = inner == "pass"
        if matched:
            return _QUALIFIERS[term.qualifier]
    if _redirect_applies(node.terms):
        for i, term in enumerate(node.terms):
            if term.modifier and term.name == "redirect" and i in node.children:
                inner = spf_result(node.children[i], ip)
                return "permerror" if inner == "none" else inner
    return "neutral"


# -- DKIM (RFC 6376) -----------------------------------------------------------------------------


def dkim_key(text: str) -> str:
    """The base64 public key (`p=`) of a DKIM key record, whitespace removed; "" when revoked.

    Raises:
        ValueError: not a tag list, or no p= tag.
    """
    tags = parse_tags(text)
    if "p" not in tags:
        raise ValueError("no p= tag")
    return "".join(tags["p"].split())


def short_key(key: str) -> str:
    """A key shortened for display: first and last characters."""
    return key if len(key) <= 24 else f"{key[:10]}…{key[-10:]}"


# -- DMARC (RFC 7489) ----------------------------------------------------------------------------

_DMARC_POLICIES = frozenset({"none", "quarantine", "reject"})


@dataclass(frozen=True)
class DmarcRecord:
    tags: dict[str, str]
    rua: tuple[str, ...]
    ruf: tuple[str, ...]


def parse_dmarc(text: str) -> tuple[DmarcRecord | None, list[str]]:
    """Parse a DMARC record (RFC 7489 §6.3); returns the record (None if unusable) and every problem."""
    problems: list[str] = []
    try:
        tags = parse_tags(text)
    except ValueError as e:
        return None, [str(e)]
    if text.split(";", 1)[0].replace(" ", "") != "v=DMARC1":
        return None, ["must start with v=DMARC1"]
    policy = tags.get("p")
    if policy is None:
        problems.append("p= is required")
    elif policy.lower() not in _DMARC_POLICIES:
        problems.append(f"p={policy} is not none, quarantine or reject")
    for tag in ("sp", "np"):
        if tag in tags and tags[tag].lower() not in _DMARC_POLICIES:
            problems.append(f"{tag}={tags[tag]} is not none, quarantine or reject")
    # RFC 9989 §4.7: t (test mode) is y or n; psd is y, n or u.
    if "t" in tags and tags["t"].lower() not in ("y", "n"):
        problems.append(f"t={tags['t']} is not y or n")
    if "psd" in tags and tags["psd"].lower() not in ("y", "n", "u"):
        problems.append(f"psd={tags['psd']} is not y, n or u")
    for tag in ("adkim", "aspf"):
        if tag in tags and tags[tag].lower() not in ("r", "s"):
            problems.append(f"{tag}={tags[tag]} is not r or s")
    if "pct" in tags and not (tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100):
        problems.append(f"pct={tags['pct']} is not 0-100")
    if "ri" in tags and not tags["ri"].isdigit():
        problems.append(f"ri={tags['ri']} is not a number of seconds")
    if "fo" in tags and not all(o.strip() in ("0", "1", "d", "s") for o in tags["fo"].split(":")):
        problems.append(f"fo={tags['fo']} is not a colon list of 0, 1, d, s")
    uris: dict[str, tuple[str, ...]] = {}
    for tag in ("rua", "ruf"):
        addresses: list[str] = []
        for uri in (u.strip() for u in tags.get(tag, "").split(",") if u.strip()):
            match = re.fullmatch(r"mailto:([^@!\s]+@[^!\s]+)(?:![0-9]+[kmgt]?)?", uri, flags=re.IGNORECASE)
            if not match:
                problems.append(f"{tag}: `{uri}` is not a mailto: URI")
                continue
            addresses.append(match.group(1))
        uris[tag] = tuple(addresses)
    return DmarcRecord(tags, uris["rua"], uris["ruf"]), problems


def report_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].rstrip(".").lower()


TREE_WALK_LABELS = 8
"""RFC 9989 §4.10: a DNS Tree Walk makes at most eight queries."""


def tree_walk_targets(name: str) -> list[str]:
    """The names whose `_dmarc` record a DNS Tree Walk from `name` queries, in order (RFC 9989 §4.10).

    First `name` itself; then, for a name of 8 or more labels, the shortcut straight to its 7
    rightmost labels; then one label less each step, down to the top-level domain.
    """
    labels = name.lower().rstrip(".").split(".")
    targets = [".".join(labels)]
    rest = labels[1:] if len(labels) < TREE_WALK_LABELS else labels[-(TREE_WALK_LABELS - 1) :]
    while rest:
        targets.append(".".join(rest))
        rest = rest[1:]
    return targets


def organizational_domain(start: str, found: Sequence[tuple[str, str | None]]) -> str:
    """RFC 9989 §4.10.2: the Organizational Domain from a Tree Walk's valid DMARC records.

    Args:
        start: where the walk started.
        found: (name, psd tag value or None) of each name with exactly one valid DMARC record, in
            walk order (longest name first); the walk stops after the first psd=n or psd=y.
    """
    start = start.lower().rstrip(".")
    for name, psd in found:
        if psd == "n":
            return name
        if psd == "y" and name != start:
            # The domain one label below the public suffix domain, on the way to `start`.
            below = start[: -len(name) - 1].rsplit(".", 1)[-1]
            return f"{below}.{name}"
    if not found:
        return start
    return min((name for name, _ in found), key=lambda n: n.count("."))


def report_authorization_name(domain: str, destination: str) -> str:
    """RFC 9990 §4: the destination publishes `<domain>._report._dmarc.<destination>`."""
    return f"{domain}._report._dmarc.{destination}"


# -- hosts ---------------------------------------------------------------------------------------

# Cloudflare's published proxy ranges, from https://www.cloudflare.com/ips-v4 and
# https://www.cloudflare.com/ips-v6 (the lists behind https://www.cloudflare.com/ips/). A mail
# hostname resolving here is a proxied ("orange cloud") record: Cloudflare proxies only HTTP(S),
# so SMTP/IMAP to it never reaches the server. Re-check the lists when updating mailstack.
CLOUDFLARE_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in (
        "173.245.48.0/20",
        "103.21.244.0/22",
        "103.22.200.0/22",
        "103.31.4.0/22",
        "141.101.64.0/18",
        "108.162.192.0/18",
        "190.93.240.0/20",
        "188.114.96.0/20",
        "197.234.240.0/22",
        "198.41.128.0/17",
        "162.158.0.0/15",
        "104.16.0.0/13",
        "104.24.0.0/14",
        "172.64.0.0/13",
        "131.0.72.0/22",
        "2400:cb00::/32",
        "2606:4700::/32",
        "2803:f800::/32",
        "2405:b500::/32",
        "2405:8100::/32",
        "2a06:98c0::/29",
        "2c0f:f248::/32",
    )
)


def is_cloudflare(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in CLOUDFLARE_RANGES)


# -- blocklists (Spamhaus) -----------------------------------------------------------------------

ZEN_ZONE = "zen.spamhaus.org"
DBL_ZONE = "dbl.spamhaus.org"

# https://docs.spamhaus.com/datasets/docs/source/40-real-world-usage/PublicMirrors/MTAs/020-Policy.html
# return codes. 127.255.255.x are errors, not listings: most importantly .254, "query via a
# public/open resolver", which is what a check through 8.8.8.8/1.1.1.1 always gets.
_ZEN_CODES = {
    "127.0.0.2": "SBL (spam source)",
    "127.0.0.3": "SBL CSS (snowshoe spam)",
    "127.0.0.4": "XBL (exploited/infected host)",
    "127.0.0.9": "SBL DROP (hijacked netblock)",
    "127.0.0.10": "PBL (ISP: dynamic/residential range that should not send mail directly)",
    "127.0.0.11": "PBL (Spamhaus: range that should not send mail directly)",
}
_DBL_CODES = {
    "127.0.1.2": "DBL spam domain",
    "127.0.1.4": "DBL phishing domain",
    "127.0.1.5": "DBL malware domain",
    "127.0.1.6": "DBL botnet C&C domain",
}
SPAMHAUS_ERRORS = {
    "127.255.255.252": "typing error in the DNSBL name",
    "127.255.255.254": "query came through a public/open resolver, which Spamhaus refuses",
    "127.255.255.255": "excessive number of queries",
    "127.0.1.255": "IP queries are prohibited on the DBL",
}


def zen_name(ip: str) -> str:
    """Spamhaus ZEN query name: reversed octets (IPv4) or nibbles (IPv6) + zen.spamhaus.org."""
    reverse = ipaddress.ip_address(ip).reverse_pointer
    return reverse.rsplit(".", 2)[0] + "." + ZEN_ZONE


def dbl_name(domain: str) -> str:
    return f"{domain}.{DBL_ZONE}"


def blocklist_meaning(addresses: Iterable[str], dbl: bool) -> tuple[list[str], list[str]]:
    """(listings, errors) for the A records a ZEN or DBL query returned."""
    codes = _DBL_CODES if dbl else _ZEN_CODES
    listings: list[str] = []
    errors: list[str] = []
    for a in sorted(set(addresses), key=ipaddress.ip_address):
        if a in SPAMHAUS_ERRORS:
            errors.append(SPAMHAUS_ERRORS[a])
        elif a in codes:
            listings.append(codes[a])
        elif dbl and a.startswith("127.0.1.") and int(a.rsplit(".", 1)[1]) >= 102:
            listings.append("DBL abused legitimate domain")
        else:
            listings.append(f"listed ({a})")
    return listings, errors
