"""A private Postfix instance on loopback (Debian's `postfix` package), for tests.

Usage::

    with PostfixInstance(virtual=..., accounts=..., relay_port=..., hostname=...) as mta:
        smtplib.SMTP("127.0.0.1", mta.port).sendmail(...)
        mta.wait_for_empty_queue()

Its own config directory, queue, maildir base and log file live in a temporary directory; it
listens on 127.0.0.1 only and relays every non-local recipient to `[127.0.0.1]:relay_port`. The
address classes are DMS v15.1's (target/postfix/main.cf, setup.d/postfix.sh): virtual mailbox
domains from the domains of postfix-accounts.cf and postfix-virtual.cf (helpers/postfix.sh
`_vhost_collect_postfix_domains`), `texthash:` virtual alias and mailbox maps, and vmailbox lines
`<address> <domain>/<user>/` (helpers/accounts.sh). DMS delivers to Dovecot over LMTP; here
Postfix's own virtual(8) agent writes the maildirs, which is where the resolution shows.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.conftest import require_tool
from tests.dnsserver import free_port

# (service, type, private, unpriv, chroot, wakeup, maxproc, command): master.cf(5), all unchrooted.
_SERVICES = (
    ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),
    ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
    ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
    ("error", "unix", "-", "-", "n", "-", "-", "error"),
    ("retry", "unix", "-", "-", "n", "-", "-", "error"),
    ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
    ("virtual", "unix", "-", "n", "n", "-", "-", "virtual"),
    ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
    ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def vhost_domains(accounts_text: str, virtual_text: str) -> list[str]:
    """The domains DMS writes to /etc/postfix/vhost: of every account and every alias key."""
    domains: set[str] = set()
    for line in accounts_text.splitlines():
        if line.strip() and not line.startswith("#"):
            domains.add(line.split("|", 1)[0].rpartition("@")[2])
    for line in virtual_text.splitlines():
        if line.strip() and not line.startswith("#"):
            key = line.split()[0]
            if "@" in key:
                domains.add(key.rpartition("@")[2])
    return sorted(domains)


def vmailbox(accounts_text: str) -> str:
    """/etc/postfix/vmailbox as DMS writes it: `<login> <domain>/<user>/` per account."""
    lines = []
    for line in accounts_text.splitlines():
        if line.strip() and not line.startswith("#"):
            login = line.split("|", 1)[0]
            user, _, domain = login.partition("@")
            lines.append(f"{login} {domain}/{user}/\n")
    return "".join(lines)


class PostfixInstance:
    def __init__(self, *, accounts: str, virtual: str, relay_port: int, hostname: str) -> None:
        self.postfix = require_tool("postfix")
        self.postmap_tool = require_tool("postmap")
        # Not under pytest's tmp_path: its parents are 0700 root, and Postfix's daemons run as the
        # `postfix` user (and virtual(8) as `nobody`), who must reach their directories.
        root = Path(tempfile.mkdtemp(prefix="mailstack-postfix-"))
        root.chmod(0o755)
        self.root = root
        self.etc = root / "etc"
        self.mail = root / "mail"
        self.log = root / "maillog"
        self.port = free_port("127.0.0.1")
        self.etc.mkdir(parents=True)
        nobody = pwd.getpwnam("nobody")
        self.mail.mkdir()
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        # Postfix creates the queue's subdirectories itself (postfix-files), not these two.
        (root / "spool").mkdir()
        (root / "data").mkdir()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        (self.etc / "virtual").write_text(virtual)
        (self.etc / "vmailbox").write_text(vmailbox(accounts))
        (self.etc / "vhost").write_text("".join(f"{d}\n" for d in vhost_domains(accounts, virtual)))
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(root / "spool"),
            "data_directory": str(root / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(root),
            "myhostname": hostname,
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
            "recipient_delimiter": "+",
            "smtputf8_enable": "no",
            "biff": "no",
            # DMS's address classes (target/postfix/main.cf, setup.d/postfix.sh).
            "virtual_mailbox_domains": str(self.etc / "vhost"),
            "virtual_alias_maps": f"texthash:{self.etc / 'virtual'}",
            "virtual_mailbox_maps": f"texthash:{self.etc / 'vmailbox'}",
            "virtual_transport": "virtual",
            "virtual_mailbox_base": str(self.mail),
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            # Everything else goes to the test's capture server, never to the internet.
            "relayhost": f"[127.0.0.1]:{relay_port}",
            "smtp_tls_security_level": "none",
            "smtp_dns_support_level": "disabled",
        }
        (self.etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        services = [f"127.0.0.1:{self.port} inet n - n - - smtpd", *("  ".join(s) for s in _SERVICES)]
        (self.etc / "master.cf").write_text("\n".join(services) + "\n")

    def __enter__(self) -> PostfixInstance:
        self._run(self.postfix, "-c", str(self.etc), "start")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pid_file = self.root / "spool" / "pid" / "master.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        subprocess.run([self.postfix, "-c", str(self.etc), "stop"], capture_output=True, check=False)
        # The master leaves its pid file behind; wait for the process itself.
        deadline = time.monotonic() + 10
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *args: str) -> str:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr}{done.stdout}\n{log}")
        return done.stdout

    def postmap_query(self, key: str, table: str = "virtual") -> str | None:
        """`postmap -q` in the instance's texthash table; None when the key is not there."""
        done = subprocess.run(
            [self.postmap_tool, "-c", str(self.etc), "-q", key, f"texthash:{self.etc / table}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def maildir_messages(self) -> dict[str, list[bytes]]:
        """`<domain>/<user>` → the messages delivered to that maildir."""
        out: dict[str, list[bytes]] = {}
        for new in sorted(self.mail.glob("*/*/new")):
            box = f"{new.parent.parent.name}/{new.parent.name}"
            out[box] = [p.read_bytes() for p in sorted(new.iterdir())]
        return out

    def wait_for_deliveries(self, count: int, timeout: float = 30) -> None:
        """Until `count` deliveries (local or relayed) are logged as `status=sent`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text() if self.log.exists() else ""
            if text.count("status=sent") >= count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"fewer than {count} deliveries after {timeout}s:\n{self.log.read_text()}")
