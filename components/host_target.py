"""Where Docker runs: the local engine, or a Debian/DietPi host over SSH (bootstrapped on request)."""

from __future__ import annotations

import os
import posixpath
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import pulumi_command as command
import pulumi_docker as docker
from cryptography.exceptions import UnsupportedAlgorithm

from mailstack.config.settings import TargetSettings

BOOTSTRAP_SCRIPT = Path(__file__).parent / "scripts" / "bootstrap.sh"
R = TypeVar("R", bound=pulumi.Resource)

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


def remove_files_script(data_dir: str, paths: Sequence[str]) -> str:
    """Shell that removes `paths` (mailstack's files under `data_dir`) and the directories they
    leave empty, up to `data_dir` itself; anything else in those directories stays."""
    q = shlex.quote
    dirs: set[str] = set()
    for path in paths:
        parent = posixpath.dirname(path)
        while parent.startswith(f"{data_dir}/") or parent == data_dir:
            dirs.add(parent)
            if parent == data_dir:
                break
            parent = posixpath.dirname(parent)
    # Deepest first, so a parent is tried after its children; rmdir fails (ignored) on a non-empty one.
    ordered = sorted(dirs, key=lambda d: (-d.count("/"), d))
    return "; ".join(
        [
            f"rm -f -- {' '.join(q(p) for p in sorted(paths))}",
            *(f"rmdir -- {q(d)} 2>/dev/null" for d in ordered),
            "true",
        ]
    )


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
        self._target = target
        self._tail: pulumi.Resource | None = None
        self._written: list[str] = []
        if not target.memory_cgroup:
            pulumi.log.warn(
                "target.memoryCgroup is false: the mail container runs without a memory limit. Once the host's "
                "kernel has the memory cgroup (Raspberry Pi: cgroup_enable=memory in /boot/firmware/cmdline.txt, "
                "then reboot; `docker info` no longer warns 'No memory limit support'): "
                "pulumi config set --path 'mailstack:target.memoryCgroup' true",
                resource=self,
            )
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
        key_text = _read_key(target.private_key_file) if target.private_key_file else None
        if key_text is not None and agent_holds(key_text):
            pulumi.log.warn(
                "target.privateKeyFile: ssh-agent already holds this key, yet its text goes (encrypted) into the state "
                "of every remote command. Remove it and both SSH clients use the agent: "
                "pulumi config rm --path 'mailstack:target.privateKeyFile'",
                resource=self,
            )
        self.connection = command.remote.ConnectionArgs(
            host=target.host,
            port=target.port,
            user=target.user,
            host_key=target.host_key,
            # pulumi-command wants the key text (connection.go:106-118 in v1.2.1); without it, it
            # signs with ssh-agent at $SSH_AUTH_SOCK, read when it dials (connection.go:131-145).
            # `agent_socket_path` is never set: the socket path differs per login session, and as
            # an input it would be stored and diff on every run. The SDK stores `connection` as a
            # secret, so the key text is encrypted in each remote command's state.
            private_key=pulumi.Output.secret(key_text) if key_text is not None else None,
        )
        if target.bootstrap:
            bootstrap = command.remote.Command(
                f"{name}-bootstrap",
                connection=self.connection,
                create=f"bash -s -- {shlex.quote(target.data_dir)}"
                + ("" if target.memory_cgroup else " --no-memory-limit"),
                stdin=BOOTSTRAP_SCRIPT.read_text(),
                add_previous_output_in_env=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ready = [bootstrap]
            self._tail = bootstrap
        self.docker_provider = docker.Provider(
            f"{name}-docker",
            host=docker_host(target),
            ssh_opts=ssh_options(target),
            # The provider does not connect when it starts: configure() only stores the settings
            # (internal/provider/provider.go:201-250 in kreuzwerker/terraform-provider-docker
            # v4.5.0, the upstream of pulumi-docker 5.x), and the client with its `_ping` is made
            # by the first Docker resource operation (MakeClient, config.go:116-206, ping at :196);
            # no resource has a CustomizeDiff, so a preview of new resources never connects. Every
            # Docker resource runs after the bootstrap, so the ping would pass; the check stays
            # off because a changed provider input would show as a provider diff on every stack.
            disable_docker_daemon_check=True if target.bootstrap else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.ready),
        )
        self.register_outputs({"data_dir": self.data_dir})

    def in_line(self, make: Callable[[pulumi.ResourceOptions], R], opts: pulumi.ResourceOptions) -> R:
        """Registers a resource that talks to the host (`make(opts)`) behind the previous one.

        Every such resource depends on the one registered before it, so `pulumi up` and `destroy`
        run them one at a time: Dropbear, DietPi's default SSH server, drops a client's connection
        while it already has 5 unauthenticated ones (MAX_UNAUTH_PER_IP 5 in default_options.h:281,
        checked at svr-main.c:294 in Dropbear 2022.83), and Pulumi runs independent resources all
        at once by default (`--parallel` is unbounded). pulumi-command dials a new connection for
        every create, update and delete (commandOutputs.go:31 in v1.2.1) and retries a failed dial
        (connection.go:150-199), but the Docker provider's `ssh` does not retry, and each of its
        concurrent API calls is a connection of its own.
        """
        resource = make(pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=self._line())))
        self._tail = resource
        return resource

    def _line(self) -> list[pulumi.Resource]:
        return [self._tail] if self._tail is not None else []

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
        self._written.append(path)
        return self.in_line(
            lambda o: self._command(
                name,
                create=write_file_script(path),
                delete=remove_file_script(path),
                stdin=pulumi.Output.secret(content),
                opts=o,
            ),
            merged,
        )

    def run(
        self,
        name: str,
        *,
        create: str,
        delete: str | None,
        stdin: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions,
    ) -> pulumi.CustomResource:
        """A command resource on the host, in line with the others; stdin (when given) is secret.

        Output is not logged and stdout/stderr are secret, as for `write_file`; a changed `create`
        or stdin runs `create` again.
        """
        merged = pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(depends_on=self.ready, additional_secret_outputs=["stdout", "stderr"]),
        )
        secret = None if stdin is None else pulumi.Output.secret(stdin)
        return self.in_line(lambda o: self._command(name, create=create, delete=delete, stdin=secret, opts=o), merged)

    def remove_files_on_move(self, name: str, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        """A command resource that removes every file written so far when the files move away.

        A `dataDir` (or SSH host) change is an in-place update of each file command: pulumi-command
        runs the new `create` and never the old `delete` (commandController.go:63-83 in v1.2.1), so
        the old copies (hashes, DKIM keys, relay password, API token) would stay behind. This
        resource runs nothing on create or update (no `create`: commandController.go:48-50); its
        `triggers` hold the location, and a changed trigger replaces it (common/inputs.go:10,
        `replaceOnChanges`): the engine creates the new one, then deletes the old one, which runs
        the old state's `delete` with the old connection (commandController.go:86-91) and removes
        the files from the old location. The file list is part of `delete`, so adding or removing a
        file only updates this resource's state. Call it after the last `write_file`.
        """
        location: list[Any] = [self.data_dir]
        if self._target.kind == "ssh":
            location = [self._target.host, self._target.port, self.data_dir]
        return self.in_line(
            lambda o: self._command(
                name,
                create=None,
                delete=remove_files_script(self.data_dir, self._written),
                stdin=None,
                triggers=location,
                opts=o,
            ),
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=self.ready)),
        )

    def _command(self, name: str, **kwargs: Any) -> pulumi.CustomResource:
        kwargs["add_previous_output_in_env"] = False
        if self.connection is None:
            return command.local.Command(name, logging=command.local.Logging.NONE, **kwargs)
        return command.remote.Command(name, connection=self.connection, logging=command.remote.Logging.NONE, **kwargs)


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


def agent_holds(private_key_text: str) -> bool:
    """Whether the ssh-agent at $SSH_AUTH_SOCK holds this private key (by its public half)."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return False
    public = _public_key_line(private_key_text.encode())
    if public is None:
        return False
    try:
        listed = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    wanted = public.split()[:2]
    return any(line.split()[:2] == wanted for line in listed.stdout.splitlines())


def _public_key_line(data: bytes) -> str | None:
    """`<type> <base64>` of an unencrypted OpenSSH or PEM private key, else None."""
    from cryptography.hazmat.primitives import serialization

    loaders: tuple[Any, ...] = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    for load in loaders:
        try:
            key = load(data, password=None)
            encoded: bytes = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return encoded.decode()
    return None
