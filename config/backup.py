"""Backups with restic (`mailstack:backup`): the config model, its checks and the job's files and container.

Pure: no Pulumi. The job is one POSIX shell script (config/scripts/mailstack-backup.sh) run by a
small container on the mail host (restic's own image): it backs up DMS's mail-data and mail-state
volumes and the config directory, read-only, while DMS keeps running, then applies the retention
policy and runs `restic check` once a week. Every credential is a 0600 file in `<dataDir>/backup`
(mounted read-only): restic reads `RESTIC_PASSWORD_FILE` and `RESTIC_REPOSITORY_FILE` itself, and
the backend's keys come from an env file the script loads; nothing is in the container's env, on a
command line or in a log. docs/host.md explains why a container and not a systemd timer.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mailstack.config.backup_model import Backend, Backup, BackupSettings
from mailstack.config.containers import ContainerSpec, Healthcheck, Mount, config_dir, data_path, volume_name
from mailstack.config.errors import Problem, key_path, problem, set_command
from mailstack.config.settings import MailSettings

SCRIPT = Path(__file__).parent / "scripts" / "mailstack-backup.sh"

JOB_SUBDIR = "backup"
"""`<dataDir>/backup`: the script, its settings and the credential files (0600), mounted read-only."""
STATUS_SUBDIR = "backup-status"
"""`<dataDir>/backup-status`: what the job writes (status.json, run markers), mounted read-write."""
JOB_DIR = "/run/mailstack-backup"
STATUS_DIR = "/status"
SOURCE_ROOT = "/backup"
SCRIPT_FILE = "mailstack-backup.sh"
STATUS_FILE = "status.json"
SCRIPT_LABEL = "mailstack.backup-job-sha256"

SCHEDULES = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}
_SCHEDULE_HOURS = re.compile(r"^([1-9][0-9]{0,2})h$")

# The env keys restic reads for each backend (restic docs, "Preparing a new repository"). Only
# these may be set, so a typo (AWS_SECRET_KEY) is an error instead of a silent auth failure.
BACKEND_ENV: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # backend: (required, optional)
    "local": ((), ()),
    "sftp": ((), ()),
    "s3": (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_DEFAULT_REGION",)),
    "b2": (("B2_ACCOUNT_ID", "B2_ACCOUNT_KEY"), ()),
    # restic >= 0.17 reads rest-server credentials from these, keeping them out of the URL.
    "rest": ((), ("RESTIC_REST_USERNAME", "RESTIC_REST_PASSWORD")),
}
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def backend(repository: str) -> Backend | None:
    """Which restic backend a repository string names; None for one mailstack does not support."""
    if repository.startswith("/"):
        return "local"
    scheme = repository.partition(":")[0]
    if scheme in ("sftp", "s3", "b2", "rest"):
        return scheme  # type: ignore[return-value]
    return None


def interval_seconds(schedule: str) -> int | None:
    if schedule in SCHEDULES:
        return SCHEDULES[schedule]
    m = _SCHEDULE_HOURS.match(schedule)
    if m and 1 <= int(m.group(1)) <= 168:
        return int(m.group(1)) * 3600
    return None


def resolve(raw: Backup | None) -> BackupSettings | None:
    """Settings from a checked `mailstack:backup` (None when backups are off)."""
    if raw is None:
        return None
    kind = backend(raw.repository)
    interval = interval_seconds(raw.schedule)
    if kind is None or interval is None or raw.password is None:
        raise ValueError("invalid backup settings")  # reported by `checks`
    return BackupSettings(
        repository=raw.repository.rstrip("/") if kind == "local" else raw.repository,
        backend=kind,
        password=raw.password,
        env=tuple(sorted(raw.env.items())),
        ssh_key=raw.ssh_key,
        known_hosts=raw.known_hosts,
        schedule=raw.schedule,
        interval_seconds=interval,
        keep=raw.keep,
        image=raw.image,
    )


# -- checks --------------------------------------------------------------------------------------


def checks(raw: Backup | None, *, secret: bool, data_dir: str | None) -> Iterator[Problem]:
    """Problems of `mailstack:backup`.

    Args:
        raw: the parsed object (None: backups off).
        secret: whether `mailstack:backup` was stored as a secret.
        data_dir: `target.dataDir` as configured (None: the default), to refuse a repository that
            would back itself up.
    """
    if raw is None:
        return
    base = ["backup"]
    kind = backend(raw.repository)
    if kind is None:
        yield problem(
            [*base, "repository"],
            f"'{raw.repository}' is not a supported restic repository: use an absolute host path, "
            "sftp:user@host:/path, s3:https://host/bucket, b2:bucket:/path or rest:https://host/",
            value="/mnt/backup/mailstack",
        )
    elif kind == "local":
        top = (data_dir or "").rstrip("/")
        inside = [
            d
            for d in (f"{top}/config", f"{top}/{JOB_SUBDIR}", f"{top}/{STATUS_SUBDIR}")
            if top and (raw.repository.rstrip("/") + "/").startswith(d + "/")
        ]
        if inside:
            yield problem(
                [*base, "repository"],
                f"is inside {inside[0]}, which is itself backed up or holds the job's credentials; "
                "use a directory on another disk",
                value="/mnt/backup/mailstack",
            )
    elif kind == "rest":
        url = urlsplit(raw.repository[len("rest:") :])
        if url.username or url.password:
            yield problem(
                [*base, "repository"],
                "has credentials in the URL, where they would be stored in plain text and printed by restic; "
                "put them in env.RESTIC_REST_USERNAME and env.RESTIC_REST_PASSWORD",
                value=f"rest:{url.scheme}://{url.hostname}{':' + str(url.port) if url.port else ''}{url.path}",
            )
        if url.scheme not in ("http", "https"):
            yield problem([*base, "repository"], "a rest: repository needs an http(s) URL", value="rest:https://host/")
    if raw.password is None:
        yield problem(
            [*base, "password"],
            "is required (it encrypts the repository; keep a copy somewhere else than the mail host)",
            set_command([*base, "password"], "<long passphrase>", secret=True),
        )
    elif not raw.password.get_secret_value():
        yield problem(
            [*base, "password"], "is empty", set_command([*base, "password"], "<long passphrase>", secret=True)
        )
    has_secret_value = raw.password is not None or raw.env or raw.ssh_key is not None
    if has_secret_value and not secret:
        yield problem(
            [*base, "password"],
            "mailstack:backup is stored in plain text; its password and credentials must be set with --secret",
            set_command([*base, "password"], "<long passphrase>", secret=True),
        )
    if kind is not None:
        required, optional = BACKEND_ENV[kind]
        for name in required:
            if name not in raw.env:
                yield problem(
                    [*base, "env", name],
                    f"is required for a {kind}: repository",
                    set_command([*base, "env", name], "<value>", secret=True),
                )
        allowed = (*required, *optional)
        for name in sorted(raw.env):
            if name not in allowed:
                known = ", ".join(allowed) if allowed else "none"
                yield problem(
                    [*base, "env", name],
                    f"is not a credential restic reads for a {kind}: repository (allowed: {known})",
                    f"pulumi config rm --path '{key_path([*base, 'env', name])}'",
                )
        if kind == "rest" and (("RESTIC_REST_USERNAME" in raw.env) != ("RESTIC_REST_PASSWORD" in raw.env)):
            yield problem(
                [*base, "env"],
                "RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD go together",
                set_command([*base, "env", "RESTIC_REST_PASSWORD"], "<password>", secret=True),
            )
    for name, value in raw.env.items():
        if not _ENV_NAME.match(name):
            yield problem([*base, "env", name], "is not an environment variable name (A-Z, 0-9, _)")
        if "\n" in value.get_secret_value() or "\r" in value.get_secret_value():
            yield problem(
                [*base, "env", name], "must be one line", set_command([*base, "env", name], "<value>", secret=True)
            )
    if kind == "sftp":
        if raw.ssh_key is None:
            yield problem(
                [*base, "sshKey"],
                "is required for an sftp: repository (a private key the SFTP server accepts)",
                set_command([*base, "sshKey"], '"$(cat ~/.ssh/mailstack_backup)"', secret=True),
            )
        if not raw.known_hosts:
            yield problem(
                [*base, "knownHosts"],
                "is required for an sftp: repository: it pins the server's host key",
                set_command([*base, "knownHosts"], '"$(ssh-keyscan -t ed25519 <host>)"'),
            )
    else:
        for field, alias in ((raw.ssh_key, "sshKey"), (raw.known_hosts, "knownHosts")):
            if field is not None:
                yield problem(
                    [*base, alias],
                    "is only used with an sftp: repository",
                    f"pulumi config rm --path '{key_path([*base, alias])}'",
                )
    if interval_seconds(raw.schedule) is None:
        yield problem(
            [*base, "schedule"],
            f"'{raw.schedule}' is not a schedule: hourly, daily, weekly, or every N hours as '<N>h' (1-168)",
            value="daily",
        )
    if raw.keep.daily == raw.keep.weekly == raw.keep.monthly == 0:
        yield problem(
            [*base, "keep"],
            "keeps no snapshot at all; keep at least one daily, weekly or monthly snapshot",
            set_command([*base, "keep", "daily"], "7"),
        )


# -- files and container -------------------------------------------------------------------------


def restic_host(stack: str) -> str:
    """restic's `--host` for this stack's snapshots.

    restic records the machine's hostname in each snapshot and `forget` groups by it: inside a
    container that is the container id, which changes whenever the container is replaced, so
    retention would never apply across replacements. A fixed name keeps one group per stack.
    """
    return f"mailstack-{stack}"


def settings_file(backup: BackupSettings, stack: str) -> str:
    """The job's non-secret settings, KEY=VALUE lines the script loads without evaluating them."""
    lines = {
        "BACKUP_HOST": restic_host(stack),
        "BACKUP_INTERVAL": str(backup.interval_seconds),
        "BACKUP_SCHEDULE": backup.schedule,
        "KEEP_DAILY": str(backup.keep.daily),
        "KEEP_WEEKLY": str(backup.keep.weekly),
        "KEEP_MONTHLY": str(backup.keep.monthly),
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def env_file(env: Mapping[str, str]) -> str:
    """Backend credentials as KEY=VALUE lines (secret; loaded by the script, never by Docker)."""
    return "".join(f"{k}={v}\n" for k, v in sorted(env.items()))


def ssh_config(job_dir: str = JOB_DIR) -> str:
    """OpenSSH client config for `sftp:`: restic runs `ssh <host> -s sftp`, which reads ~/.ssh/config."""
    return (
        "Host *\n"
        f"  IdentityFile {job_dir}/ssh_key\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {job_dir}/known_hosts\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        "  ServerAliveInterval 60\n"
    )


def script_text() -> str:
    return SCRIPT.read_text()


@dataclass(frozen=True)
class JobFile:
    name: str
    """File name in `<dataDir>/backup`."""
    secret: bool


def job_files(backup: BackupSettings) -> tuple[JobFile, ...]:
    """The files the job reads (all written 0600 by the component)."""
    files = [
        JobFile(SCRIPT_FILE, False),
        JobFile("settings", False),
        JobFile("repository", False),
        JobFile("password", True),
    ]
    if backup.env:
        files.append(JobFile("env", True))
    if backup.backend == "sftp":
        files += [JobFile("ssh_config", False), JobFile("known_hosts", False), JobFile("ssh_key", True)]
    return tuple(files)


def plain_file_texts(backup: BackupSettings, stack: str) -> dict[str, str]:
    """Texts of the non-secret job files."""
    texts = {
        SCRIPT_FILE: script_text(),
        "settings": settings_file(backup, stack),
        "repository": backup.repository + "\n",
    }
    if backup.backend == "sftp":
        texts["ssh_config"] = ssh_config()
        texts["known_hosts"] = (backup.known_hosts or "") + "\n"
    return texts


def job_fingerprint(texts: Mapping[str, str]) -> str:
    """SHA-256 over the non-secret job files: a label, so a new script or schedule replaces the container
    (the running shell keeps the old script and settings it loaded at start)."""
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(f"{name}\0{texts[name]}\0".encode())
    return digest.hexdigest()


def health_command() -> str:
    return f"sh {JOB_DIR}/{SCRIPT_FILE} health"


def source_mounts(volume_names: Mapping[str, str], config_dir: str, *, read_only: bool) -> tuple[Mount, ...]:
    """What is backed up, at the paths the snapshots record (`/backup/<name>`).

    mail-logs is left out: DMS rewrites it constantly and nothing is lost without it.
    """
    return (
        Mount(f"{SOURCE_ROOT}/mail-data", volume_name=volume_names["mail-data"], read_only=read_only),
        Mount(f"{SOURCE_ROOT}/mail-state", volume_name=volume_names["mail-state"], read_only=read_only),
        Mount(f"{SOURCE_ROOT}/config", host_path=config_dir, read_only=read_only),
    )


def restore_command(
    *,
    image: str,
    volume_names: Mapping[str, str],
    config_dir: str,
    job_dir: str,
    repository: str | None,
    snapshot: str = "latest",
    docker: str = "docker",
) -> list[str]:
    """`docker run` argv that restores a snapshot into the stack's mail volumes and config directory.

    A one-off container with the backup image and the same job files, but the sources mounted
    read-write. Run it with the mail container stopped (docs/host.md, "Restore").
    """
    argv = [docker, "run", "--rm", "--network", "bridge", "--entrypoint", "/bin/sh"]
    for mount in source_mounts(volume_names, config_dir, read_only=False):
        argv += ["-v", f"{mount.volume_name or mount.host_path}:{mount.container_path}"]
    argv += ["-v", f"{job_dir}:{JOB_DIR}:ro"]
    if repository is not None:
        # Read-write: even `restic restore` writes a (non-exclusive) lock into the repository
        # (a read-only mount fails with "Save(<lock/…>) … read-only file system", seen here).
        argv += ["-v", f"{repository}:{repository}"]
    argv += [image, f"{JOB_DIR}/{SCRIPT_FILE}", "restore", snapshot, "/"]
    return argv


def shell_join(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def container(settings: MailSettings, *, fingerprint: str | None = None) -> ContainerSpec[str] | None:
    """The backup container (None without `mailstack:backup`).

    Its only process is the script's scheduler loop. No env, no ports: credentials are files under
    the read-only job mount. The healthcheck turns unhealthy when the last success is older than
    twice the schedule (`docker ps` shows it; `verify --backup-status` reports it).
    """
    backup = settings.backup
    if backup is None:
        return None
    names = {role: volume_name(settings, role) for role in ("mail-data", "mail-state")}
    mounts = [
        *source_mounts(names, config_dir(settings), read_only=True),
        Mount(JOB_DIR, host_path=data_path(settings, JOB_SUBDIR), read_only=True),
        Mount(STATUS_DIR, host_path=data_path(settings, STATUS_SUBDIR)),
    ]
    if backup.backend == "local":
        mounts.append(Mount(backup.repository, host_path=backup.repository))
    labels = ((SCRIPT_LABEL, fingerprint),) if fingerprint else ()
    return ContainerSpec(
        name=f"mailstack-{settings.stack}-backup",
        image=backup.image,
        hostname=restic_host(settings.stack),
        entrypoint=("/bin/sh",),
        command=(f"{JOB_DIR}/{SCRIPT_FILE}", "loop"),
        mounts=tuple(mounts),
        labels=labels,
        restart="unless-stopped",
        # A running restic gets SIGTERM and removes its lock; a minute is enough on a Pi.
        stop_timeout=60,
        # Every field set (config.containers.Healthcheck): the job's `health` allows for the first
        # run itself, so the start period is only there to leave nothing for the image to fill in.
        healthcheck=Healthcheck(("CMD-SHELL", health_command()), interval=300, timeout=10, start_period=300, retries=1),
    )


def status_path(settings: MailSettings) -> str:
    """Host path of the status file the job writes after every run."""
    return data_path(settings, f"{STATUS_SUBDIR}/{STATUS_FILE}")


def secret_file_texts(backup: BackupSettings) -> dict[str, str]:
    """Texts of the credential files (callers wrap them as secrets)."""
    texts = {"password": backup.password.get_secret_value() + "\n"}
    if backup.env:
        texts["env"] = env_file({k: v.get_secret_value() for k, v in backup.env})
    if backup.backend == "sftp" and backup.ssh_key is not None:
        key = backup.ssh_key.get_secret_value()
        texts["ssh_key"] = key if key.endswith("\n") else key + "\n"
    return texts


def commands(settings: MailSettings) -> dict[str, object]:
    """The `backup` stack output: where the status is and the exact commands to run on the Docker host.

    Nothing secret: the commands name files and volumes only.
    """
    backup = settings.backup
    assert backup is not None
    spec = container(settings)
    assert spec is not None
    mail = f"mailstack-{settings.stack}-mailserver"
    names = {role: volume_name(settings, role) for role in ("mail-data", "mail-state")}
    restore = restore_command(
        image=backup.image,
        volume_names=names,
        config_dir=config_dir(settings),
        job_dir=data_path(settings, JOB_SUBDIR),
        repository=backup.repository if backup.backend == "local" else None,
    )
    script = f"{JOB_DIR}/{SCRIPT_FILE}"
    return {
        "repository": backup.repository,
        "schedule": backup.schedule,
        "intervalSeconds": backup.interval_seconds,
        "container": spec.name,
        "statusFile": status_path(settings),
        "backupNow": shell_join(["docker", "exec", spec.name, "sh", script, "run"]),
        "drill": shell_join(["docker", "exec", spec.name, "sh", script, "drill"]),
        "snapshots": shell_join(["docker", "exec", spec.name, "sh", script, "restic", "snapshots"]),
        # Stop both containers, restore, start them again (docs/host.md, "Restore").
        "restore": [
            shell_join(["docker", "stop", mail, spec.name]),
            shell_join(restore),
            shell_join(["docker", "start", spec.name, mail]),
        ],
    }
