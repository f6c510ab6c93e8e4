"""How a logical record (config/records.py `RecordSpec`) is spelled for each DNS backend's Pulumi provider.

Pure functions, no Pulumi: components/mail_dns.py passes their results to the provider resources,
and tests assert them exactly. Each backend's rules, with where they come from:

- Route 53 (pulumi-aws `route53.Record`, terraform-provider-aws internal/service/route53): one
  resource per RRset (name + type) with every value in `records`. The provider wraps each TXT value
  in one pair of quotes when writing and strips one pair when reading (`flattenTxtEntry` /
  `expandTxtEntry` in flex.go), and splits nothing: a value over 255 bytes must carry the string
  boundaries itself as `""` (the `records` documentation: `"first255characters\"\"morecharacters"`).
  Names are FQDNs; MX values are `<preference> <exchange>`, SRV `<priority> <weight> <port> <target>`.
- DigitalOcean (pulumi-digitalocean `DnsRecord`, terraform-provider-digitalocean
  digitalocean/domain/resource_record.go): one resource per record; `name` relative to the domain
  (`@` for the apex: Read stores the API's relative name); MX, CNAME, SRV and CAA `value`s end in a
  dot, because Read appends one to what the API returns; priority, weight, port, flags and tag are
  fields of their own. TXT values are sent as the plain text (Read stores the API's `data` as is).
- Hetzner (pulumi-hcloud `ZoneRrset`, the Hetzner Cloud DNS API; terraform-provider-hcloud
  docs/resources/zone_rrset.md): one resource per RRset, `name` relative (`@` for the apex),
  values in zone-file presentation form (absolute names end in a dot), TXT as quoted strings of at
  most 255 bytes joined by one space (hcloud-go hcloud/exp/zoneutil `FormatTXTRecord`, which the
  provider's `txt_record` helper uses).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.rdtypes.ANY.CAA

from mailstack.config.records import RecordSpec, quoted_txt, sort_records, to_rdata, txt_strings


@dataclass(frozen=True)
class RRset:
    """All records of one (zone, name, type): what Route 53 and Hetzner manage as one resource."""

    zone: str
    name: str
    type: str
    records: tuple[RecordSpec, ...]

    @property
    def key(self) -> str:
        """Names the provider resource: `<type>-<name>` (one RRset per name and type)."""
        return f"{self.type.lower()}-{self.name}"

    @property
    def ttl(self) -> int:
        """One TTL per RRset (RFC 2181 §5.2): the smallest of its records' TTLs, as a zone file gets."""
        return min(r.ttl for r in self.records)


def rrsets(records: Iterable[RecordSpec]) -> list[RRset]:
    """Records grouped by (zone, name, type), in the stable order of `sort_records`."""
    groups: dict[tuple[str, str, str], list[RecordSpec]] = {}
    for record in sort_records(records):
        groups.setdefault((record.zone, record.name, record.type), []).append(record)
    return [RRset(zone, name, rtype, tuple(group)) for (zone, name, rtype), group in groups.items()]


def relative_name(record: RecordSpec) -> str:
    """The owner relative to the zone, `@` for the apex."""
    if record.name == record.zone:
        return "@"
    return record.name[: -len(record.zone) - 1]


def _absolute_rdata(record: RecordSpec) -> str:
    return str(to_rdata(record).to_text(relativize=False))


# -- Route 53 --------------------------------------------------------------------------------------


def _route53_escape(data: bytes) -> str:
    # Route 53 TXT values follow zone-file quoting: `"` and `\` inside a string are backslash-escaped.
    return data.decode("utf-8", errors="surrogateescape").replace("\\", "\\\\").replace('"', '\\"')


def route53_txt_value(text: str) -> str:
    """One TXT value as pulumi-aws takes it: the provider adds the outer quotes, `""` separates strings."""
    return '""'.join(_route53_escape(s) for s in txt_strings(text))


def route53_value(record: RecordSpec) -> str:
    if record.type == "TXT":
        return route53_txt_value(record.content)
    return _absolute_rdata(record)


def route53_values(rrset: RRset) -> list[str]:
    return [route53_value(r) for r in rrset.records]


# -- DigitalOcean ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitalOceanFields:
    """The `DnsRecord` arguments besides `domain` (the zone) and `type`."""

    name: str
    value: str
    ttl: int
    priority: int | None = None
    weight: int | None = None
    port: int | None = None
    flags: int | None = None
    tag: str | None = None


def digitalocean_fields(record: RecordSpec) -> DigitalOceanFields:
    name, ttl = relative_name(record), record.ttl
    if record.type == "MX":
        return DigitalOceanFields(name, record.content + ".", ttl, priority=record.priority)
    if record.type == "SRV":
        weight, port, target = record.content.split()
        value = "." if target == "." else target + "."
        return DigitalOceanFields(name, value, ttl, priority=record.priority, weight=int(weight), port=int(port))
    if record.type == "CNAME":
        return DigitalOceanFields(name, record.content + ".", ttl)
    if record.type == "CAA":
        rdata = to_rdata(record)
        assert isinstance(rdata, dns.rdtypes.ANY.CAA.CAA)
        value, tag = rdata.value.decode(), rdata.tag.decode()
        return DigitalOceanFields(name, value if tag == "iodef" else value + ".", ttl, flags=rdata.flags, tag=tag)
    return DigitalOceanFields(name, record.content, ttl)


# -- Hetzner ---------------------------------------------------------------------------------------


def hetzner_value(record: RecordSpec) -> str:
    if record.type == "TXT":
        return quoted_txt(record.content)
    return _absolute_rdata(record)


def hetzner_values(rrset: RRset) -> list[str]:
    return [hetzner_value(r) for r in rrset.records]
