"""The SSH private key: what the state holds, the agent preferred, passphrase-protected keys refused.

Real OpenSSH tools make the keys (`ssh-keygen`) and hold them (`ssh-agent`, `ssh-add`).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROD_SECRET_KEYS, prod_config_values, require_tool, ssh_key_file
from tests.harness import RunResult, is_secret, run_program, with_values

AGENT_HINT = "target.privateKeyFile: ssh-agent already holds this key"


def _keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run([require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)], check=True)
    return path


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real ssh-agent on a private socket, as SSH_AUTH_SOCK."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen([require_tool("ssh-agent"), "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _prod(key_file: str | None) -> RunResult:
    config = with_values(prod_config_values(), **{"target/privateKeyFile": key_file})
    run = run_program(config, PROD_SECRET_KEYS, stack="prod")
    assert run.error is None, run.error
    return run


def test_state_holds_the_key_text_in_every_remote_command() -> None:
    run = _prod(ssh_key_file())
    remote = run.by_type("command:remote:Command")
    assert sorted(r.name for r in remote) == sorted(
        [
            "host-bootstrap",
            "mail-accounts",
            "mail-aliases",
            "mail-quotas",
            "mail-relay-credentials",
            "mail-opendkim-keytable",
            "mail-opendkim-signingtable",
            "mail-opendkim-trustedhosts",
            "mail-dkim-mail-another.com",
            "mail-dkim-mail-example.com",
            "mail-tls-cloudflare-credentials",
            "mail-files-on-move",
        ]
    )
    key_text = Path(ssh_key_file()).read_text()
    for reg in remote:
        assert is_secret(reg.inputs["connection"]), reg.name
        assert reg.plain_inputs["connection"]["privateKey"] == key_text, reg.name
    # The Docker provider gets the path only.
    provider = run.one("pulumi:providers:docker", "host-docker")
    assert key_text not in str(provider.plain_inputs)
    assert ssh_key_file() in provider.plain_inputs["sshOpts"]


def test_without_a_key_file_no_key_material_and_no_agent_path_is_stored(agent: Path) -> None:
    run = _prod(None)
    for reg in run.by_type("command:remote:Command"):
        # No privateKey and no agentSocketPath: pulumi-command reads $SSH_AUTH_SOCK when it dials.
        assert sorted(reg.plain_inputs["connection"]) == [
            "dialErrorLimit",
            "host",
            "hostKey",
            "perDialTimeout",
            "port",
            "user",
        ], reg.name
    assert str(agent) not in str([r.plain_inputs for r in run.resources])
    assert not any(AGENT_HINT in m for m in run.logs)


def test_a_key_the_agent_holds_gets_the_hint_to_use_the_agent(agent: Path) -> None:
    key = ssh_key_file()
    assert not any(AGENT_HINT in m for m in _prod(key).logs)  # not loaded yet
    subprocess.run([require_tool("ssh-add"), "-q", key], check=True, env={**os.environ, "SSH_AUTH_SOCK": str(agent)})
    hint = [m for m in _prod(key).logs if AGENT_HINT in m]
    assert hint == [
        "target.privateKeyFile: ssh-agent already holds this key, yet its text goes (encrypted) into the state of "
        "every remote command. Remove it and both SSH clients use the agent: "
        "pulumi config rm --path 'mailstack:target.privateKeyFile'"
    ]


def test_a_passphrase_protected_key_is_a_configuration_problem(tmp_path: Path) -> None:
    key = _keygen(tmp_path / "id_ed25519", passphrase="a passphrase")
    config = with_values(prod_config_values(), **{"target/privateKeyFile": str(key)})
    run = run_program(config, PROD_SECRET_KEYS, stack="prod")
    assert run.resources == []
    assert str(run.error) == (
        "mailstack: the configuration of stack 'prod' has 1 problem (nothing was created):\n"
        f"- mailstack:target.privateKeyFile: '{key}' is protected by a passphrase, which pulumi-command cannot ask "
        f"for; load it into ssh-agent (ssh-add {key}) and remove privateKeyFile\n"
        "    fix: pulumi config rm --path 'mailstack:target.privateKeyFile'"
    )


def test_an_unprotected_key_from_ssh_keygen_is_accepted(tmp_path: Path) -> None:
    key = _keygen(tmp_path / "id_ed25519")
    run = _prod(str(key))
    assert run.one("command:remote:Command", "mail-accounts").plain_inputs["connection"]["privateKey"] == (
        key.read_text()
    )
