"""Checks of the web documents and DANE settings (run by `load_settings` through config.settings_checks)."""

from __future__ import annotations

from collections.abc import Iterator

from mailstack.config.errors import Problem, key_path, problem, set_command
from mailstack.config.records import managed_zone, owner_name
from mailstack.config.settings import MailSettings
from mailstack.config.worker import web_hosts


def worker_names(settings: MailSettings) -> Iterator[Problem]:
    """An extra record at a name a Worker custom domain takes (`mta-sts.<d>`, `autoconfig.<d>`, ...).

    Cloudflare creates the custom domain's DNS record itself ("Cloudflare will create DNS records
    ... on your behalf", developers.cloudflare.com/workers/configuration/routing/custom-domains/),
    and that record is not the DNS API's to manage: a record of our own at the name would collide.
    """
    for domain in settings.domains:
        if not domain.hosts_web:
            continue
        hosts = set(web_hosts(settings, domain))
        for i, record in enumerate(domain.records):
            name = owner_name(record.name, domain.name)
            if name in hosts:
                path: list[str | int] = ["domains", domain.name, "records", i]
                yield problem(
                    [*path, "name"],
                    f"{name} is served by mailstack's Worker (MTA-STS or autoconfig), which creates its own DNS "
                    "record there; remove this record",
                    f"pulumi config rm --path '{key_path(path)}'",
                )


def dane(settings: MailSettings) -> Iterator[Problem]:
    """`dane: true` only where mailstack can publish the TLSA, sign the zones and knows the key."""
    if not settings.dane:
        return
    rm = "pulumi config rm mailstack:dane"
    elsewhere = sorted({f"{d.zone} ({d.dns_provider})" for d in settings.domains if d.dns_provider != "cloudflare"})
    if elsewhere:
        yield problem(
            ["dane"],
            "needs DNSSEC on every mail zone (RFC 7672 §2.2), which mailstack turns on only at Cloudflare; "
            f"it cannot check or manage it for {', '.join(elsewhere)}",
            f"{rm} (or move the zones to Cloudflare: {set_command(['dns', 'provider'], 'cloudflare')})",
        )
    if managed_zone(settings, settings.hostname) is None:
        yield problem(
            ["dane"],
            f"the TLSA record _25._tcp.{settings.hostname} belongs in the zone of {settings.hostname}, "
            "which is not a zone of this stack",
            rm,
        )
    if settings.tls.mode == "existing":
        yield problem(
            ["dane"],
            "with tls.mode existing the key is not mailstack's, so its TLSA could not follow a key change",
            f"{rm} (or {set_command(['tls', 'mode'], 'letsencrypt')})",
        )


ALL = (worker_names, dane)
