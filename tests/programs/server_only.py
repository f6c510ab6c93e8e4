"""Accounts + HostTarget + DkimKeys + MailServer only: the host side of __main__.py, without MailDns."""

import pulumi

from components.accounts import Accounts, AccountsArgs
from components.dkim_keys import DkimKeys, DkimKeysArgs
from components.host_target import HostTarget, HostTargetArgs
from components.mail_server import MailServer, MailServerArgs
from components.stack_config import read_settings

settings = read_settings()
accounts = Accounts("accounts", AccountsArgs(accounts=settings.accounts))
host = HostTarget("host", HostTargetArgs(target=settings.target, stack=settings.stack))
dkim = DkimKeys("dkim", DkimKeysArgs(domains=settings.domains))
server = MailServer("mail", MailServerArgs(settings=settings, host=host, dkim=dkim, accounts=accounts))

pulumi.export("containerName", server.container_name)
pulumi.export("generatedPasswords", accounts.generated_passwords)
