"""Importing mailboxes from an old IMAP server (`accounts.<a>.migrateFrom`) with Dovecot's dsync inside DMS."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.host_target import HostTarget
from mailstack.config import containers, migration
from mailstack.config.settings import MailSettings


@dataclass(frozen=True)
class MigrationArgs:
    settings: MailSettings
    host: HostTarget
    container_name: pulumi.Input[str]
    """The DMS container the import runs in (`docker exec`)."""


class Migration(pulumi.ComponentResource):
    """The import script and, per account, its imapc config and the old password (0600) in `config/migrate/`.

    Nothing here runs the import: a user starts it (the `migration` output) when ready, as often as
    needed. DMS's change detector does not watch `migrate/`, so these files never reload or
    restart DMS.
    """

    command: pulumi.Output[str]

    def __init__(self, name: str, args: MigrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:Migration", name, None, opts)
        settings, host = args.settings, args.host
        child = pulumi.ResourceOptions(parent=self)
        config_dir = containers.config_dir(settings)
        host.write_file(
            f"{name}-script", f"{config_dir}/{migration.SUBDIR}/{migration.SCRIPT_FILE}", migration.script_text(), child
        )
        for address, mf in sorted(migration.migrations(settings.accounts).items()):
            assert mf.password is not None  # config.migration.checks requires it
            for relative, text in migration.files(address, mf).items():
                host.write_file(f"{name}-{address}-conf", f"{config_dir}/{relative}", text, child)
            host.write_file(
                f"{name}-{address}-password",
                f"{config_dir}/{migration.password_file(address)}",
                mf.password.get_secret_value(),
                child,
            )
        self.command = pulumi.Output.from_input(args.container_name).apply(migration.command)
        self.register_outputs({"command": self.command})
