"""The backup container on a real Docker engine: the stack's ContainerSpec, run with `docker run`.

The image is built here (`docker import` of a tarball with Debian's busybox-static and restic, no
registry); production uses restic/restic, whose /bin/sh is also busybox. Checks: the job runs under
busybox ash with the sources mounted read-only, writes its status to the host, nothing secret is
in `docker inspect`, and the exact `restore` command the stack outputs restores a snapshot into
new, empty volumes. Skipped where no Docker engine answers (`docker info`), failed there under CI=true.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstack.config import backup, load_settings
from mailstack.config.containers import ContainerSpec
from tests.tools import missing

PASSWORD = "docker-restic-passphrase-Hb27"
IMAGE = "mailstack-test/restic-busybox:1"
APPLETS = (
    "sh date cat mv cp rm mkdir chmod find sort sed awk wc tail sleep printf ls touch"  # busybox applets the job uses
)


def docker(*args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, input=stdin, check=False, timeout=120)
    out = subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())
    if check:
        assert out.returncode == 0, out.stderr
    return out


def _engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0


pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_engine() -> None:
    # Skipped on a machine without an engine; under CI=true (.ci/run starts dockerd) that fails the run.
    if not _engine():
        missing("no Docker engine answers `docker info` here: apt-get install docker.io and start dockerd")


def _image_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(src: str, dest: str) -> None:
            tar.add(os.path.realpath(src), arcname=dest)

        add(shutil.which("busybox") or "/bin/busybox", "bin/busybox")
        for applet in APPLETS.split():
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        add("/usr/bin/restic", "usr/bin/restic")
        for lib in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
            add(lib, lib.lstrip("/"))
        for d in ("tmp", "root"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o700
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image() -> str:
    if not Path("/usr/bin/restic").exists() or shutil.which("busybox") is None:
        pytest.fail("restic and busybox-static are needed; run .ci/run")
    docker("import", "--change", "ENV PATH=/usr/bin:/bin", "-", IMAGE, stdin=_image_tar())
    return IMAGE


@pytest.fixture
def stack() -> Iterator[tuple[str, Path]]:
    """A unique stack name and its data directory; everything named after it is removed afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}"
    data = Path(tempfile.mkdtemp(prefix="mailstack-docker-"))
    yield name, data
    for container in (f"mailstack-{name}-backup",):
        docker("rm", "-f", container, check=False)
    for role in ("mail-data", "mail-state", "restored-data", "restored-state"):
        docker("volume", "rm", "-f", f"mailstack-{name}-{role}", check=False)
    shutil.rmtree(data, ignore_errors=True)


def run_argv(spec: ContainerSpec[str], image: str) -> list[str]:
    """`docker run` for a ContainerSpec (what components/docker_spec.py sends the provider)."""
    argv = ["run", "-d", "--name", spec.name, "--restart", spec.restart, "--network", spec.network_mode]
    if spec.hostname:
        argv += ["--hostname", spec.hostname]
    for m in spec.mounts:
        argv += ["-v", f"{m.volume_name or m.host_path}:{m.container_path}{':ro' if m.read_only else ''}"]
    for key, value in spec.labels:
        argv += ["--label", f"{key}={value}"]
    for key, value in spec.env:
        argv += ["-e", f"{key}={value}"]
    if spec.stop_timeout is not None:
        argv += ["--stop-timeout", str(spec.stop_timeout)]
    if spec.entrypoint:
        argv += ["--entrypoint", spec.entrypoint[0]]
    return [*argv, image, *(spec.command or ())]


def test_backup_container_backs_up_and_the_restore_command_restores(image: str, stack: tuple[str, Path]) -> None:
    name, data = stack
    repository = data / "repository"
    raw = {
        "mailstack:hostname": "mail.example.com",
        "mailstack:domains": json.dumps({"example.com": {}}),
        "mailstack:accounts": json.dumps({"me@example.com": {"password": "pw"}}),
        "mailstack:target": json.dumps({"kind": "local", "dataDir": str(data)}),
        "mailstack:backup": json.dumps({"repository": str(repository), "password": PASSWORD, "image": image}),
    }
    settings = load_settings(raw, secret_keys=["mailstack:accounts", "mailstack:backup"], stack=name)
    assert settings.backup is not None
    # The job files, as the Backup component writes them (0600).
    job = data / backup.JOB_SUBDIR
    job.mkdir()
    for file_name, text in {
        **backup.plain_file_texts(settings.backup, name),
        **backup.secret_file_texts(settings.backup),
    }.items():
        (job / file_name).write_text(text)
        (job / file_name).chmod(0o600)
    (data / "config").mkdir()
    (data / "config" / "postfix-accounts.cf").write_text("me@example.com|{SHA512-CRYPT}$6$x$y\n")
    # Mail in the named volume, owned by DMS's uid 5000.
    maildir = "/v/example.com/me"
    fill = (
        f"mkdir -p {maildir}/cur {maildir}/new {maildir}/tmp {maildir}/.Sent/cur {maildir}/.Sent/new && "
        f"for i in 1 2 3; do echo message $i > {maildir}/cur/$i:2,S; done && echo sent > {maildir}/.Sent/cur/9:2,S && "
        "chown -R 5000:5000 /v"
    )
    docker("run", "--rm", "-v", f"mailstack-{name}-mail-data:/v", "--entrypoint", "/bin/sh", image, "-c", fill)
    docker("volume", "create", f"mailstack-{name}-mail-state")

    spec = backup.container(
        settings, fingerprint=backup.job_fingerprint(backup.plain_file_texts(settings.backup, name))
    )
    assert spec is not None and spec.env == ()
    docker(*run_argv(spec, image))
    status_file = Path(backup.status_path(settings))
    deadline = time.monotonic() + 90
    while not status_file.exists():
        assert time.monotonic() < deadline, docker("logs", spec.name).stdout + docker("logs", spec.name).stderr
        time.sleep(0.5)
    status = json.loads(status_file.read_text())
    logs = docker("logs", spec.name)
    assert status["lastResult"] == "ok", logs.stdout + logs.stderr
    assert status["host"] == f"mailstack-{name}"
    assert PASSWORD not in logs.stdout + logs.stderr
    inspect = docker("inspect", spec.name).stdout
    assert PASSWORD not in inspect
    assert json.loads(inspect)[0]["Config"]["Env"] == ["PATH=/usr/bin:/bin"]  # nothing but the image's PATH
    # The sources are read-only inside the job's container.
    write = docker("exec", spec.name, "sh", "-c", "touch /backup/mail-data/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    script = f"{backup.JOB_DIR}/{backup.SCRIPT_FILE}"
    assert backup.health_command() == f"sh {script} health"
    assert docker("exec", spec.name, "sh", script, "health").returncode == 0
    drill = docker("exec", spec.name, "sh", script, "drill")
    assert drill.stdout.splitlines()[-1] == "drill: every mailbox has the same number of messages"

    # The `restore` command the stack outputs, into new volumes (a freshly created stack).
    docker("stop", spec.name)
    names = {"mail-data": f"mailstack-{name}-restored-data", "mail-state": f"mailstack-{name}-restored-state"}
    restore = backup.restore_command(
        image=image,
        volume_names=names,
        config_dir=str(data / "restored-config"),
        job_dir=str(job),
        repository=str(repository),
    )
    assert restore[0] == "docker"
    docker(*restore[1:])
    listing = docker(
        "run",
        "--rm",
        "-v",
        f"{names['mail-data']}:/v:ro",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "cd /v && find . -type f | sort && ls -ln example.com",
    ).stdout.splitlines()
    assert listing[:4] == [
        "./example.com/me/.Sent/cur/9:2,S",
        "./example.com/me/cur/1:2,S",
        "./example.com/me/cur/2:2,S",
        "./example.com/me/cur/3:2,S",
    ]
    assert " 5000 " in listing[-1]  # DMS's uid kept
    assert (data / "restored-config" / "postfix-accounts.cf").read_text().startswith("me@example.com|")
