"""A program that builds only the DKIM keys and the mail DNS, for testing MailDns without the mail server.

Run by tests through `tests.harness.run_program(..., program=...)`; the exports mirror __main__.py's.
"""

import pulumi

from components.dkim_keys import DkimKeys, DkimKeysArgs
from components.mail_dns import MailDns, MailDnsArgs
from components.stack_config import read_settings

settings = read_settings()
dkim = DkimKeys("dkim", DkimKeysArgs(domains=settings.domains))
dns = MailDns("dns", MailDnsArgs(settings=settings, dkim_public_keys=dkim.public_keys))

pulumi.export("dkimRecords", dns.dkim_records)
pulumi.export("dnsRecords", dns.records)
pulumi.export("zoneFile", dns.zone_files)
