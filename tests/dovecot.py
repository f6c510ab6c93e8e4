"""A real Dovecot (Debian's dovecot-imapd) on a loopback port, with its own config directory.

Not the system service: each instance has its own base_dir, log, users file and maildir root, and
is started and stopped by the test. Mail belongs to uid/gid 5000, as in DMS (`docker` user 5000).
Messages are delivered with `doveadm save` and read back over IMAP with imaplib.
"""

from __future__ import annotations

import contextlib
import email
import imaplib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_tool

MAIL_UID = 5000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    port: int
    users: dict[str, str]
    """address → plaintext password (test users only)."""
    mail: Path
    """Root of the maildirs (`<mail>/<domain>/<user>`, DMS's /var/mail layout)."""

    @property
    def config(self) -> Path:
        return self.root / "etc" / "dovecot.conf"

    def doveadm(self, *args: str, config: Path | None = None, stdin: bytes | None = None) -> str:
        result = subprocess.run(
            [require_tool("doveadm"), "-c", str(config or self.config), *args],
            input=stdin,
            capture_output=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
        return result.stdout.decode()

    def save(self, user: str, message: bytes, mailbox: str = "INBOX") -> None:
        """Deliver one message with `doveadm save` (Dovecot writes the maildir itself)."""
        self.doveadm("save", "-u", user, "-m", mailbox, stdin=message)

    def imap(self, user: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(user, self.users[user])
        return client

    def messages(self, user: str) -> dict[str, list[tuple[int, str, str]]]:
        """Every mailbox → [(UID, Subject, Message-ID)], read over IMAP."""
        out: dict[str, list[tuple[int, str, str]]] = {}
        client = self.imap(user)
        try:
            _, listing = client.list()
            for line in listing:
                assert isinstance(line, bytes)
                name = (
                    line.decode().rsplit(' "', 1)[-1].rstrip('"') if line.endswith(b'"') else line.decode().split()[-1]
                )
                if b"\\Noselect" in line:
                    continue  # a parent folder that holds no messages itself
                typ, detail = client.select(f'"{name}"', readonly=True)
                if typ != "OK" and b"doesn't exist" in detail[0]:  # type: ignore[operator]
                    continue  # a listed parent of a nested folder that is no mailbox itself
                assert typ == "OK", (name, detail, listing)
                _, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])")
                rows = []
                for item in data:
                    if not isinstance(item, tuple):
                        continue
                    uid = int(item[0].decode().split("UID ")[1].split()[0])
                    headers = email.message_from_bytes(item[1])
                    rows.append((uid, str(headers["Subject"]), str(headers["Message-ID"])))
                out[name] = sorted(rows)
        finally:
            client.logout()
        return out


def _config(root: Path, port: int, mail: Path) -> str:
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = {MAIL_UID}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/etc/users
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={mail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# Relative include, as DMS's dovecot.conf has: it must still resolve when this file is itself
# !included from elsewhere (the migration config).
!include conf.d/*.conf
"""


MAIL_CONF = """\
# DMS's layout (mail_location = maildir:/var/mail/%d/%n; `doveconf -n` of DMS 15.1 sets no separator)
mail_location = maildir:~/
namespace inbox {
  inbox = yes
  {separator}
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
}
"""


@contextlib.contextmanager
def dovecot(
    root: Path, users: dict[str, str], mail: Path | None = None, separator: str | None = None
) -> Iterator[Dovecot]:
    """Start an instance under `root` (maildirs under `mail`, default `root/mail`); stop it afterwards."""
    binary = require_tool("dovecot")
    port = free_port()
    mail = mail or root / "mail"
    for sub in ("etc/conf.d", "run", "state"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    mail.mkdir(parents=True, exist_ok=True)
    os.chown(mail, MAIL_UID, MAIL_UID)
    (root / "etc" / "dovecot.conf").write_text(_config(root, port, mail))
    line = f"separator = {separator}" if separator else "# no separator: Maildir++'s '.', as in DMS"
    (root / "etc" / "conf.d" / "10-mail.conf").write_text(MAIL_CONF.replace("{separator}", line))
    (root / "etc" / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in users.items()))
    instance = Dovecot(root, port, users, mail)
    subprocess.run([binary, "-c", str(instance.config)], check=True, timeout=30)
    pid_file = root / "run" / "master.pid"
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            if pid_file.exists() and pid_file.read_text().strip():
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"dovecot did not start: {(root / 'dovecot.log').read_text()}")
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    try:
        yield instance
    finally:
        subprocess.run([binary, "-c", str(instance.config), "stop"], check=False, timeout=30)
        with contextlib.suppress(ProcessLookupError):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)


def message(n: int, subject: str | None = None) -> bytes:
    return (
        f"From: sender{n}@old.example\r\nTo: me@example.com\r\nSubject: {subject or f'message {n}'}\r\n"
        f"Message-ID: <m{n}@old.example>\r\nDate: Fri, 04 Dec 2026 12:{n % 60:02d}:00 +0000\r\n\r\nbody {n}\r\n"
    ).encode()
