"""Mail DNS: every record the mail domains need, published at each zone's DNS host or rendered as zone files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

import dns.rdtypes.ANY.CAA
import pulumi

if TYPE_CHECKING:
    import pulumi_cloudflare as cloudflare

from mailstack.config import dane, dns_formats
from mailstack.config.records import (
    RecordSpec,
    dkim_record,
    dkim_selectors,
    quoted_txt,
    sort_records,
    static_records,
    tlsa_record,
    to_rdata,
)
from mailstack.config.settings import DomainSettings, MailSettings
from mailstack.config.zonefile import render_zone_files

TLSA_USAGE, TLSA_SELECTOR, TLSA_MATCHING = 3, 1, 1
"""DANE-EE, SubjectPublicKeyInfo, SHA-256 (config/dane.py `tlsa_text`)."""

DkimId = tuple[str, str]
"""(domain, selector)."""


@dataclass(frozen=True)
class MailDnsArgs:
    settings: MailSettings
    """Resolved stack settings: domains, hostname, addresses, DNS provider and TTL."""
    dkim_public_keys: Mapping[DkimId, pulumi.Output[str]]
    """Public key PEM per (domain, selector), active and retired (DkimKeys.public_keys)."""
    tlsa_public_keys: Mapping[int, pulumi.Output[str]] = field(default_factory=dict)
    """SMTP key PEM per key generation, in use and next (DaneKeys.public_keys); empty without DANE."""


class MailDns(pulumi.ComponentResource):
    """The mail DNS records of every domain of the stack.

    Each zone is published by its backend (`domains.<d>.dns.provider`, else `dns.provider`):
    `cloudflare` (a `cloudflare.DnsRecord` per record), `rfc2136` (a dynamic `Rfc2136Record` per
    record), `digitalocean` (a `digitalocean.DnsRecord` per record), `route53` and `hetzner` (one
    `aws.route53.Record` / `hcloud.ZoneRrset` per RRset, as those APIs manage them); with `manual`
    nothing is registered. Either way the stack exports the same record list and zone files, which
    is what `verify` and users read. Record spellings per backend: config/dns_formats.py.
    """

    records: pulumi.Output[list[dict[str, object]]]
    """Every record as `{zone, name, type, content, priority, ttl, purpose}`, sorted by zone, name, type, content."""
    zone_files: pulumi.Output[dict[str, str]]
    """Zone name → BIND zone-file text."""
    dkim_records: pulumi.Output[list[dict[str, str]]]
    """The DKIM TXT records as `{domain, selector, name, content}`."""

    def __init__(self, name: str, args: MailDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:MailDns", name, None, opts)
        settings = args.settings
        static = static_records(settings)
        dkim: dict[DkimId, tuple[DomainSettings, str, pulumi.Output[RecordSpec]]] = {}
        for domain in settings.domains:
            for selector in dkim_selectors(domain):
                pem = args.dkim_public_keys[(domain.name, selector)]
                spec = pem.apply(partial(dkim_record, settings, domain, selector))
                dkim[(domain.name, selector)] = (domain, selector, spec)

        tlsa: dict[int, pulumi.Output[RecordSpec]] = {
            generation: pem.apply(partial(_tlsa_spec, settings, generation))
            for generation, pem in sorted(args.tlsa_public_keys.items())
        }
        dkim_specs = pulumi.Output.all(*(spec for _, _, spec in dkim.values()))
        key_specs = pulumi.Output.all(*(spec for _, _, spec in dkim.values()), *tlsa.values())
        everything = key_specs.apply(lambda specs: sort_records([*static, *specs]))
        self.records = everything.apply(lambda specs: [r.as_dict() for r in specs])
        self.zone_files = everything.apply(
            lambda specs: render_zone_files(specs, stack=settings.stack, provider=settings.zone_providers)
        )
        self.dkim_records = dkim_specs.apply(
            lambda specs: [
                {"domain": domain, "selector": selector, "name": spec.name, "content": spec.content}
                for (domain, selector), spec in sorted(zip(dkim, specs, strict=True), key=lambda pair: pair[0])
            ]
        )

        # Each zone goes to its own backend (`domains.<d>.dns.provider`, else `dns.provider`).
        # DKIM records exist (and are previewed) before their keys: their identity does not depend
        # on the key, only their content waits for it.
        providers = settings.zone_providers
        pending: dict[str, list[tuple[RecordSpec, pulumi.Output[str] | None]]] = {}
        for record in static:
            pending.setdefault(providers.get(record.zone, settings.dns_provider), []).append((record, None))
        for domain, selector, spec in dkim.values():
            content = spec.apply(lambda s: s.content)
            placeholder = dkim_record(settings, domain, selector, "")
            pending.setdefault(providers[domain.zone], []).append((placeholder, content))
        for generation, tlsa_spec in tlsa.items():
            # As for DKIM: the record (named by its key generation) exists before its key does.
            placeholder = tlsa_record(settings, generation, "")
            pending.setdefault(providers[placeholder.zone], []).append(
                (placeholder, tlsa_spec.apply(lambda s: s.content))
            )
        publishers = {
            "cloudflare": self._cloudflare,
            "rfc2136": self._rfc2136,
            "route53": self._route53,
            "digitalocean": self._digitalocean,
            "hetzner": self._hetzner,
        }
        for provider, records in sorted(pending.items()):
            if provider in publishers:
                publishers[provider](name, settings, records)

        self.register_outputs(
            {"records": self.records, "zone_files": self.zone_files, "dkim_records": self.dkim_records}
        )

    def _cloudflare(self, name: str, settings: MailSettings, records: list[Pending]) -> None:
        # Imported only here: pulumi_cloudflare loads its ~800 modules eagerly (about 2.7 s),
        # which a manual-DNS stack should not pay on every preview.
        import pulumi_cloudflare as cloudflare

        child = pulumi.ResourceOptions(parent=self)
        zone_ids = self._zone_ids(settings, {r.zone for r, _ in records})
        comment = f"managed by mailstack (stack {settings.stack})"
        for record, content in records:
            # Names are FQDNs: the API answers with FQDNs, so `@` or short names drift on every
            # refresh (cloudflare/terraform-provider-cloudflare#5517, #5378). Mail records are
            # never proxied: Cloudflare's proxy carries HTTP only and would hide the mail host.
            fields = cloudflare_fields(record)
            value: pulumi.Input[str] | None = fields.content if content is None else content.apply(quoted_txt)
            data = fields.data
            if record.type == "TLSA":
                # The API takes TLSA as structured data only, like SRV and CAA.
                known: pulumi.Input[str] = record.content if content is None else content
                data = cloudflare.DnsRecordDataArgs(
                    usage=TLSA_USAGE,
                    selector=TLSA_SELECTOR,
                    matching_type=TLSA_MATCHING,
                    certificate=pulumi.Output.from_input(known).apply(lambda c: c.split()[-1]),
                )
                value = None
            cloudflare.DnsRecord(
                f"{name}-{record.key}",
                zone_id=zone_ids[record.zone],
                name=record.name,
                type=record.type,
                content=value,
                priority=fields.priority,
                data=data,
                ttl=record.ttl,
                proxied=False,
                comment=comment,
                opts=_owned_by_ddns(settings, record, child, "content"),
            )

    def _rfc2136(self, name: str, settings: MailSettings, records: list[Pending]) -> None:
        from components.rfc2136_record import Rfc2136Record, Rfc2136RecordArgs

        server = settings.rfc2136
        assert server is not None  # config/checks.py requires dns.rfc2136 for this backend
        secret = pulumi.Output.secret(server.key_secret.get_secret_value())
        for record, content in records:
            Rfc2136Record(
                f"{name}-{record.key}",
                Rfc2136RecordArgs(
                    server=server.server,
                    port=server.port,
                    key_name=server.key_name,
                    key_algorithm=server.key_algorithm,
                    key_secret=secret,
                    zone=record.zone,
                    name=record.name,
                    type=record.type,
                    content=record.content if content is None else content,
                    priority=record.priority,
                    ttl=record.ttl,
                ),
                opts=_owned_by_ddns(settings, record, pulumi.ResourceOptions(parent=self), "content"),
            )

    def _route53(self, name: str, settings: MailSettings, records: list[Pending]) -> None:
        import pulumi_aws as aws  # loaded only for this backend, like pulumi_cloudflare

        zone_ids: dict[str, pulumi.Input[str]] = {}
        for zone in sorted({r.zone for r, _ in records}):
            configured = sorted({d.zone_id for d in settings.domains if d.zone == zone and d.zone_id})
            zone_ids[zone] = (
                configured[0]
                if configured
                else aws.route53.get_zone_output(
                    name=zone, private_zone=False, opts=pulumi.InvokeOutputOptions(parent=self)
                ).zone_id
            )
        for rrset, values in _rrsets(records, dns_formats.route53_values):
            aws.route53.Record(
                f"{name}-{rrset.key}",
                zone_id=zone_ids[rrset.zone],
                name=rrset.name,
                type=rrset.type,
                ttl=rrset.ttl,
                records=values,
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _digitalocean(self, name: str, settings: MailSettings, records: list[Pending]) -> None:
        import pulumi_digitalocean as digitalocean

        for record, content in records:
            fields = dns_formats.digitalocean_fields(record)
            digitalocean.DnsRecord(
                f"{name}-{record.key}",
                domain=record.zone,
                type=record.type,
                name=fields.name,
                value=fields.value if content is None else content,
                priority=fields.priority,
                weight=fields.weight,
                port=fields.port,
                flags=fields.flags,
                tag=fields.tag,
                ttl=fields.ttl,
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _hetzner(self, name: str, settings: MailSettings, records: list[Pending]) -> None:
        import pulumi_hcloud as hcloud

        for rrset, values in _rrsets(records, dns_formats.hetzner_values):
            zone = next((d.zone_id for d in settings.domains if d.zone == rrset.zone and d.zone_id), rrset.zone)
            hcloud.ZoneRrset(
                f"{name}-{rrset.key}",
                zone=zone,
                name=dns_formats.relative_name(rrset.records[0]),
                type=rrset.type,
                ttl=rrset.ttl,
                records=pulumi.Output.from_input(values).apply(lambda vs: [{"value": v} for v in vs]),
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _zone_ids(self, settings: MailSettings, zones: set[str]) -> dict[str, pulumi.Input[str]]:
        """Zone id per zone: `zoneId` from config when any domain of the zone sets it, else a lookup by name.

        The lookup needs Zone:Zone:Read; `zoneId` also sidesteps the broken filter lookups of some
        provider releases (cloudflare/terraform-provider-cloudflare#4958).
        """
        ids: dict[str, pulumi.Input[str]] = {}
        for zone in sorted(zones):
            configured = sorted({d.zone_id for d in settings.domains if d.zone == zone and d.zone_id})
            if configured:
                ids[zone] = configured[0]
            else:
                import pulumi_cloudflare as cloudflare  # see __init__: loaded only for this backend

                ids[zone] = cloudflare.get_zone_output(
                    filter={"name": zone, "match": "all"}, opts=pulumi.InvokeOutputOptions(parent=self)
                ).id
        return ids


def _tlsa_spec(settings: MailSettings, generation: int, public_key_pem: str) -> RecordSpec:
    return tlsa_record(settings, generation, dane.tlsa_text(public_key_pem))


def _owned_by_ddns(
    settings: MailSettings, record: RecordSpec, opts: pulumi.ResourceOptions, content: str
) -> pulumi.ResourceOptions:
    """The hostname's A record under `ddns`: created with `publicIPv4`, then its address is ddclient's.

    `ignore_changes` makes the engine keep the address from the state (ddclient's, after a refresh)
    instead of the config's, so `pulumi up` never puts an old address back (docs/dns.md, DDNS).
    """
    if settings.ddns is None or record.type != "A" or record.name != settings.ddns.hostname:
        return opts
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=[content]))


Pending = tuple[RecordSpec, "pulumi.Output[str] | None"]
"""A record to publish, and its content when it is not known yet (a DKIM key being generated)."""


def _rrsets(
    records: list[Pending], values: Callable[[dns_formats.RRset], list[str]]
) -> list[tuple[dns_formats.RRset, pulumi.Input[list[str]]]]:
    """Records grouped into RRsets, each with its provider values (an Output when a DKIM key is pending).

    A DKIM name holds only its DKIM record, so an RRset is either fully known or a single pending record.
    """
    pending = {r.key: content for r, content in records if content is not None}
    out: list[tuple[dns_formats.RRset, pulumi.Input[list[str]]]] = []
    for rrset in dns_formats.rrsets(r for r, _ in records):
        waiting = [pending[r.key] for r in rrset.records if r.key in pending]
        if waiting:
            out.append((rrset, waiting[0].apply(partial(_filled, values, rrset))))
        else:
            out.append((rrset, values(rrset)))
    return out


def _filled(values: Callable[[dns_formats.RRset], list[str]], rrset: dns_formats.RRset, text: str) -> list[str]:
    """The values of a one-record RRset whose content just became known."""
    record = replace(rrset.records[0], content=text)
    return values(dns_formats.RRset(rrset.zone, rrset.name, rrset.type, (record,)))


@dataclass(frozen=True)
class CloudflareFields:
    """The type-specific `DnsRecord` arguments of one record."""

    content: str | None
    priority: int | None
    data: cloudflare.DnsRecordDataArgs | None


def cloudflare_fields(record: RecordSpec) -> CloudflareFields:
    """How a record's content reaches the Cloudflare API.

    - TXT content is sent quoted and pre-split the way Cloudflare stores it (see `quoted_txt`).
    - MX: the exchange as content, the preference as the top-level `priority`.
    - SRV goes through `data`, which the API requires; the top-level `priority` is set too, since
      leaving it unset shows a change on every plan (cloudflare/terraform-provider-cloudflare#6684).
    - CAA goes through `data` (flags, tag, value), as the API requires.
    """
    if record.type == "TXT":
        return CloudflareFields(quoted_txt(record.content), None, None)
    if record.type == "MX":
        return CloudflareFields(record.content, record.priority, None)
    if record.type in ("SRV", "CAA"):
        import pulumi_cloudflare as cloudflare  # see MailDns.__init__: loaded only for this backend
    if record.type == "SRV":
        weight, port, target = record.content.split()
        data = cloudflare.DnsRecordDataArgs(priority=record.priority, weight=int(weight), port=int(port), target=target)
        return CloudflareFields(None, record.priority, data)
    if record.type == "CAA":
        rdata = to_rdata(record)
        assert isinstance(rdata, dns.rdtypes.ANY.CAA.CAA)
        data = cloudflare.DnsRecordDataArgs(flags=rdata.flags, tag=rdata.tag.decode(), value=rdata.value.decode())
        return CloudflareFields(None, None, data)
    return CloudflareFields(record.content, None, None)
