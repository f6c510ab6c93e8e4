"""A program that builds only the mail DNS and the mail web Worker, as __main__.py wires them.

Run by tests through `tests.harness.run_program(..., program=...)`.
"""

import pulumi

from components.dkim_keys import DkimKeys, DkimKeysArgs
from components.mail_dns import MailDns, MailDnsArgs
from components.mail_web import MailWeb, MailWebArgs
from components.stack_config import read_settings
from mailstack.config.worker import documents_output

settings = read_settings()
dkim = DkimKeys("dkim", DkimKeysArgs(domains=settings.domains))
dns = MailDns("dns", MailDnsArgs(settings=settings, dkim_public_keys=dkim.public_keys))
pulumi.export("webDocuments", documents_output(settings))
if settings.hosts_web:
    MailWeb("web", MailWebArgs(settings=settings))
