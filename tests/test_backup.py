"""Backups and migration: config checks (exact problem lists), builders, and the components under Pulumi mocks.

Real restic/Dovecot runs are in tests/test_backup_integration.py.
"""

from __future__ import annotations

import json
import shlex
from functools import cache
from typing import Any

import pytest

from mailstack.config import ConfigError, backup, load_settings, migration
from mailstack.config.backup_model import MigrateFrom
from tests.conftest import PROD_SECRET_KEYS, prod_config_values
from tests.harness import RunResult, is_secret, plain, run_program, stack_config, with_values
from tools.secret_audit import audit, reached

DATA = "/mnt/dietpi_userdata/mailstack"
BASE = {
    "mailstack:hostname": "mail.example.com",
    "mailstack:domains": json.dumps({"example.com": {}}),
    "mailstack:accounts": json.dumps({"me@example.com": {"password": "pw"}}),
    "mailstack:target": json.dumps({"kind": "ssh", "host": "dietpi.lan", "dataDir": DATA}),
}
SECRET = ["mailstack:accounts", "mailstack:backup"]
S3 = {
    "repository": "s3:https://s3.eu-central-1.amazonaws.com/my-bucket/mail",
    "password": "repo passphrase",
    "env": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "aws-secret-key"},
}


def problems(backup_value: object = None, *, secret: list[str] = SECRET, **extra: object) -> list[tuple[str, str]]:
    raw: dict[str, object] = dict(BASE)
    if backup_value is not None:
        raw["mailstack:backup"] = json.dumps(backup_value)
    raw.update({f"mailstack:{k}": json.dumps(v) for k, v in extra.items()})
    with pytest.raises(ConfigError) as err:
        load_settings(raw, secret_keys=secret, stack="prod")
    return sorted((p.key, p.message) for p in err.value.problems)


def settings(backup_value: object, **extra: object) -> Any:
    raw: dict[str, object] = {**BASE, "mailstack:backup": json.dumps(backup_value)}
    raw.update({f"mailstack:{k}": json.dumps(v) for k, v in extra.items()})
    return load_settings(raw, secret_keys=SECRET, stack="prod")


# --- config checks --------------------------------------------------------------------------------


def test_every_backup_problem_at_once() -> None:
    assert problems(
        {
            "repository": "s3:https://s3.example/bucket",
            "env": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_KEY": "typo"},
            "schedule": "nightly",
            "keep": {"daily": 0, "weekly": 0, "monthly": 0},
        },
        secret=["mailstack:accounts"],
    ) == [
        (
            "mailstack:backup.env.AWS_SECRET_ACCESS_KEY",
            "is required for a s3: repository",
        ),
        (
            "mailstack:backup.env.AWS_SECRET_KEY",
            "is not a credential restic reads for a s3: repository "
            "(allowed: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)",
        ),
        ("mailstack:backup.keep", "keeps no snapshot at all; keep at least one daily, weekly or monthly snapshot"),
        (
            "mailstack:backup.password",
            "is required (it encrypts the repository; keep a copy somewhere else than the mail host)",
        ),
        (
            "mailstack:backup.password",
            "mailstack:backup is stored in plain text; its password and credentials must be set with --secret",
        ),
        (
            "mailstack:backup.schedule",
            "'nightly' is not a schedule: hourly, daily, weekly, or every N hours as '<N>h' (1-168)",
        ),
    ]


def test_fix_commands_name_the_key_and_set_secrets_as_secrets() -> None:
    raw = {**BASE, "mailstack:backup": json.dumps({"repository": "b2:bucket:/mail", "password": "p"})}
    with pytest.raises(ConfigError) as err:
        load_settings(raw, secret_keys=SECRET, stack="prod")
    assert [(p.key, p.fix) for p in err.value.problems] == [
        (
            "mailstack:backup.env.B2_ACCOUNT_ID",
            "pulumi config set --path --secret 'mailstack:backup.env.B2_ACCOUNT_ID' <value>",
        ),
        (
            "mailstack:backup.env.B2_ACCOUNT_KEY",
            "pulumi config set --path --secret 'mailstack:backup.env.B2_ACCOUNT_KEY' <value>",
        ),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"repository": "azure:container:/path", "password": "p"},
            [
                (
                    "mailstack:backup.repository",
                    "'azure:container:/path' is not a supported restic repository: use an absolute host path, "
                    "sftp:user@host:/path, s3:https://host/bucket, b2:bucket:/path or rest:https://host/",
                )
            ],
        ),
        (
            {"repository": f"{DATA}/config/backups", "password": "p"},
            [
                (
                    "mailstack:backup.repository",
                    f"is inside {DATA}/config, which is itself backed up or holds the job's credentials; "
                    "use a directory on another disk",
                )
            ],
        ),
        (
            {"repository": "rest:https://user:secret@backup.example:8000/mail", "password": "p"},
            [
                (
                    "mailstack:backup.repository",
                    "has credentials in the URL, where they would be stored in plain text and printed by restic; "
                    "put them in env.RESTIC_REST_USERNAME and env.RESTIC_REST_PASSWORD",
                )
            ],
        ),
        (
            {"repository": "rest:https://backup.example/", "password": "p", "env": {"RESTIC_REST_USERNAME": "u"}},
            [("mailstack:backup.env", "RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD go together")],
        ),
        (
            {"repository": "sftp:backup@nas.lan:/srv/restic", "password": "p"},
            [
                (
                    "mailstack:backup.knownHosts",
                    "is required for an sftp: repository: it pins the server's host key",
                ),
                (
                    "mailstack:backup.sshKey",
                    "is required for an sftp: repository (a private key the SFTP server accepts)",
                ),
            ],
        ),
        (
            {"repository": "/mnt/usb/restic", "password": "p", "knownHosts": "nas ssh-ed25519 AAAA"},
            [("mailstack:backup.knownHosts", "is only used with an sftp: repository")],
        ),
        (
            {"repository": "/mnt/usb/restic", "password": "p", "schedule": "169h"},
            [
                (
                    "mailstack:backup.schedule",
                    "'169h' is not a schedule: hourly, daily, weekly, or every N hours as '<N>h' (1-168)",
                )
            ],
        ),
        (
            {"repository": "/mnt/usb/restic", "password": "p", "keep": {"daily": -1}},
            [("mailstack:backup.keep.daily", "input should be greater than or equal to 0")],
        ),
        (
            {"password": "p"},
            [("mailstack:backup.repository", "is required")],
        ),
    ],
)
def test_backup_problems(value: object, expected: list[tuple[str, str]]) -> None:
    assert problems(value) == expected


def test_migration_problems() -> None:
    accounts = {
        "me@example.com": {
            "password": "pw",
            "migrateFrom": {"host": "imap.old.example", "user": "me", "tls": "none"},
        },
        "two@example.com": {"password": "pw", "migrateFrom": {"host": "bad_host!", "user": "", "password": "x"}},
    }
    assert problems(accounts=accounts) == [
        (
            'mailstack:accounts["me@example.com"].migrateFrom.password',
            "is required (the password on the old server)",
        ),
        (
            'mailstack:accounts["me@example.com"].migrateFrom.tls',
            "'none' sends the old server's password in clear over the network to imap.old.example; use imaps or "
            "starttls (or an SSH tunnel to 127.0.0.1)",
        ),
        (
            'mailstack:accounts["two@example.com"].migrateFrom.host',
            "'bad_host!' is not a valid domain name (Codepoint U+005F at position 4 of 'bad_host!' not allowed)",
        ),
        ('mailstack:accounts["two@example.com"].migrateFrom.user', "is required (the login on the old server)"),
    ]


def test_migration_password_must_be_secret() -> None:
    accounts = {"me@example.com": {"migrateFrom": {"host": "imap.old.example", "user": "me", "password": "x"}}}
    assert problems(accounts=accounts, secret=[]) == [
        (
            'mailstack:accounts["me@example.com"].migrateFrom.password',
            "is stored in plain text; passwords must be set with --secret",
        )
    ]


# --- builders -------------------------------------------------------------------------------------


def test_resolved_defaults_and_job_files() -> None:
    s = settings(S3).backup
    assert (s.backend, s.schedule, s.interval_seconds, s.keep.daily, s.keep.weekly, s.keep.monthly) == (
        "s3",
        "daily",
        86400,
        7,
        4,
        6,
    )
    assert s.image == "restic/restic:0.18.1"
    assert backup.settings_file(s, "prod") == (
        "BACKUP_HOST=mailstack-prod\nBACKUP_INTERVAL=86400\nBACKUP_SCHEDULE=daily\n"
        "KEEP_DAILY=7\nKEEP_WEEKLY=4\nKEEP_MONTHLY=6\n"
    )
    assert backup.secret_file_texts(s) == {
        "password": "repo passphrase\n",
        "env": "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=aws-secret-key\n",
    }
    assert [(f.name, f.secret) for f in backup.job_files(s)] == [
        ("mailstack-backup.sh", False),
        ("settings", False),
        ("repository", False),
        ("password", True),
        ("env", True),
    ]
    assert settings({**S3, "schedule": "6h"}).backup.interval_seconds == 21600


def test_container_spec_has_no_env_and_mounts_sources_read_only() -> None:
    spec = backup.container(settings({"repository": "/mnt/usb/restic", "password": "p"}), fingerprint="f00")
    assert spec is not None
    assert (spec.name, spec.image, spec.hostname, spec.env, spec.ports) == (
        "mailstack-prod-backup",
        "restic/restic:0.18.1",
        "mailstack-prod",
        (),
        None,
    )
    assert (spec.entrypoint, spec.command) == (("/bin/sh",), ("/run/mailstack-backup/mailstack-backup.sh", "loop"))
    assert [(m.container_path, m.volume_name or m.host_path, m.read_only) for m in spec.mounts] == [
        ("/backup/mail-data", "mailstack-prod-mail-data", True),
        ("/backup/mail-state", "mailstack-prod-mail-state", True),
        ("/backup/config", f"{DATA}/config", True),
        ("/run/mailstack-backup", f"{DATA}/backup", True),
        ("/status", f"{DATA}/backup-status", False),
        ("/mnt/usb/restic", "/mnt/usb/restic", False),
    ]
    assert spec.labels == (("mailstack.backup-job-sha256", "f00"),)


def test_restore_command() -> None:
    out = backup.commands(settings({"repository": "/mnt/usb/restic", "password": "p"}))
    assert out["restore"] == [
        "docker stop mailstack-prod-mailserver mailstack-prod-backup",
        "docker run --rm --network bridge --entrypoint /bin/sh "
        "-v mailstack-prod-mail-data:/backup/mail-data -v mailstack-prod-mail-state:/backup/mail-state "
        f"-v {DATA}/config:/backup/config -v {DATA}/backup:/run/mailstack-backup:ro "
        "-v /mnt/usb/restic:/mnt/usb/restic "
        "restic/restic:0.18.1 /run/mailstack-backup/mailstack-backup.sh restore latest /",
        "docker start mailstack-prod-backup mailstack-prod-mailserver",
    ]
    assert out["statusFile"] == f"{DATA}/backup-status/status.json"
    assert out["drill"] == "docker exec mailstack-prod-backup sh /run/mailstack-backup/mailstack-backup.sh drill"


def test_imapc_config_keeps_the_password_in_its_file() -> None:
    mf = MigrateFrom(host="imap.old.example", user="me@old.example", password="hunter2-old")  # type: ignore[arg-type]
    text = migration.imapc_config(mf, "/tmp/docker-mailserver/migrate/me@example.com.password")
    assert text == (
        "# mailstack: import from the old server with `doveadm backup -R imapc:` (config/migration.py).\n"
        "!include /etc/dovecot/dovecot.conf\n"
        "imapc_host = imap.old.example\n"
        "imapc_port = 993\n"
        "imapc_ssl = imaps\n"
        "imapc_ssl_verify = yes\n"
        "ssl_client_ca_dir = /etc/ssl/certs\n"
        "imapc_user = me@old.example\n"
        "imapc_password = </tmp/docker-mailserver/migrate/me@example.com.password\n"
        "imapc_features = rfc822.size fetch-headers\n"
        "mail_prefetch_count = 20\n"
        "namespace inbox {\n"
        "  separator = /\n"
        "}\n"
    )
    assert migration.command("mailstack-prod-mailserver", ("me@example.com",), final=True) == (
        "docker exec mailstack-prod-mailserver sh /tmp/docker-mailserver/migrate/mailstack-migrate.sh "
        "--final me@example.com"
    )


# --- components under mocks -----------------------------------------------------------------------

SENTINEL_BACKUP = {
    "repository": "s3:https://s3.eu-central-1.amazonaws.com/my-bucket/mail",
    "password": "SnTnL-restic-Qw8eRt5Yu1",
    "env": {"AWS_ACCESS_KEY_ID": "AKIASNTNLKEYID0001", "AWS_SECRET_ACCESS_KEY": "SnTnL-aws-Kj3hGf7Ds2"},
}
SENTINEL_OLD_PASSWORD = "SnTnL-oldimap-Pl0kMn9Bv4"
MIGRATE = {"host": "imap.old-provider.example", "user": "me@old-provider.example", "password": SENTINEL_OLD_PASSWORD}
PROD_KEYS = (*PROD_SECRET_KEYS, "mailstack:backup")


def prod(**changes: Any) -> RunResult:
    run = run_program(with_values(prod_config_values(), **changes), PROD_KEYS, stack="prod")
    assert run.error is None, run.error
    return run


@cache
def with_backup() -> RunResult:
    return prod(backup=SENTINEL_BACKUP, **{"accounts/me@example.com/migrateFrom": MIGRATE})


@cache
def without_backup() -> RunResult:
    return prod()


def commands_under(run: RunResult, parent_type: str) -> dict[str, Any]:
    parent = next(r.urn for r in run.resources if r.type == parent_type)
    return {r.name: r for r in run.resources if r.parent == parent and r.type == "command:remote:Command"}


def test_backup_files_are_written_0600_over_stdin() -> None:
    files = commands_under(with_backup(), "mailstack:index:Backup")
    assert {name: r.plain_inputs["create"].rsplit(" ", 1)[1] for name, r in files.items()} == {
        "backup-mailstack-backup-sh": f"{DATA}/backup/mailstack-backup.sh",
        "backup-settings": f"{DATA}/backup/settings",
        "backup-repository": f"{DATA}/backup/repository",
        "backup-password": f"{DATA}/backup/password",
        "backup-env": f"{DATA}/backup/env",
    }
    for r in files.values():
        assert is_secret(r.inputs["stdin"]) and r.plain_inputs["logging"] == "none"
        assert "chmod 0600" in r.plain_inputs["create"]
    assert plain(files["backup-password"].inputs["stdin"]) == "SnTnL-restic-Qw8eRt5Yu1\n"
    assert plain(files["backup-repository"].inputs["stdin"]) == SENTINEL_BACKUP["repository"] + "\n"


def test_backup_container_inputs() -> None:
    run = with_backup()
    image = run.one("docker:index/remoteImage:RemoteImage", "backup-image")
    assert image.plain_inputs == {"name": "restic/restic:0.18.1", "keepLocally": True}
    c = run.one("docker:index/container:Container", "backup-container")
    s = load_settings(
        with_values(prod_config_values(), backup=SENTINEL_BACKUP), secret_keys=PROD_KEYS, stack="prod"
    ).backup
    assert c.plain_inputs == {
        "image": plain(image.state["imageId"]),
        "name": "mailstack-prod-backup",
        "hostname": "mailstack-prod",
        "volumes": [
            {"volumeName": "mailstack-prod-mail-data", "containerPath": "/backup/mail-data", "readOnly": True},
            {"volumeName": "mailstack-prod-mail-state", "containerPath": "/backup/mail-state", "readOnly": True},
            {"hostPath": f"{DATA}/config", "containerPath": "/backup/config", "readOnly": True},
            {"hostPath": f"{DATA}/backup", "containerPath": "/run/mailstack-backup", "readOnly": True},
            {"hostPath": f"{DATA}/backup-status", "containerPath": "/status"},
        ],
        "labels": [
            {
                "label": "mailstack.backup-job-sha256",
                "value": backup.job_fingerprint(backup.plain_file_texts(s, "prod")),
            }
        ],
        "restart": "unless-stopped",
        "stopTimeout": 60,
        "destroyGraceSeconds": 60,
        "networkMode": "bridge",
        "healthcheck": {
            "tests": ["CMD-SHELL", "sh /run/mailstack-backup/mailstack-backup.sh health"],
            # "5m" would be read back as "5m0s" (Go's Duration.String()): a diff on every run.
            "interval": "5m0s",
            "timeout": "10s",
            "startPeriod": "5m0s",
            "startInterval": "0s",
            "retries": 1,
        },
        "entrypoints": ["/bin/sh"],
        "command": ["/run/mailstack-backup/mailstack-backup.sh", "loop"],
    }
    assert c.options["delete_before_replace"] is True
    # depends_on the MailServer component: the SDK expands it to its children, volumes included.
    deps = c.options["dependencies"]
    for name in ("mail-container", "mail-mail-data", "mail-mail-state"):
        assert run.named(name).urn in deps, name


def test_migration_files_and_output() -> None:
    run = with_backup()
    files = commands_under(run, "mailstack:index:Migration")
    assert {name: r.plain_inputs["create"].rsplit(" ", 1)[1] for name, r in files.items()} == {
        "migration-script": f"{DATA}/config/migrate/mailstack-migrate.sh",
        "migration-me@example.com-conf": f"{DATA}/config/migrate/me@example.com.conf",
        "migration-me@example.com-password": f"{DATA}/config/migrate/me@example.com.password",
    }
    assert plain(files["migration-me@example.com-password"].inputs["stdin"]) == SENTINEL_OLD_PASSWORD
    assert run.outputs["migration"] == (
        "docker exec mailstack-prod-mailserver sh /tmp/docker-mailserver/migrate/mailstack-migrate.sh"
    )
    assert shlex.split(run.outputs["backup"]["restore"][1])[-3:] == ["restore", "latest", "/"]


def test_backup_and_migration_leave_the_mail_container_alone() -> None:
    """Adding backups or an import never replaces DMS: its inputs and options are identical."""
    a = without_backup().one("docker:index/container:Container", "mail-container")
    b = with_backup().one("docker:index/container:Container", "mail-container")
    assert (a.plain_inputs, a.options) == (b.plain_inputs, b.options)
    assert "backup" not in without_backup().outputs and "migration" not in without_backup().outputs
    assert not [r for r in without_backup().resources if r.name.startswith(("backup", "migration"))]


def test_new_credentials_do_not_replace_the_backup_container() -> None:
    rotated = prod(
        backup={**SENTINEL_BACKUP, "password": "another passphrase", "env": {**SENTINEL_BACKUP["env"]}},
        **{"accounts/me@example.com/migrateFrom": MIGRATE},
    )
    name = "backup-container"
    assert rotated.one("docker:index/container:Container", name).plain_inputs == (
        with_backup().one("docker:index/container:Container", name).plain_inputs
    )
    daily = prod(backup={**SENTINEL_BACKUP, "schedule": "hourly"})
    assert (
        daily.one("docker:index/container:Container", name).plain_inputs["labels"]
        != with_backup().one("docker:index/container:Container", name).plain_inputs["labels"]
    )


def test_no_backup_or_migration_secret_leaks() -> None:
    secrets = {
        "restic password": SENTINEL_BACKUP["password"],
        "AWS secret key": SENTINEL_BACKUP["env"]["AWS_SECRET_ACCESS_KEY"],
        "old IMAP password": SENTINEL_OLD_PASSWORD,
    }
    run = with_backup()
    assert reached(run, secrets) == dict.fromkeys(secrets, True)
    assert audit(run, secrets) == []


def test_dev_stack_has_no_backup() -> None:
    run = run_program(stack_config("Pulumi.dev.yaml"), stack="dev")
    assert run.error is None
    assert "backup" not in run.outputs
