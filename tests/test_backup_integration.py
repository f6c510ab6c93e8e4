"""Backups, restores and migration with real software: Debian's restic and Dovecot (dovecot-imapd) on loopback.

The job script (config/scripts/mailstack-backup.sh) and the import script
(config/scripts/mailstack-migrate.sh) run exactly as shipped, with the files the stack writes
(config/backup.py, config/migration.py builders); only their directories are moved under tmp_path
through the scripts' MAILSTACK_* variables. Dovecot writes the maildirs (doveadm save) and serves
the results over IMAP (imaplib).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailstack.config import backup, migration
from mailstack.config.backup_model import BackupSettings, Keep, MigrateFrom
from mailstack.verify.backup import backup_findings
from mailstack.verify.findings import Status
from tests.conftest import require_tool
from tests.dovecot import MAIL_UID, dovecot, message

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="Dovecot's mail user is uid 5000, as in DMS: needs root"),
]

BACKUP_SCRIPT = backup.SCRIPT
MIGRATE_SCRIPT = migration.SCRIPT
RESTIC_PASSWORD = "restic-passphrase-Zx81"
OLD_PASSWORD = "old-server-password-Qy42"
ME = "me@example.com"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A scratch directory Dovecot's users can traverse (pytest's own is 0700 root, but Dovecot's auth
    process runs as `dovecot` and mail as uid 5000)."""
    path = Path(tempfile.mkdtemp(prefix="mailstack-backup-"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("MAILSTACK_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


def write_0600(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


class Job:
    """A backup job laid out like `<dataDir>/backup` and `<dataDir>/backup-status`, sources under `root`."""

    def __init__(self, tmp: Path) -> None:
        require_tool("restic")
        self.tmp = tmp
        self.root = tmp / "backup"  # the container's /backup
        self.job = tmp / "job"
        self.status = tmp / "status"
        self.repository = tmp / "repository"
        settings = BackupSettings(
            repository=str(self.repository),
            backend="local",
            password=SecretStr(RESTIC_PASSWORD),
            env=(),
            ssh_key=None,
            known_hosts=None,
            schedule="daily",
            interval_seconds=86400,
            keep=Keep(),
            image="unused",
        )
        for name, text in {
            **backup.plain_file_texts(settings, "test"),
            **backup.secret_file_texts(settings),
        }.items():
            write_0600(self.job / name, text)
        for source in ("mail-state", "config"):
            (self.root / source).mkdir(parents=True)
        (self.root / "config" / "postfix-accounts.cf").write_text(f"{ME}|{{SHA512-CRYPT}}$6$x$y\n")

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(self.tmp),
            "MAILSTACK_BACKUP_JOB": str(self.job),
            "MAILSTACK_BACKUP_ROOT": str(self.root),
            "MAILSTACK_BACKUP_STATUS": str(self.status),
            "MAILSTACK_DRILL_DIR": str(self.tmp / "drill"),
            "RESTIC_CACHE_DIR": str(self.tmp / "cache"),
        }

    def script(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["sh", str(BACKUP_SCRIPT), *args], env=self.env(), capture_output=True, text=True, timeout=120, check=False
        )
        output = result.stdout + result.stderr
        assert RESTIC_PASSWORD not in output
        if check:
            assert result.returncode == 0, output
        return result

    def status_json(self) -> dict[str, object]:
        return json.loads((self.status / "status.json").read_text())  # type: ignore[no-any-return]

    def snapshots(self) -> list[dict[str, object]]:
        out = self.script("restic", "snapshots", "--json").stdout
        return json.loads(out)  # type: ignore[no-any-return]


def test_backup_of_a_live_dovecot_restores_to_the_same_mailbox_over_imap(tmp_path: Path) -> None:
    job = Job(tmp_path)
    with dovecot(tmp_path / "live", {ME: "pw"}, mail=job.root / "mail-data") as live:
        for n in range(5):
            live.save(ME, message(n))
        live.save(ME, message(50, "sent one"), "Sent")
        live.doveadm("flags", "add", "-u", ME, "\\Seen", "mailbox", "INBOX", "uid", "2")
        before = live.messages(ME)
        assert [len(before[m]) for m in ("INBOX", "Sent")] == [5, 1]

        # Dovecot keeps running while restic reads its maildir (as DMS does).
        first = job.script("run")
        assert "snapshot " in first.stdout and "ok; next run at" in first.stdout
        status = job.status_json()
        snapshots = job.snapshots()
        assert len(snapshots) == 1
        assert snapshots[0]["hostname"] == "mailstack-test"
        assert sorted(snapshots[0]["paths"]) == [str(job.root / s) for s in ("config", "mail-data", "mail-state")]  # type: ignore[arg-type]
        assert str(snapshots[0]["id"]).startswith(str(status["lastSnapshot"]))
        assert (status["lastResult"], status["intervalSeconds"], status["lastCheckResult"]) == ("ok", 86400, "ok")
        assert status["lastSuccess"] is not None and status["lastCheck"] is not None
        assert job.script("health").returncode == 0

        # The drill restores into a scratch directory and compares with the live maildir.
        drill = job.script("drill")
        assert drill.stdout.splitlines()[-1] == "drill: every mailbox has the same number of messages"
        assert sorted(drill.stdout.splitlines()[1:-1]) == sorted(
            [f"{'example.com/me':<50} {5:>8} {5:>8}", f"{'example.com/me/.Sent':<50} {1:>8} {1:>8}"]
        )
        live.save(ME, message(6))  # arrives after the snapshot
        drill = job.script("drill", check=False)
        assert drill.returncode == 1
        assert f"{'example.com/me':<50} {6:>8} {5:>8}  DIFFERENT" in drill.stdout.splitlines()
        assert drill.stdout.splitlines()[-1] == "drill: 1 mailbox(es) differ"

    # Restore into a fresh location and serve it with a second Dovecot: same messages, same UIDs.
    target = tmp_path / "restored"
    target.mkdir(mode=0o755)  # restic would create it 0700, closed to the mail user
    restore = job.script("restore", "latest", str(target))
    assert f"restored latest into {target}{job.root}" in restore.stdout
    restored_mail = target / str(job.root).lstrip("/") / "mail-data"
    assert (restored_mail / "example.com" / "me").stat().st_uid == MAIL_UID  # ownership kept
    assert (target / str(job.root).lstrip("/") / "config" / "postfix-accounts.cf").exists()
    with dovecot(tmp_path / "fresh", {ME: "pw"}, mail=restored_mail) as fresh:
        assert fresh.messages(ME) == before
        client = fresh.imap(ME)
        client.select("INBOX", readonly=True)
        _, flags = client.uid("FETCH", "2", "(FLAGS)")
        client.logout()
        assert b"\\Seen" in flags[0]  # type: ignore[operator]


def test_schedule_retention_and_health(tmp_path: Path) -> None:
    job = Job(tmp_path)
    (job.root / "mail-data").mkdir()
    job.script("run")
    job.script("run")
    # The second run pruned nothing (once a day) and did not check again (once a week).
    assert len(job.snapshots()) == 2
    first_check = job.status_json()["lastCheck"]
    assert job.status_json()["lastCheck"] == first_check
    # `forget` keeps one snapshot per day: when prune is due, the two of today become one.
    (job.status / "last-prune").write_text("0\n")
    job.script("run")
    assert len(job.snapshots()) == 1
    # The next run is one interval after the start of the last successful one.
    attempt = int((job.status / "last-attempt").read_text())
    assert int((job.status / "next-run").read_text()) == attempt + 86400
    # Older than twice the schedule: unhealthy, with the age in the message.
    (job.status / "last-success").write_text(f"{attempt - 2 * 86400 - 5}\n")
    health = job.script("health", check=False)
    assert health.returncode == 1 and health.stdout.startswith("last backup succeeded ")
    # verify reads the status file the job wrote: fresh is OK, stale (after a rewrite) is a warning.
    fresh = backup_findings((job.status / "status.json").read_text(), hostname="mail.test", now=datetime.now(UTC))
    assert [(f.subject, f.status) for f in fresh] == [("last backup", Status.OK)]
    (job.status / "next-run").write_text("0\n")
    (job.job / "repository").write_text(str(tmp_path / "missing-parent-file" / "repo") + "\n")
    (tmp_path / "missing-parent-file").write_text("")
    assert job.script("run", check=False).returncode == 1  # rewrites status.json with the old success
    stale = backup_findings((job.status / "status.json").read_text(), hostname="mail.test", now=datetime.now(UTC))
    assert [(f.status, f.detail.split(" is older")[1]) for f in stale] == [
        (Status.WARN, " than twice the schedule (2.0 days)")
    ]


def test_failed_run_is_recorded_and_retried_within_an_hour(tmp_path: Path) -> None:
    job = Job(tmp_path)
    (job.root / "mail-data").mkdir()
    (job.job / "repository").write_text(str(tmp_path / "no" / "such" / "parent" / "repo") + "\n")
    (tmp_path / "no").write_text("a file, so the repository cannot be created\n")
    result = job.script("run", check=False)
    assert result.returncode == 1
    status = job.status_json()
    assert (status["lastResult"], status["lastSuccess"]) == ("failed: repository", None)
    assert int((job.status / "next-run").read_text()) == int((job.status / "last-attempt").read_text()) + 3600


def test_settings_are_loaded_without_shell_evaluation(tmp_path: Path) -> None:
    job = Job(tmp_path)
    (job.root / "mail-data").mkdir()
    marker = tmp_path / "evaluated"
    write_0600(job.job / "env", f"HARMLESS=$(touch {marker})`touch {marker}`\n")
    job.script("run")
    assert not marker.exists()


# --- migration ------------------------------------------------------------------------------------


def listing(mail: Path) -> dict[str, tuple[int, int]]:
    """Every message file of a maildir tree → (inode, mtime_ns): a rewrite would change them."""
    out = {}
    for path in mail.rglob("*"):
        if path.is_file() and path.parent.name in ("cur", "new"):
            st = path.stat()
            out[str(path.relative_to(mail))] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("separator", ["/", "."])
def test_migration_from_an_old_dovecot_is_resumable_and_idempotent(tmp_path: Path, separator: str) -> None:
    """The new side is set up like DMS (no namespace separator); the old one uses `separator`."""
    old_user = "me@old.example"
    with (
        dovecot(tmp_path / "old", {old_user: OLD_PASSWORD}, separator=separator) as old,
        dovecot(tmp_path / "new", {ME: "new-password"}) as new,
    ):
        for n in range(3):
            old.save(old_user, message(n))
        nested = f"Archive{separator}2024"  # a folder below another: separators matter
        old.doveadm("mailbox", "create", "-u", old_user, nested)
        old.save(old_user, message(10, "archived"), nested)

        # The files the stack writes into config/migrate (imapc config, 0600 password, script).
        migrate_dir = tmp_path / "migrate"
        mf = MigrateFrom(
            host="127.0.0.1",
            port=old.port,
            user=old_user,
            password=SecretStr(OLD_PASSWORD),
            tls="none",
            separator=separator,  # type: ignore[arg-type]
        )
        password_file = migrate_dir / migration.password_file(ME).split("/", 1)[1]
        write_0600(password_file, OLD_PASSWORD)
        conf = migration.imapc_config(mf, str(password_file), main_config=str(new.config))
        assert OLD_PASSWORD not in conf
        write_0600(migrate_dir / f"{ME}.conf", conf)

        def migrate(*args: str) -> str:
            result = subprocess.run(
                ["sh", str(MIGRATE_SCRIPT), *args],
                env={**os.environ, "MAILSTACK_MIGRATE_DIR": str(migrate_dir)},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert OLD_PASSWORD not in result.stdout + result.stderr
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout.strip()

        assert migrate() == f"mailstack-migrate: {ME}: old server 4 messages; here 0 before, 4 after (4 copied)"

        def here() -> dict[str, list[tuple[int, str, str]]]:
            # The new side lists with Maildir++'s "." (as DMS's clients see it).
            # dsync may create the parent of a nested folder as an empty mailbox (Maildir++ has no
            # \\Noselect parents): empty extras are left out, everything else must match.
            listed = {name.replace(".", separator): rows for name, rows in new.messages(ME).items()}
            return {name: rows for name, rows in listed.items() if rows or name in source}

        source: dict[str, list[tuple[int, str, str]]] = {}
        source.update(old.messages(old_user))
        assert set(source) == {"INBOX", "Sent", nested}
        assert here() == source  # same mailboxes, subjects, Message-IDs and IMAP UIDs
        files = listing(new.mail)
        assert len(files) == 4

        # Second run: nothing new is copied, no message file is rewritten.
        assert migrate(ME) == f"mailstack-migrate: {ME}: old server 4 messages; here 4 before, 4 after (0 copied)"
        assert listing(new.mail) == files
        assert here() == source

        # Resumable: what arrived on the old server since is copied, and only that.
        old.save(old_user, message(3))
        assert migrate() == f"mailstack-migrate: {ME}: old server 5 messages; here 4 before, 5 after (1 copied)"
        assert here()["INBOX"] == old.messages(old_user)["INBOX"]
        assert {k: v for k, v in listing(new.mail).items() if k in files} == files

        # After the MX switch: mail delivered here stays, the old server's last mail is merged.
        new.save(ME, message(100, "delivered to the new server"))
        old.save(old_user, message(4))
        assert migrate("--final", ME) == (
            f"mailstack-migrate: {ME}: old server 6 messages; here 6 before, 7 after (1 copied)"
        )
        subjects = sorted(s for _, s, _ in new.messages(ME)["INBOX"])
        assert subjects == sorted([*(f"message {n}" for n in range(5)), "delivered to the new server"])
