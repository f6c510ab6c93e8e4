"""DNSSEC for the stack's Cloudflare zones (for DANE): signing on, and the DS record for the registrar."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from mailstack.config.settings import MailSettings


@dataclass(frozen=True)
class DnssecArgs:
    settings: MailSettings
    """Every zone of the stack is on Cloudflare (config/web_checks.py refuses DANE otherwise) and is signed."""


class Dnssec(pulumi.ComponentResource):
    """A `cloudflare.ZoneDnssec` (status active) per zone; `ds` maps each zone to its DS record.

    RFC 7672 §2.2: DANE applies only when the MX lookup and the TLSA lookup both validate, so every
    mail domain's zone is signed, not only the hostname's. Signing is useless until the DS record is
    at the registrar (Cloudflare cannot set it: the parent zone is the registry's), hence the output.
    The resources are kept on delete: turning `dane` off must not unsign a zone whose DS is still at
    the registrar, which would make every answer of the zone fail validation (RFC 4035 §5.5).
    """

    ds: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: DnssecArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:Dnssec", name, None, opts)
        import pulumi_cloudflare as cloudflare  # loaded only for this backend (components/mail_dns.py)

        settings = args.settings
        child = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        self.ds = {}
        for zone in sorted({d.zone for d in settings.domains}):
            configured = sorted({d.zone_id for d in settings.domains if d.zone == zone and d.zone_id})
            zone_id: pulumi.Input[str] = (
                configured[0]
                if configured
                else cloudflare.get_zone_output(
                    filter={"name": zone, "match": "all"}, opts=pulumi.InvokeOutputOptions(parent=self)
                ).id
            )
            signed = cloudflare.ZoneDnssec(f"{name}-{zone}", zone_id=zone_id, status="active", opts=child)
            self.ds[zone] = signed.ds
        self.register_outputs({"ds": self.ds})
