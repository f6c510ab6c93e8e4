"""Checks of the web documents and DANE settings (run by `load_settings` through config.settings_checks)."""

from __future__ import annotations

from collections.abc import Iterator

from config.errors import Problem, key_path, problem
from config.records import owner_name
from config.settings import MailSettings
from config.worker import web_hosts


def worker_names(settings: MailSettings) -> Iterator[Problem]:
    """An extra record at a name a Worker custom domain takes (`mta-sts.<d>`, `autoconfig.<d>`, ...).

    Cloudflare creates the custom domain's DNS record itself ("Cloudflare will create DNS records
    ... on your behalf", developers.cloudflare.com/workers/configuration/routing/custom-domains/),
    and that record is not the DNS API's to manage: a record of our own at the name would collide.
    """
    if not settings.hosts_web:
        return
    for domain in settings.domains:
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


ALL = (worker_names,)
