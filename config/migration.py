"""Importing mailboxes from an old IMAP server (`accounts.<a>.migrateFrom`): checks and the files DMS's Dovecot reads.

Pure: no Pulumi. The import is Dovecot's own dsync (`doveadm backup -R … imapc:`), run inside the
DMS container by config/scripts/mailstack-migrate.sh. Per account, the stack writes two files into
the config volume's `migrate/` directory: a Dovecot config that includes DMS's own config and adds
the `imapc_*` settings, and the old server's password alone in a 0600 file that the config reads
with Dovecot's `<file` syntax, so the password is never on doveadm's command line.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from mailstack.config.backup_model import MigrateFrom
from mailstack.config.dms_files import CONTAINER_CONFIG_DIR
from mailstack.config.errors import Problem, problem, set_command
from mailstack.config.names import InvalidNameError, is_ip, normalise_address, to_ascii

SCRIPT = Path(__file__).parent / "scripts" / "mailstack-migrate.sh"
SUBDIR = "migrate"
"""Inside the config directory (host `<dataDir>/config/migrate`, container /tmp/docker-mailserver/migrate)."""
SCRIPT_FILE = "mailstack-migrate.sh"
DMS_DOVECOT_CONFIG = "/etc/dovecot/dovecot.conf"
CA_DIR = "/etc/ssl/certs"
DEFAULT_PORTS = {"imaps": 993, "starttls": 143, "none": 143}


class _AccountLike(Protocol):
    """What the checks read of config.model.Account."""

    @property
    def migrate_from(self) -> MigrateFrom | None: ...


def checks(accounts: Mapping[str, _AccountLike], *, secret: bool) -> Iterator[Problem]:
    """Problems of every `accounts.<a>.migrateFrom`."""
    for key, account in accounts.items():
        mf = account.migrate_from
        if mf is None:
            continue
        base: list[str | int] = ["accounts", key, "migrateFrom"]
        if not mf.user:
            yield problem([*base, "user"], "is required (the login on the old server)", value="<login>")
        if is_ip(mf.host) is False:
            try:
                to_ascii(mf.host)
            except InvalidNameError as exc:
                yield problem([*base, "host"], str(exc), value="imap.old-provider.example")
        if mf.tls == "none" and not _loopback(mf.host):
            yield problem(
                [*base, "tls"],
                f"'none' sends the old server's password in clear over the network to {mf.host}; use imaps or "
                "starttls (or an SSH tunnel to 127.0.0.1)",
                value="imaps",
            )
        if mf.password is None or not mf.password.get_secret_value():
            yield problem(
                [*base, "password"],
                "is required (the password on the old server)",
                set_command([*base, "password"], "<old password>", secret=True),
            )
        elif not secret:
            yield problem(
                [*base, "password"],
                "is stored in plain text; passwords must be set with --secret",
                set_command([*base, "password"], "<old password>", secret=True),
            )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def file_base(address: str) -> str:
    """File name stem for an account (`me@example.com`), relative to the config directory."""
    return f"{SUBDIR}/{normalise_address(address)}"


def imapc_config(mf: MigrateFrom, password_file: str, main_config: str = DMS_DOVECOT_CONFIG) -> str:
    """The Dovecot config doveadm reads (`doveadm -c <this>`) to reach the old server through imapc.

    It includes DMS's own config first, so users, mail location and the UID/GID stay DMS's; the
    `imapc_*` settings only define the `imapc:` location named on the command line (Dovecot
    imapc docs: "Migration" with dsync). `imapc_features`: `rfc822.size` and `fetch-headers`
    avoid fetching whole messages for sizes and header searches (Dovecot's migration example).
    """
    port = mf.port or DEFAULT_PORTS[mf.tls]
    lines = [
        "# mailstack: import from the old server with `doveadm backup -R imapc:` (config/migration.py).",
        f"!include {main_config}",
        f"imapc_host = {mf.host}",
        f"imapc_port = {port}",
        f"imapc_ssl = {'no' if mf.tls == 'none' else mf.tls}",
        "imapc_ssl_verify = yes",
        f"ssl_client_ca_dir = {CA_DIR}",
        f"imapc_user = {mf.user}",
        # `<file`: Dovecot reads the value from the file (0600), so it is neither here nor in argv.
        f"imapc_password = <{password_file}",
        "imapc_features = rfc822.size fetch-headers",
        "mail_prefetch_count = 20",
        # dsync refuses mailboxes whose hierarchy separators differ ("Mail locations must use the
        # same hierarchy separator", seen with DMS 15.1, whose inbox namespace has none set, so
        # Maildir++'s "." applies). For this run only, the local namespace takes the old server's
        # separator; the Maildir++ names on disk (.Folder.Sub) are the same either way, so DMS's
        # IMAP clients see the same folders afterwards.
        "namespace inbox {",
        f"  separator = {mf.separator}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def migrations(accounts: Mapping[str, _AccountLike] | tuple[object, ...]) -> dict[str, MigrateFrom]:
    """address → migrateFrom for the accounts that declare one (resolved `AccountSettings` tuple)."""
    out: dict[str, MigrateFrom] = {}
    for account in accounts if isinstance(accounts, tuple) else accounts.values():
        mf = getattr(account, "migrate_from", None)
        address = getattr(account, "address", None)
        if mf is not None and isinstance(address, str):
            out[address] = mf
    return out


def files(address: str, mf: MigrateFrom, container_config_dir: str = CONTAINER_CONFIG_DIR) -> dict[str, str]:
    """Relative path (in the config directory) → text of the non-secret files for one account."""
    base = file_base(address)
    return {f"{base}.conf": imapc_config(mf, f"{container_config_dir}/{base}.password")}


def password_file(address: str) -> str:
    return f"{file_base(address)}.password"


def command(container: str, accounts: tuple[str, ...] = (), *, final: bool = False, docker: str = "docker") -> str:
    """The command that runs the import for `accounts` (all declared ones when empty)."""
    argv = [docker, "exec", container, "sh", f"{CONTAINER_CONFIG_DIR}/{SUBDIR}/{SCRIPT_FILE}"]
    if final:
        argv.append("--final")
    argv += list(accounts)
    return " ".join(shlex.quote(a) for a in argv)


def script_text() -> str:
    return SCRIPT.read_text()
