"""HostTarget: Docker provider and SSH options, the file-writing command, and the bootstrap script.

The bootstrap script is the part that runs on real hardware, so it is run here for real: with bash,
fed on stdin exactly as the remote command does (`bash -s -- <dataDir>`), against a fake root with
PATH stubs for dpkg, docker, apt-get, systemctl, sudo and id.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.host_target import BOOTSTRAP_SCRIPT, docker_host, remove_file_script, ssh_options, write_file_script
from mailstack.config.settings import TargetSettings
from tests.conftest import PROD_SECRET_KEYS, prod_config_values
from tests.harness import ROOT, is_secret, run_program, stack_config, with_values

PROGRAM = ROOT / "tests" / "programs" / "server_only.py"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFm1x5QeH8nY3vGmK2yZ1Qx9c0fXo2p7Yb6Lq4Jm8TnA"
BASH = shutil.which("bash") or "/bin/bash"


# --- SSH options and the Docker provider -------------------------------------------------------


def test_ssh_options_pin_the_host_key_without_writing_known_hosts() -> None:
    target = TargetSettings(
        kind="ssh", data_dir="/srv", host="dietpi.lan", port=2222, host_key=HOST_KEY, private_key_file="/keys/id"
    )
    assert docker_host(target) == "ssh://root@dietpi.lan:2222"
    assert ssh_options(target) == [
        "-o",
        "BatchMode=yes",
        "-i",
        "/keys/id",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"KnownHostsCommand=/bin/echo %H {HOST_KEY}",
        "-o",
        "HostKeyAlgorithms=ssh-ed25519",
    ]


def test_ssh_options_ecdsa_pin_asks_for_that_key_type() -> None:
    target = TargetSettings(kind="ssh", data_dir="/srv", host="h", host_key="ecdsa-sha2-nistp256 AAAAE2VjZHNh")
    assert ssh_options(target)[-1] == "HostKeyAlgorithms=ecdsa-sha2-nistp256"


def test_ssh_options_without_key_or_pin() -> None:
    assert ssh_options(TargetSettings(kind="ssh", data_dir="/srv", host="h")) == ["-o", "BatchMode=yes"]


def test_openssh_expands_the_tilde_in_the_key_path() -> None:
    """The key path is passed as written; the real ssh client resolves `~` itself (from the passwd
    entry, as `-i` does), so no operator's home directory ends up in the provider's inputs."""
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.skip("no ssh client installed")
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    name = f".mailstack-test-key-{uuid.uuid4().hex}"
    try:
        (home / name).write_text("not a key: ssh -G only checks that the file exists\n")
    except OSError:
        pytest.skip(f"cannot write a probe file in {home}")
    try:
        target = TargetSettings(kind="ssh", data_dir="/srv", host="h", private_key_file=f"~/{name}")
        assert ssh_options(target)[2:4] == ["-i", f"~/{name}"]
        result = subprocess.run(
            [ssh, "-G", *ssh_options(target), "root@dietpi.lan"],
            capture_output=True,
            text=True,
            check=True,
            stdin=subprocess.DEVNULL,
        )
    finally:
        (home / name).unlink()
    assert f"identityfile {home}/{name}" in result.stdout.splitlines()


def test_openssh_accepts_the_options() -> None:
    """The local ssh client parses them (KnownHostsCommand needs OpenSSH >= 8.5)."""
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.skip("no ssh client installed")
    target = TargetSettings(kind="ssh", data_dir="/srv", host="dietpi.lan", port=2222, host_key=HOST_KEY)
    result = subprocess.run(
        [ssh, "-G", *ssh_options(target), "-p", "2222", "root@dietpi.lan"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    config = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert config["knownhostscommand"] == f"/bin/echo %H {HOST_KEY}"
    assert config["stricthostkeychecking"] == "true"
    assert config["userknownhostsfile"] == "/dev/null"
    assert config["hostkeyalgorithms"] == "ssh-ed25519"
    assert config["batchmode"] == "yes"


# --- the file-writing command, run for real ----------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_write_file_script_writes_atomically_with_mode_0600(tmp_path: Path, shell: str) -> None:
    sh = shutil.which(shell)
    if sh is None:
        pytest.skip(f"{shell} not installed")
    target = tmp_path / "data dir" / "config" / "opendkim" / "keys" / "example.com" / "mail.private"
    script = write_file_script(str(target))
    assert "SECRET" not in script
    for content in ("SECRET one\n", "SECRET two, longer\n"):
        subprocess.run([sh, "-c", script], input=content.encode(), check=True)
        assert target.read_text() == content
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    assert sorted(p.name for p in target.parent.iterdir()) == ["mail.private"]  # no temp file left
    subprocess.run([sh, "-c", remove_file_script(str(target))], check=True)
    assert not target.exists()


def test_write_file_script_keeps_the_owner_of_an_existing_file(tmp_path: Path) -> None:
    """DMS chowns rspamd/dkim/ to _rspamd at start; a rewrite must not hand the key back to root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    target = tmp_path / "key.private.txt"
    target.write_text("old")
    os.chown(target, 4242, 4343)
    subprocess.run([BASH, "-c", write_file_script(str(target))], input=b"new", check=True)
    assert (target.stat().st_uid, target.stat().st_gid, target.read_text()) == (4242, 4343, "new")


def test_write_file_script_failing_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "postfix-accounts.cf"
    target.write_text("old\n")
    script = write_file_script(str(target)).replace('cat >"$tmp"', 'cat >"$tmp"; false')
    assert subprocess.run([BASH, "-c", script], input=b"new\n", check=False).returncode != 0
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["postfix-accounts.cf"]


# --- the bootstrap script, run for real against a fake root -------------------------------------


@dataclass
class FakeHost:
    root: Path
    bin: Path
    state: Path
    data_dir: Path

    def set_arch(self, arch: str) -> None:
        (self.state / "arch").write_text(arch)

    def dietpi(self, stage: str = "2", software_works: bool = True) -> None:
        d = self.root / "boot" / "dietpi"
        d.mkdir(parents=True)
        (d / ".version").write_text("G_DIETPI_VERSION_CORE=9\n")
        (d / ".install_stage").write_text(stage + "\n")
        _stub(
            d / "dietpi-software",
            f'echo "G_INTERACTIVE=${{G_INTERACTIVE:-unset}} $*" >> {self.state}/dietpi-calls\n'
            + (f"touch {self.state}/docker-installed\n" if software_works else "")
            + "exit 0\n",
        )

    def docker_installed(self) -> None:
        (self.state / "docker-installed").touch()

    def cgroup(self, v2: str | None = "cpuset cpu io memory pids", v1: str | None = None) -> None:
        if v2 is not None:
            (self.root / "sys" / "fs" / "cgroup").mkdir(parents=True, exist_ok=True)
            (self.root / "sys" / "fs" / "cgroup" / "cgroup.controllers").write_text(v2 + "\n")
        if v1 is not None:
            (self.root / "proc").mkdir(exist_ok=True)
            (self.root / "proc" / "cgroups").write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\n" + v1)

    def calls(self, name: str) -> list[str]:
        path = self.state / name
        return path.read_text().splitlines() if path.exists() else []

    def run(
        self, *args: str, uid: int = 0, as_stdin: bool = True, data_dir: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin:/usr/sbin:/sbin",
            "MAILSTACK_BOOTSTRAP_ROOT": str(self.root),
            "MAILSTACK_DOCKER_WAIT_SECONDS": "0",
            "FAKE_UID": str(uid),
            "HOME": str(self.root),
        }
        target = data_dir or str(self.data_dir)
        if as_stdin:  # exactly what the remote command does
            return subprocess.run(
                [BASH, "-s", "--", target, *args],
                input=BOOTSTRAP_SCRIPT.read_text(),
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        return subprocess.run(
            [BASH, str(BOOTSTRAP_SCRIPT), target, *args], env=env, capture_output=True, text=True, check=False
        )


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHost]:
    fake = FakeHost(tmp_path / "root", tmp_path / "bin", tmp_path / "state", tmp_path / "root" / "mnt" / "mailstack")
    for d in (fake.root, fake.bin, fake.state):
        d.mkdir()
    s = fake.state
    _stub(fake.bin / "dpkg", f'[ "$1" = --print-architecture ] && cat {s}/arch\n')
    # Docker answers once "installed"; with docker-needs-sudo only through the sudo stub (root).
    _stub(
        fake.bin / "docker",
        f'[ -e {s}/docker-installed ] || exit 1\n[ -e {s}/docker-needs-sudo ] && [ "$AS_ROOT" != 1 ] && exit 1\nexit 0\n',
    )
    # apt-get reads its stdin like a prompt would: it must not eat the rest of the script.
    _stub(
        fake.bin / "apt-get",
        f'cat >/dev/null\necho "$*" >> {s}/apt-calls\ncase "$*" in *install*) touch {s}/docker-installed;; esac\n',
    )
    _stub(fake.bin / "systemctl", f'echo "$*" >> {s}/systemctl-calls\n')
    _stub(fake.bin / "sudo", f'[ "$1" = -n ] && shift\necho "$*" >> {s}/sudo-calls\nAS_ROOT=1 exec "$@"\n')
    real_id = shutil.which("id", path="/usr/bin:/bin")
    _stub(fake.bin / "id", f'case "$1" in -u) echo "$FAKE_UID";; -un) echo dietpi;; *) exec {real_id} "$@";; esac\n')
    fake.set_arch("arm64")
    yield fake


def test_bootstrap_script_parses() -> None:
    assert subprocess.run([BASH, "-n", str(BOOTSTRAP_SCRIPT)], check=False).returncode == 0


def test_ready_host_only_creates_the_data_dir(host: FakeHost) -> None:
    host.docker_installed()
    host.cgroup()
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "mailstack-bootstrap: architecture: arm64",
        "mailstack-bootstrap: Docker is installed and running",
        "mailstack-bootstrap: memory cgroup: enabled",
        f"mailstack-bootstrap: data directory: {host.data_dir}",
        "mailstack-bootstrap: host ready",
    ]
    assert result.stderr == ""
    assert stat.S_IMODE(host.data_dir.stat().st_mode) == 0o700
    assert host.calls("apt-calls") == []


@pytest.mark.parametrize("arch", ["armhf", "armel"])
def test_32_bit_arm_is_refused_before_anything_is_installed(host: FakeHost, arch: str) -> None:
    host.set_arch(arch)
    result = host.run()
    assert result.returncode == 1
    assert result.stderr.startswith(f"mailstack-bootstrap: ERROR: 32-bit ARM userland ({arch}): docker-mailserver")
    assert "64-bit (ARMv8/arm64)" in result.stderr
    assert host.calls("apt-calls") == [] and not host.data_dir.exists()


def test_other_architectures_are_refused(host: FakeHost) -> None:
    host.set_arch("riscv64")
    result = host.run()
    assert (result.returncode, result.stderr) == (
        1,
        "mailstack-bootstrap: ERROR: architecture riscv64 is not supported: docker-mailserver publishes only amd64 and arm64 images\n",
    )


def test_dietpi_before_first_run_setup_stops_with_advice(host: FakeHost) -> None:
    host.dietpi(stage="1")
    result = host.run()
    assert result.returncode == 1
    assert "DietPi first-run setup has not finished (/boot/dietpi/.install_stage is '1', expected 2)" in result.stderr
    assert "AUTO_SETUP_AUTOMATED=1" in result.stderr
    assert host.calls("dietpi-calls") == []


def test_dietpi_installs_docker_with_dietpi_software_non_interactively(host: FakeHost) -> None:
    host.dietpi()
    host.cgroup()
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert host.calls("dietpi-calls") == ["G_INTERACTIVE=0 install 162"]
    assert "mailstack-bootstrap: Docker installed" in result.stdout.splitlines()
    assert host.calls("apt-calls") == []


def test_dietpi_software_success_status_is_not_trusted(host: FakeHost) -> None:
    host.dietpi(software_works=False)
    result = host.run()
    assert result.returncode == 1
    assert "Docker is still not answering after the install" in result.stderr
    assert "/boot/dietpi/dietpi-software install 162" in result.stderr
    assert not host.data_dir.exists()


def test_plain_debian_installs_docker_io_and_the_script_survives_stdin_readers(host: FakeHost) -> None:
    host.set_arch("amd64")
    host.cgroup()
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert host.calls("apt-calls") == ["update -q", "install -y -q --no-install-recommends docker.io"]
    assert host.calls("systemctl-calls") == ["enable --now docker"]
    assert result.stdout.splitlines()[-1] == "mailstack-bootstrap: host ready"


ENABLE_MEMORY = (
    "On a Raspberry Pi, DietPi's Docker install adds cgroup_enable=memory to /boot/firmware/cmdline.txt: "
    "reboot once. Elsewhere add cgroup_enable=memory to the kernel command line and reboot."
)


def test_missing_memory_cgroup_stops_before_a_limit_docker_would_discard(host: FakeHost) -> None:
    """Docker would drop the limit and the provider read back memory 0: a change on every `pulumi up`."""
    host.docker_installed()
    host.cgroup(v2="cpuset cpu io pids", v1="memory\t0\t1\t0\n")
    result = host.run()
    assert (result.returncode, result.stderr) == (
        1,
        "mailstack-bootstrap: ERROR: the memory cgroup is not enabled, so Docker would discard the mail "
        "container's memory limit (docker info: 'No memory limit support') and every pulumi up would show it "
        f"as a change. {ENABLE_MEMORY} Then run 'pulumi up' again. Or run without a limit: "
        "pulumi config set --path 'mailstack:target.memoryCgroup' false\n",
    )
    assert not host.data_dir.exists()


def test_missing_memory_cgroup_with_memory_cgroup_false_only_warns(host: FakeHost) -> None:
    host.docker_installed()
    host.cgroup(v2="cpuset cpu io pids", v1="memory\t0\t1\t0\n")
    result = host.run("--no-memory-limit")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "mailstack-bootstrap: WARNING: the memory cgroup is not enabled; no memory limit is set "
        f"(target.memoryCgroup false). {ENABLE_MEMORY} Then: pulumi config set --path "
        "'mailstack:target.memoryCgroup' true\n"
    )


def test_cgroup_v1_memory_controller_counts(host: FakeHost) -> None:
    host.docker_installed()
    host.cgroup(v2=None, v1="cpu\t2\t1\t1\nmemory\t3\t1\t1\n")
    result = host.run()
    assert "mailstack-bootstrap: memory cgroup: enabled (cgroup v1)" in result.stdout.splitlines()


def test_non_root_user_uses_sudo_and_must_be_in_the_docker_group(host: FakeHost) -> None:
    host.dietpi()
    (host.state / "docker-needs-sudo").touch()
    result = host.run(uid=1000)
    assert result.returncode == 1
    assert "user 'dietpi' cannot use Docker" in result.stderr
    assert "sudo usermod -aG docker dietpi" in result.stderr
    assert host.calls("sudo-calls")[:2] == [
        "docker version",
        f"env G_INTERACTIVE=0 {host.root}/boot/dietpi/dietpi-software install 162",
    ]


def test_relative_data_dir_is_refused(host: FakeHost) -> None:
    result = host.run(data_dir="mailstack")
    assert (result.returncode, result.stderr) == (
        1,
        "mailstack-bootstrap: ERROR: dataDir must be an absolute path, got 'mailstack'\n",
    )


def test_script_also_runs_as_a_file(host: FakeHost) -> None:
    host.docker_installed()
    host.cgroup()
    assert host.run(as_stdin=False).returncode == 0


# --- the component under mocks -----------------------------------------------------------------


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME holding the prod example's private key file (~/.ssh/id_ed25519)."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_local_target_uses_the_local_engine_and_local_commands(dev_config: dict[str, str]) -> None:
    run = run_program(dev_config, program=PROGRAM)
    assert run.error is None
    provider = run.one("pulumi:providers:docker", "host-docker")
    assert {k: v for k, v in provider.plain_inputs.items() if k != "version"} == {}
    assert run.by_type("command:remote:Command") == []
    assert {r.name for r in run.by_type("command:local:Command")} >= {"mail-accounts", "mail-aliases", "mail-quotas"}
    host = run.one("mailstack:index:HostTarget")
    assert run.component_outputs[host.urn] == {"data_dir": str(Path.home() / ".mailstack" / "dev")}


def prod_with_home_key() -> dict[str, str]:
    """The prod example as written: its key file is `~/.ssh/id_ed25519` (ssh_home provides it)."""
    return with_values(prod_config_values(), **{"target/privateKeyFile": "~/.ssh/id_ed25519"})


def test_ssh_target_bootstrap_command_and_provider(ssh_home: Path) -> None:
    run = run_program(prod_with_home_key(), PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert run.error is None
    bootstrap = run.one("command:remote:Command", "host-bootstrap")
    inputs = bootstrap.plain_inputs
    assert inputs["create"] == "bash -s -- /mnt/dietpi_userdata/mailstack"
    assert inputs["stdin"] == BOOTSTRAP_SCRIPT.read_text()
    assert inputs["addPreviousOutputInEnv"] is False
    assert inputs["connection"] == {
        "host": "dietpi.lan",
        "port": 22,
        "user": "root",
        "hostKey": HOST_KEY,
        "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n",
        "dialErrorLimit": 10,
        "perDialTimeout": 15,
    }
    assert is_secret(bootstrap.inputs["connection"])
    provider = run.one("pulumi:providers:docker", "host-docker")
    pinputs = provider.plain_inputs
    assert pinputs["host"] == "ssh://root@dietpi.lan:22"
    assert json.loads(pinputs["sshOpts"]) == ssh_options(
        TargetSettings(
            kind="ssh",
            data_dir="/mnt/dietpi_userdata/mailstack",
            host="dietpi.lan",
            host_key=HOST_KEY,
            private_key_file="~/.ssh/id_ed25519",
        )
    )
    # The path as written: ssh expands `~` itself, so operators' inputs do not differ.
    assert "~/.ssh/id_ed25519" in json.loads(pinputs["sshOpts"])
    assert pinputs["disableDockerDaemonCheck"] in (True, "true")
    assert provider.options["dependencies"] == [bootstrap.urn]
    # Everything that runs on the host waits for the bootstrap.
    for r in run.resources:
        if r.custom and r.name != "host-bootstrap" and r.type.split(":")[0] in ("command", "docker"):
            assert bootstrap.urn in r.options["dependencies"], r.name


def test_without_bootstrap_there_is_no_bootstrap_command(ssh_home: Path) -> None:
    config = with_values(prod_with_home_key(), **{"target/bootstrap": False})
    run = run_program(config, PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert run.error is None
    assert [r.name for r in run.by_type("command:remote:Command") if r.name == "host-bootstrap"] == []
    provider = run.one("pulumi:providers:docker", "host-docker")
    assert "disableDockerDaemonCheck" not in provider.plain_inputs
    assert provider.options["dependencies"] == []


def test_unpinned_host_key_warns(ssh_home: Path) -> None:
    config = with_values(prod_with_home_key(), **{"target/hostKey": None})
    run = run_program(config, PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert run.error is None
    warning = next(m for m in run.logs if "target.hostKey is not set" in m)
    assert "ssh-keyscan -t ed25519 dietpi.lan" in warning
    provider = run.one("pulumi:providers:docker", "host-docker")
    assert json.loads(provider.plain_inputs["sshOpts"]) == [
        "-o",
        "BatchMode=yes",
        "-i",
        "~/.ssh/id_ed25519",
        "-o",
        "IdentitiesOnly=yes",
    ]


def test_missing_private_key_file_is_a_configuration_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable key file is reported with the other config problems, before any resource."""
    monkeypatch.setenv("HOME", str(tmp_path))
    run = run_program(prod_with_home_key(), PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert run.error is not None
    assert str(run.error) == (
        "mailstack: the configuration of stack 'prod' has 1 problem (nothing was created):\n"
        "- mailstack:target.privateKeyFile: '~/.ssh/id_ed25519' is not a readable file; name an existing SSH "
        "private key, or remove it to use ssh-agent\n"
        "    fix: pulumi config rm --path 'mailstack:target.privateKeyFile'"
    )
    assert run.resources == []


def test_file_command_text_quotes_paths() -> None:
    script = write_file_script("/srv/my data/config/postfix-accounts.cf")
    assert "mkdir -p '/srv/my data/config'" in script
    assert script.endswith("mv -f \"$tmp\" '/srv/my data/config/postfix-accounts.cf'")
    assert shlex.split(remove_file_script("/srv/my data/x")) == ["rm", "-f", "/srv/my data/x"]


def test_dev_stack_file_in_repo_is_local() -> None:
    assert "mailstack:target" in stack_config(ROOT / "Pulumi.dev.yaml")


def test_memory_cgroup_false_sends_no_limit_and_says_so(ssh_home: Path) -> None:
    """target.memoryCgroup false: no memory (Docker would discard it), the bootstrap only warns, and the
    plan-time warning names the fix."""
    config = with_values(prod_with_home_key(), **{"target/memoryCgroup": False})
    run = run_program(config, PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert run.error is None
    container = run.one("docker:index/container:Container", "mail-container").plain_inputs
    assert ("memory" in container, "memorySwap" in container) == (False, False)
    bootstrap = run.one("command:remote:Command", "host-bootstrap")
    assert bootstrap.plain_inputs["create"] == "bash -s -- /mnt/dietpi_userdata/mailstack --no-memory-limit"
    assert [m for m in run.logs if "target.memoryCgroup" in m] == [
        "target.memoryCgroup is false: the mail container runs without a memory limit. Once the host's kernel has "
        "the memory cgroup (Raspberry Pi: cgroup_enable=memory in /boot/firmware/cmdline.txt, then reboot; "
        "`docker info` no longer warns 'No memory limit support'): "
        "pulumi config set --path 'mailstack:target.memoryCgroup' true"
    ]
