"""Where Docker runs: the local engine, or a Debian/DietPi host over SSH (bootstrapped on request)."""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from config.settings import TargetSettings

BOOTSTRAP_SCRIPT = Path(__file__).parent / "scripts" / "bootstrap.sh"

# A host key pins both SSH clients. pulumi-command takes it directly (`host_key`). The Docker
# provider runs the local `ssh` binary, which only reads known_hosts files; instead of writing one
# (a side effect outside Pulumi's state), OpenSSH >= 8.5's KnownHostsCommand supplies the pinned key
# on its command line (`%H` is the known_hosts name ssh looks up, `[host]:port` off port 22), the
# real known_hosts files are ignored, and HostKeyAlgorithms makes the server present that key type.
# RSA and DSA pins are refused by config.checks.target: pulumi-command can check them only with
# SHA-1 signatures, which current servers no longer offer.
_HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": "ssh-ed25519",
    "ecdsa-sha2-nistp256": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521": "ecdsa-sha2-nistp521",
}


def docker_host(target: TargetSettings) -> str:
    return f"ssh://{target.user}@{target.host}:{target.port}"


def ssh_options(target: TargetSettings) -> list[str]:
    """`ssh` arguments for the Docker provider (an argv list: one element per word)."""
    opts = ["-o", "BatchMode=yes"]  # never prompt: a prompt would hang `pulumi up`
    if target.private_key_file:
        # As written: ssh expands `~` itself (`ssh -G -i '~/k'` shows the expanded path), so the
        # provider's inputs do not differ between operators with different home directories.
        opts += ["-i", target.private_key_file, "-o", "IdentitiesOnly=yes"]
    if target.host_key:
        key_type = target.host_key.split()[0]
        opts += [
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"KnownHostsCommand=/bin/echo %H {target.host_key}",
            "-o",
            f"HostKeyAlgorithms={_HOST_KEY_ALGORITHMS[key_type]}",
        ]
    return opts


def write_file_script(path: str) -> str:
    """Shell that writes stdin to `path` atomically, mode 0600; nothing secret is in it.

    Directories are created 0755 (Rspamd runs as `_rspamd` and must traverse `rspamd/dkim/`); the
    file goes to a temporary name in the same directory and is renamed over the target, so DMS's
    change detector never hashes a half-written file. An existing file's owner is kept: DMS chowns
    `rspamd/dkim/` to `_rspamd` at start, and a rewrite must not take the key away from Rspamd
    (GNU `chown --reference`; where it fails, e.g. macOS, the file stays the writer's).
    """
    directory, base = posixpath.split(path)
    q = shlex.quote
    return (
        "set -eu; umask 022; "
        f"mkdir -p {q(directory)}; umask 077; "
        f"tmp=$(mktemp {q(f'{directory}/.{base}.XXXXXX')}); "
        """trap 'rm -f "$tmp"' EXIT; """
        """cat >"$tmp"; chmod 0600 "$tmp"; """
        f"""if [ -e {q(path)} ]; then chown --reference={q(path)} "$tmp" 2>/dev/null || :; fi; """
        f"""mv -f "$tmp" {q(path)}"""
    )


def remove_file_script(path: str) -> str:
    return f"rm -f {shlex.quote(path)}"


@dataclass(frozen=True)
class HostTargetArgs:
    target: TargetSettings
    """Resolved target settings (kind, SSH coordinates, dataDir, bootstrap)."""
    stack: str
    """Stack name, for messages."""


class HostTarget(pulumi.ComponentResource):
    """A Docker provider for the target, the SSH bootstrap when asked, and a way to write files there.

    `local`: the local engine (DOCKER_HOST or its default socket); files are written by
    `command.local.Command`. `ssh`: the Docker provider on `ssh://user@host:port` and, with
    `bootstrap`, a `command.remote.Command` that runs components/scripts/bootstrap.sh; files are
    written by `command.remote.Command` over stdin, because DietPi's default SSH server (Dropbear)
    has no SFTP, so copy resources (`CopyToRemote`) fail there.
    """

    docker_provider: docker.Provider
    """Pass as `provider=` to every Docker resource on this host."""
    data_dir: str
    """Absolute host directory for config, certificates and state."""
    ready: list[pulumi.Resource]
    """Resources that must finish before anything runs on the host (the bootstrap, if any)."""
    connection: command.remote.ConnectionArgs | None
    """SSH coordinates for remote commands (None for the local target)."""

    def __init__(self, name: str, args: HostTargetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:HostTarget", name, None, opts)
        target = args.target
        self.data_dir = target.data_dir
        self.ready = []
        self.connection = None
        if target.kind == "local":
            self.docker_provider = docker.Provider(f"{name}-docker", opts=pulumi.ResourceOptions(parent=self))
            self.register_outputs({"data_dir": self.data_dir})
            return

        assert target.host is not None  # config.checks.target requires it for kind ssh
        if not target.host_key:
            pulumi.log.warn(
                f"target.hostKey is not set: the bootstrap and file commands will not check the SSH host key of "
                f"{target.host}, and the Docker provider relies on ~/.ssh/known_hosts. Pin it: "
                f"pulumi config set --path mailstack:target.hostKey \"$(ssh-keyscan -t ed25519 {target.host} | cut -d' ' -f2-)\"",
                resource=self,
            )
        self.connection = command.remote.ConnectionArgs(
            host=target.host,
            port=target.port,
            user=target.user,
            host_key=target.host_key,
            # pulumi-command wants the key text; without a key file it uses ssh-agent ($SSH_AUTH_SOCK).
            # The SDK stores `connection` as a secret.
            private_key=pulumi.Output.secret(_read_key(target.private_key_file)) if target.private_key_file else None,
        )
        if target.bootstrap:
            bootstrap = command.remote.Command(
                f"{name}-bootstrap",
                connection=self.connection,
                create=f"bash -s -- {shlex.quote(target.data_dir)}",
                stdin=BOOTSTRAP_SCRIPT.read_text(),
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ready = [bootstrap]
        self.docker_provider = docker.Provider(
            f"{name}-docker",
            host=docker_host(target),
            ssh_opts=ssh_options(target),
            # On a fresh host Docker does not exist until the bootstrap ran; the provider would fail
            # its start-up ping during preview. Resources using it depend on the bootstrap instead.
            disable_docker_daemon_check=True if target.bootstrap else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.ready),
        )
        self.register_outputs({"data_dir": self.data_dir})

    def write_file(
        self, name: str, path: str, content: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> pulumi.CustomResource:
        """A command resource that writes `content` (always treated as secret) to `path` on the host.

        The text travels on stdin, never on a command line or in the environment; output is not
        logged and stdout/stderr are secret. Any change rewrites the file in place (pulumi-command
        runs `create` again on an input change), so DMS's change detector sees the new file while
        the container keeps running.

        Args:
            name: resource name.
            path: absolute path on the host.
            content: the file text.
            opts: options of the caller (normally `parent=<component>`); the host's readiness is
                added to `depends_on`.
        """
        merged = pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(depends_on=self.ready, additional_secret_outputs=["stdout", "stderr"]),
        )
        common: dict[str, Any] = {
            "create": write_file_script(path),
            "delete": remove_file_script(path),
            "stdin": pulumi.Output.secret(content),
            "add_previous_output_in_env": False,
            "opts": merged,
        }
        if self.connection is None:
            return command.local.Command(name, logging=command.local.Logging.NONE, **common)
        return command.remote.Command(name, connection=self.connection, logging=command.remote.Logging.NONE, **common)


def _read_key(path: str) -> str:
    """The private key text for pulumi-command (it takes text, not a path)."""
    file = Path(path).expanduser()
    try:
        return file.read_text()
    except OSError as exc:
        raise pulumi.RunError(
            f"mailstack:target.privateKeyFile {path}: cannot read the SSH private key ({exc.strerror}). "
            "Set it to an existing key file, or remove it to use ssh-agent."
        ) from None
