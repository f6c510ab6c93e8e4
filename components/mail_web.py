"""Mail web documents at Cloudflare: one Worker per zone on the custom domains `mta-sts.<d>`,
`autoconfig.<d>` and `autodiscover.<d>` (config/worker.py builds the script)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from mailstack.config.settings import MailSettings
from mailstack.config.worker import COMPATIBILITY_DATE, MAIN_MODULE, script_name, web_hosts, worker_script


@dataclass(frozen=True)
class MailWebArgs:
    settings: MailSettings
    """Resolved stack settings: the domains on Cloudflare DNS get a Worker (DomainSettings.hosts_web)."""


class MailWeb(pulumi.ComponentResource):
    """A `cloudflare.WorkersScript` per zone with documents, and a `WorkersCustomDomain` per web host.

    A custom domain brings its own DNS record and certificate (Cloudflare creates both), which is why
    MailDns publishes no record at these names (config/web_checks.py refuses extra ones).
    """

    hosts: list[str]
    """Every host name a Worker serves, sorted."""

    def __init__(self, name: str, args: MailWebArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:MailWeb", name, None, opts)
        # Imported only here, as in components/mail_dns.py: the module load costs seconds.
        import pulumi_cloudflare as cloudflare

        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.hosts = []
        for zone in sorted({d.zone for d in settings.domains}):
            domains = [d for d in settings.domains if d.zone == zone and d.hosts_web and web_hosts(settings, d)]
            if not domains:
                continue
            configured = sorted({d.zone_id for d in settings.domains if d.zone == zone and d.zone_id})
            invoke = pulumi.InvokeOutputOptions(parent=self)
            # Workers belong to an account, custom domains to a zone: the zone lookup gives both.
            found = (
                cloudflare.get_zone_output(zone_id=configured[0], opts=invoke)
                if configured
                else cloudflare.get_zone_output(filter={"name": zone, "match": "all"}, opts=invoke)
            )
            zone_id: pulumi.Input[str] = configured[0] if configured else found.id
            account_id = found.apply(lambda z: z.account.id)
            script = cloudflare.WorkersScript(
                f"{name}-{zone}",
                account_id=account_id,
                script_name=script_name(settings.stack, zone),
                content=worker_script(settings, domains),
                main_module=MAIN_MODULE,
                compatibility_date=COMPATIBILITY_DATE,
                opts=child,
            )
            for domain in domains:
                for host in web_hosts(settings, domain):
                    cloudflare.WorkersCustomDomain(
                        f"{name}-{host}",
                        account_id=account_id,
                        hostname=host,
                        service=script.script_name,
                        zone_id=zone_id,
                        opts=child,
                    )
                    self.hosts.append(host)
        self.hosts.sort()
        self.register_outputs({"hosts": self.hosts})
