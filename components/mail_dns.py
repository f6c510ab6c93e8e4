"""Mail DNS: every record the mail domains need, published at Cloudflare or rendered as zone files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import dns.rdtypes.ANY.CAA
import pulumi

if TYPE_CHECKING:
    import pulumi_cloudflare as cloudflare

from config import dane
from config.records import (
    RecordSpec,
    dkim_record,
    dkim_selectors,
    quoted_txt,
    sort_records,
    static_records,
    tlsa_record,
    to_rdata,
)
from config.settings import DomainSettings, MailSettings
from config.zonefile import render_zone_files

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

    With `dns.provider: cloudflare` each record becomes a `cloudflare.DnsRecord` child; with `manual`
    nothing is registered and the records are only outputs. Either way the stack exports the same
    record list and zone files, which is what `verify` and users read.
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
            lambda specs: render_zone_files(specs, stack=settings.stack, provider=settings.dns_provider)
        )
        self.dkim_records = dkim_specs.apply(
            lambda specs: [
                {"domain": domain, "selector": selector, "name": spec.name, "content": spec.content}
                for (domain, selector), spec in sorted(zip(dkim, specs, strict=True), key=lambda pair: pair[0])
            ]
        )

        if settings.dns_provider == "cloudflare":
            # Imported only here: pulumi_cloudflare loads its ~800 modules eagerly (about 2.7 s),
            # which a manual-DNS stack should not pay on every preview.
            import pulumi_cloudflare as cloudflare

            child = pulumi.ResourceOptions(parent=self)
            zone_ids = self._zone_ids(settings, {r.zone for r in static} | {d.zone for d in settings.domains})
            comment = f"managed by mailstack (stack {settings.stack})"

            def publish(record: RecordSpec, content: pulumi.Input[str] | None = None) -> None:
                # Names are FQDNs: the API answers with FQDNs, so `@` or short names drift on every
                # refresh (cloudflare/terraform-provider-cloudflare#5517, #5378). Mail records are
                # never proxied: Cloudflare's proxy carries HTTP only and would hide the mail host.
                fields = cloudflare_fields(record)
                value: pulumi.Input[str] | None = fields.content if content is None else content
                data = fields.data
                if record.type == "TLSA":
                    # The API takes TLSA as structured data only, like SRV and CAA.
                    data = cloudflare.DnsRecordDataArgs(
                        usage=TLSA_USAGE,
                        selector=TLSA_SELECTOR,
                        matching_type=TLSA_MATCHING,
                        certificate=pulumi.Output.from_input(value or record.content).apply(lambda c: c.split()[-1]),
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
                    opts=child,
                )

            for record in static:
                publish(record)
            for domain, selector, spec in dkim.values():
                # The identity of a DKIM record does not depend on its key, so the resource exists
                # (and is previewed) before the key does; only its content waits for the key.
                publish(dkim_record(settings, domain, selector, ""), spec.apply(lambda s: quoted_txt(s.content)))
            for generation, tlsa_spec in tlsa.items():
                # As for DKIM: the record (named by its key generation) exists before its key does.
                publish(tlsa_record(settings, generation, ""), tlsa_spec.apply(lambda s: s.content))

        self.register_outputs(
            {"records": self.records, "zone_files": self.zone_files, "dkim_records": self.dkim_records}
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
