"""mailstack: docker-mailserver on a Docker host plus every DNS record its mail needs, in one stack."""

import pulumi

from components.accounts import Accounts, AccountsArgs
from components.backup import Backup, BackupArgs
from components.dane_keys import DaneKeys, DaneKeysArgs
from components.ddns import Ddns, DdnsArgs
from components.dkim_keys import DkimKeys, DkimKeysArgs
from components.dnssec import Dnssec, DnssecArgs
from components.gc_tuning import tune_gc
from components.host_target import HostTarget, HostTargetArgs
from components.mail_dns import MailDns, MailDnsArgs
from components.mail_server import MailServer, MailServerArgs
from components.mail_web import MailWeb, MailWebArgs
from components.migration import Migration, MigrationArgs
from components.stack_config import read_settings
from mailstack.config.migration import migrations
from mailstack.config.worker import documents_output

tune_gc()  # a third of a large stack's evaluation went to the garbage collector

# Validation happens here, before any resource exists: a bad config registers nothing.
settings = read_settings()

# Accounts first: their hashing waits for the stack's hash seed, and the seed resolves sooner the
# fewer registrations are queued ahead of it; the workers then hash while the rest registers.
accounts = Accounts("accounts", AccountsArgs(accounts=settings.accounts))
host = HostTarget("host", HostTargetArgs(target=settings.target, stack=settings.stack))
dkim = DkimKeys("dkim", DkimKeysArgs(domains=settings.domains))
# DANE (mailstack:dane): the SMTP key is the stack's, so its TLSA is published before it is used.
dane = DaneKeys("dane", DaneKeysArgs(settings=settings)) if settings.dane else None
server = MailServer(
    "mail",
    MailServerArgs(
        settings=settings,
        host=host,
        dkim=dkim,
        accounts=accounts,
        dane_key=dane.in_use_private_key_pem if dane else None,
    ),
)
dns = MailDns(
    "dns",
    MailDnsArgs(
        settings=settings, dkim_public_keys=dkim.public_keys, tlsa_public_keys=dane.public_keys if dane else {}
    ),
)

pulumi.export("hostname", settings.hostname)
pulumi.export("publicIPv4", settings.public_ipv4)
pulumi.export("publicIPv6", settings.public_ipv6)
pulumi.export("containerName", server.container_name)
pulumi.export("accounts", [a.address for a in settings.accounts])
# Secret output: `pulumi stack output generatedPasswords --show-secrets` reveals them.
pulumi.export("generatedPasswords", accounts.generated_passwords)
pulumi.export("dkimRecords", dns.dkim_records)
pulumi.export("dnsRecords", dns.records)
pulumi.export("zoneFile", dns.zone_files)
# MTA-STS policies and client autoconfiguration: a Worker at Cloudflare, else files `render` writes.
pulumi.export("webDocuments", documents_output(settings))
if settings.hosts_web:  # the domains on Cloudflare DNS get a Worker for their documents
    MailWeb("web", MailWebArgs(settings=settings))
if settings.dane:  # the DS record of each zone, to set at its registrar
    pulumi.export("dnssecDs", Dnssec("dnssec", DnssecArgs(settings=settings)).ds)
# Backups and imports exist only when configured (docs/host.md, "Backups"; README, "Migration").
if settings.backup is not None:
    pulumi.export("backup", Backup("backup", BackupArgs(settings=settings, host=host, server=server)).info)
# A changing home address: ddclient on the host owns the hostname's A record after its creation.
if settings.ddns is not None:
    token = pulumi.Config("cloudflare").get_secret("apiToken")
    pulumi.export(
        "ddns", Ddns("ddns", DdnsArgs(settings=settings, host=host, cloudflare_token=token, after=[dns])).info
    )
if migrations(settings.accounts):
    migration = Migration(
        "migration", MigrationArgs(settings=settings, host=host, container_name=server.container_name)
    )
    pulumi.export("migration", migration.command)
