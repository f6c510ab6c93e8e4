"""The stack outputs `verify` reads: the contract, parsed into expected records."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from mailstack.verify.values import canonical, display, txt_kind

RECORD_TYPES = ("MX", "TXT", "A", "AAAA", "SRV", "CNAME", "CAA", "TLSA")


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
class WebDocument:
    """One entry of the stack's `webDocuments` output: an HTTPS document a mail domain serves."""

    url: str
    content_type: str
    purpose: str = ""

    @property
    def host(self) -> str:
        return self.url.split("/", 3)[2]

    @property
    def path(self) -> str:
        return "/" + self.url.split("/", 3)[3]


@dataclass(frozen=True)
class StackOutputs:
    """What the stack says should exist."""

    hostname: str
    ipv4: str | None
    ipv6: str | None
    records: tuple[ExpectedRecord, ...]
    web_documents: tuple[WebDocument, ...] = ()
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
    documents = _web_documents(data.get("webDocuments"), reasons)
    ddns = data.get("ddns")
    ddns_host: str | None = None
    if ddns is not None:
        if isinstance(ddns, Mapping) and isinstance(ddns.get("hostname"), str):
            ddns_host = _fqdn(str(ddns["hostname"]))
        else:
            reasons.append("`ddns` must be an object with a string `hostname`")
    if reasons:
        raise OutputsError(reasons)
    return StackOutputs(_fqdn(hostname), ips["publicIPv4"], ips["publicIPv6"], tuple(records), documents, ddns_host)


def _web_documents(raw: object, reasons: list[str]) -> tuple[WebDocument, ...]:
    """`webDocuments` (optional: stacks from before MTA-STS hosting have none)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reasons.append("`webDocuments` must be a list")
        return ()
    out = []
    for i, entry in enumerate(raw):
        url = entry.get("url") if isinstance(entry, Mapping) else None
        kind = entry.get("contentType") if isinstance(entry, Mapping) else None
        if not (isinstance(url, str) and url.startswith("https://") and url.count("/") >= 3 and isinstance(kind, str)):
            reasons.append(f"webDocuments[{i}] needs an https `url` with a path and a `contentType`")
            continue
        assert isinstance(entry, Mapping)
        out.append(WebDocument(url, kind, str(entry.get("purpose") or "")))
    return tuple(out)
