"""Dropbear, DietPi's default SSH server, against the stack's connection pattern, for real.

Debian's Dropbear (compiled with the default `MAX_UNAUTH_PER_IP 5`, default_options.h:281 in
2022.83) listens on a loopback port, inside a private mount namespace whose /root holds only the
test's authorized_keys. The tests show the limit itself (a sixth unauthenticated connection is
closed at once, svr-main.c:294), that the file commands registered under the mock runtime form one
chain (so `pulumi up` at its default, unbounded parallelism has one dial in flight), and replay
those commands' recorded scripts over real SSH one after another, with the Docker provider's `ssh`
options (the host-key pin) as the client's.

The replay uses OpenSSH's client, not pulumi-command's Go client: what is shown is the server's
behaviour for the connection pattern and the scripts, not pulumi-command itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.host_target import ssh_options
from mailstack.config.settings import TargetSettings
from tests.conftest import PROD_SECRET_KEYS, prod_config_values, require_tool
from tests.harness import Registration, run_program, with_values
from tests.test_host_moves import in_dependency_order

MAX_UNAUTH_PER_IP = 5


@dataclass
class Dropbear:
    port: int
    host_key: str
    """authorized_keys form, as `target.hostKey` takes it."""
    client_key: Path

    def target(self, data_dir: Path, host_key: str | None = None) -> TargetSettings:
        return TargetSettings(
            kind="ssh",
            data_dir=str(data_dir),
            host="127.0.0.1",
            port=self.port,
            host_key=host_key or self.host_key,
            private_key_file=str(self.client_key),
        )

    def ssh(self, target: TargetSettings, script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Runs `script` as pulumi-command does (one connection, the text as the session command)."""
        argv = ["ssh", *ssh_options(target), "-o", "LogLevel=ERROR", "-p", str(self.port), "root@127.0.0.1", script]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)

    @contextlib.contextmanager
    def unauthenticated(self, count: int) -> Iterator[list[bool]]:
        """Holds `count` TCP connections that never authenticate; yields which got the SSH banner."""
        socks = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(count)]
        try:
            greeted = []
            for s in socks:
                try:
                    greeted.append(s.recv(64).startswith(b"SSH-"))
                except OSError:
                    greeted.append(False)
            yield greeted
        finally:
            for s in socks:
                s.close()
            time.sleep(0.3)  # the server notices the closed children before the next test step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dropbear(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dropbear]:
    if os.geteuid() != 0:
        pytest.skip("needs root: Dropbear logs in as root inside a private mount namespace")
    server = require_tool("dropbear")
    keygen = require_tool("dropbearkey")
    unshare = require_tool("unshare")
    require_tool("ssh")
    work = tmp_path_factory.mktemp("dropbear")
    out = subprocess.run(
        [keygen, "-t", "ed25519", "-f", str(work / "host_key")], capture_output=True, text=True, check=True
    )
    host_key = " ".join(next(line for line in out.stdout.splitlines() if line.startswith("ssh-")).split()[:2])
    client_key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
    home = work / "root"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    (home / ".ssh" / "authorized_keys").write_text((work / "id_ed25519.pub").read_text())
    (home / ".ssh" / "authorized_keys").chmod(0o600)
    port = _free_port()
    log = (work / "dropbear.log").open("w")
    # -F foreground, -E log to stderr, -s keys only; the namespace's /root is the test's directory.
    proc = subprocess.Popen(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$1" /root && exec "$2" -F -E -s -p "127.0.0.1:$3" -r "$4" -P "$5"',
            "sh",
            str(home),
            server,
            str(port),
            str(work / "host_key"),
            str(work / "dropbear.pid"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"dropbear did not start: {(work / 'dropbear.log').read_text()}")
            time.sleep(0.1)
        time.sleep(0.3)
        yield Dropbear(port=port, host_key=host_key, client_key=client_key)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_a_sixth_unauthenticated_connection_is_refused(dropbear: Dropbear, tmp_path: Path) -> None:
    target = dropbear.target(tmp_path)
    with dropbear.unauthenticated(12) as greeted:
        # Connections 6 to 12 are closed before the server says a word.
        assert greeted == [True] * MAX_UNAUTH_PER_IP + [False] * (12 - MAX_UNAUTH_PER_IP)
    with dropbear.unauthenticated(MAX_UNAUTH_PER_IP - 1):
        assert dropbear.ssh(target, "true").returncode == 0  # the fifth slot is free
    with dropbear.unauthenticated(MAX_UNAUTH_PER_IP):
        refused = dropbear.ssh(target, "true")
    assert refused.returncode == 255
    # Closed before the server's identification string: "Connection closed by remote host", or
    # "Connection reset by peer" when the client's own identification was already on the way.
    assert refused.stderr.startswith("kex_exchange_identification: "), refused.stderr


def test_the_host_key_pin_accepts_the_host_and_refuses_another_key(dropbear: Dropbear, tmp_path: Path) -> None:
    assert dropbear.ssh(dropbear.target(tmp_path), "echo pinned").stdout == "pinned\n"
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFm1x5QeH8nY3vGmK2yZ1Qx9c0fXo2p7Yb6Lq4Jm8TnA"
    wrong = dropbear.ssh(dropbear.target(tmp_path, host_key=other), "echo pinned")
    assert wrong.returncode == 255
    assert "Host key verification failed" in wrong.stderr


def test_the_recorded_commands_run_one_at_a_time_within_one_free_slot(dropbear: Dropbear, tmp_path: Path) -> None:
    """The stack's remote commands, as registered, replayed in their chain against Dropbear while
    four other unauthenticated connections hold four of its five slots."""
    data = tmp_path / "data"
    target = dropbear.target(data)
    config = with_values(
        prod_config_values(),
        target={
            "kind": "ssh",
            "host": "127.0.0.1",
            "port": dropbear.port,
            "hostKey": dropbear.host_key,
            "privateKeyFile": str(dropbear.client_key),
            "dataDir": str(data),
            "bootstrap": False,
        },
    )
    run = run_program(config, PROD_SECRET_KEYS, stack="prod")
    assert run.error is None, run.error
    commands = [r for r in in_dependency_order(run) if r.type == "command:remote:Command"]
    writers = [r for r in commands if r.plain_inputs.get("create")]
    assert len(writers) == 10

    with dropbear.unauthenticated(MAX_UNAUTH_PER_IP - 1):
        for reg in writers:
            result = dropbear.ssh(target, reg.plain_inputs["create"], reg.plain_inputs["stdin"])
            assert result.returncode == 0, (reg.name, result.stderr)
    for reg in writers:
        path = Path(reg.plain_inputs["create"].rsplit(" ", 1)[1].strip("'"))
        assert path.read_text() == reg.plain_inputs["stdin"], reg.name
        assert path.stat().st_mode & 0o777 == 0o600

    # All at once, as without the chain: with the same four slots taken, dials collide.
    with dropbear.unauthenticated(MAX_UNAUTH_PER_IP - 1):
        argv = ["ssh", *ssh_options(target), "-o", "LogLevel=ERROR", "-p", str(dropbear.port), "root@127.0.0.1"]
        procs = [
            subprocess.Popen(
                [*argv, r.plain_inputs["create"]], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for r in writers
        ]
        results = []
        for proc, reg in zip(procs, writers, strict=True):
            proc.communicate(reg.plain_inputs["stdin"], timeout=60)
            results.append(proc.returncode)
    # Not an exact count: which dial wins the one free slot is a race, but 10 dials at once cannot
    # all pass through one slot in turn.
    assert any(rc == 255 for rc in results)

    # The files-on-move command's delete removes them all, over the same connection.
    cleanup = next(r for r in commands if r.name == "mail-files-on-move")
    assert dropbear.ssh(target, cleanup.plain_inputs["delete"]).returncode == 0
    assert not data.exists()


def test_every_host_operation_waits_for_the_previous_one() -> None:
    """Under the mock runtime: the commands and Docker resources on the host form one chain, each
    depending directly on the one before it, in registration order."""
    run = run_program(prod_config_values(), PROD_SECRET_KEYS, stack="prod")
    assert run.error is None, run.error
    on_host = [
        r
        for r in run.resources
        if r.custom and (r.type.startswith("command:") or (r.type.startswith("docker:") and "providers" not in r.type))
    ]
    chain = _topological(on_host)
    assert [r.name for r in chain] == [
        "host-bootstrap",
        # The protected volumes first: `destroy --exclude-protected` keeps what they depend on.
        "mail-mail-data",
        "mail-mail-state",
        "mail-mail-logs",
        "mail-accounts",
        "mail-aliases",
        "mail-quotas",
        "mail-relay-credentials",
        "mail-opendkim-keytable",
        "mail-opendkim-signingtable",
        "mail-opendkim-trustedhosts",
        "mail-dkim-mail-another.com",
        "mail-dkim-mail-example.com",
        "mail-tls-certbot-image",
        "mail-tls-cloudflare-credentials",
        "mail-tls-certbot",
        "mail-image",
        "mail-container",
        "mail-files-on-move",
    ]
    for before, after in itertools.pairwise(chain):
        assert before.urn in after.options["dependencies"], (before.name, after.name)


def _topological(regs: list[Registration]) -> list[Registration]:
    """`regs` sorted so that each comes after everything it depends on."""
    by_urn = {r.urn: r for r in regs}
    done: list[Registration] = []

    def visit(reg: Registration) -> None:
        if reg in done:
            return
        for dep in reg.options["dependencies"]:
            if dep in by_urn:
                visit(by_urn[dep])
        done.append(reg)

    for reg in regs:
        visit(reg)
    return done
