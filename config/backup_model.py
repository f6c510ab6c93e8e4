"""Config models of `mailstack:backup` and `accounts.<a>.migrateFrom` (imported by config/model.py).

Checks and builders are in config/backup.py and config/migration.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

Backend = Literal["local", "sftp", "s3", "b2", "rest"]

# restic's official image (Alpine + restic, with openssh-client for sftp:), pinned like DMS's image.
DEFAULT_RESTIC_IMAGE = "restic/restic:0.18.1"


class _Model(BaseModel):
    # Same conventions as config/model.py (kept separate: model.py imports this module).
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        hide_input_in_errors=True,
        str_strip_whitespace=True,
    )


class Keep(_Model):
    """restic `forget` policy: the newest snapshot of each of the last N days/weeks/months."""

    daily: int = Field(7, ge=0)
    weekly: int = Field(4, ge=0)
    monthly: int = Field(6, ge=0)


class Backup(_Model):
    repository: str
    """restic repository: an absolute host path, `sftp:user@host:/path`, `s3:…`, `b2:bucket:/path`, `rest:https://…`."""
    password: SecretStr | None = None
    """Encrypts the repository (secret). Losing it loses every backup: keep a copy off the host."""
    env: dict[str, SecretStr] = {}
    """Backend credentials restic reads from its environment (secrets), e.g. AWS_ACCESS_KEY_ID."""
    ssh_key: SecretStr | None = None
    """`sftp:` only: private key text (secret) for the SFTP server."""
    known_hosts: str | None = None
    """`sftp:` only: the server's host key line (`host ssh-ed25519 AAAA…`, from ssh-keyscan)."""
    schedule: str = "daily"
    """`hourly`, `daily`, `weekly`, or `<N>h`."""
    keep: Keep = Keep()
    image: str = DEFAULT_RESTIC_IMAGE


class MigrateFrom(_Model):
    """The old IMAP server an account's mail is imported from (`doveadm backup` with imapc)."""

    host: str
    port: int | None = Field(None, ge=1, le=65535)
    """Default: 993 for `imaps`, 143 otherwise."""
    user: str
    password: SecretStr | None = None
    tls: Literal["imaps", "starttls", "none"] = "imaps"
    """`none` only to a loopback address (an SSH tunnel): the password must not cross a network in clear."""
    separator: Literal["/", "."] = "/"
    """The old server's folder hierarchy separator (`/`: Gmail, Outlook, most providers; `.`: Courier,
    Dovecot with Maildir++ defaults, another DMS)."""


@dataclass(frozen=True)
class BackupSettings:
    repository: str
    backend: Backend
    password: SecretStr
    env: tuple[tuple[str, SecretStr], ...]
    ssh_key: SecretStr | None
    known_hosts: str | None
    schedule: str
    interval_seconds: int
    keep: Keep
    image: str
