"""What the Docker provider does with a container's inputs, against a real Docker engine.

pulumi-docker 5.2.0 bridges kreuzwerker/terraform-provider-docker v4.5.0. This module replays the
parts of its container Create and Read that mailstack's inputs reach (file:line below are in
internal/provider/ of that version), so a test can create a container from the exact inputs the
program registers, let the engine decide, and read it back the way the provider refreshes state:
whatever differs from the inputs is a diff on every `pulumi up`.

Also Go's `time.ParseDuration` and `time.Duration.String()`, which the provider uses on the way in
and out, and a minimal Docker Engine API client over the unix socket (no SDK: the API is plain
HTTP+JSON, and the CLI would hide the fields under test).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from typing import Any

SOCKET = "/var/run/docker.sock"
API = "/v1.41"
"""Docker 20.10's API version (Debian 12's docker.io); every newer engine still serves it."""

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000}
_UNITS["h"] = 60 * _UNITS["m"]


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string, as `time.ParseDuration` reads it ("1m30s", "600s", "1.5h")."""
    if text in ("0", ""):
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    total = 0
    for number, unit in parts:
        whole, _, frac = number.partition(".")
        total += int(whole or 0) * _UNITS[unit]
        if frac:
            total += int(frac) * _UNITS[unit] // 10 ** len(frac)
    return total


def go_duration_string(ns: int) -> str:
    """Go's `time.Duration.String()`: "0s", "1.5s", "500ms", "1m30s", "10m0s", "1h0m0s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, _UNITS["h"])
    minutes, rest = divmod(rest, _UNITS["m"])
    seconds = _fraction(rest, _UNITS["s"])
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(self._path)


def engine(method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200, 201, 204)) -> Any:
    """One Docker Engine API call; the decoded JSON answer (None when empty)."""
    conn = _UnixConnection(SOCKET)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, API + path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    if response.status not in expect:
        raise RuntimeError(f"{method} {path}: {response.status} {raw.decode(errors='replace')}")
    return json.loads(raw) if raw else None


# Schema defaults the provider fills in for inputs left out (resource_docker_container.go:509-531
# ports `ip` 0.0.0.0 and `protocol` tcp; :1059-1093 every healthcheck duration "0s", retries 0).
_PORT_DEFAULTS = {"ip": "0.0.0.0", "protocol": "tcp"}
_HEALTH_DEFAULTS = {"interval": "0s", "timeout": "0s", "startPeriod": "0s", "startInterval": "0s", "retries": 0}
MB = 1024 * 1024


def with_schema_defaults(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the provider sees them, schema defaults applied (numbers as ints: the mock
    runtime hands them back as floats, as protobuf's Struct carries them)."""
    out = _ints(inputs)
    if "ports" in out:
        out["ports"] = [{**_PORT_DEFAULTS, **p} for p in out["ports"]]
    if "healthcheck" in out:
        out["healthcheck"] = {**_HEALTH_DEFAULTS, **out["healthcheck"]}
    return out


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def create_body(inputs: dict[str, Any], image: str) -> dict[str, Any]:
    """The ContainerCreate request the provider builds from `inputs` (resource_docker_container_funcs.go
    resourceDockerContainerCreate, :43-350), for the fields under test; mounts are left out (they
    would write under the stack's dataDir on this machine)."""
    i = with_schema_defaults(inputs)
    config: dict[str, Any] = {"Image": image, "Hostname": i.get("hostname", "")}
    host: dict[str, Any] = {
        "RestartPolicy": {"Name": i.get("restart", "no"), "MaximumRetryCount": 0},
        "NetworkMode": i.get("networkMode", ""),
    }
    if i.get("stopTimeout"):  # :55-58, GetOk: 0 counts as unset
        config["StopTimeout"] = int(i["stopTimeout"])
    if i.get("envs"):
        config["Env"] = list(i["envs"])
    if i.get("command"):
        config["Cmd"] = list(i["command"])
    if i.get("entrypoints"):
        config["Entrypoint"] = list(i["entrypoints"])
    if i.get("labels"):
        config["Labels"] = {label["label"]: label["value"] for label in i["labels"]}
    if i.get("ports"):  # :103-107, :271 and portSetToDockerPorts (structures.go:228-258)
        exposed: dict[str, Any] = {}
        bindings: dict[str, list[dict[str, str]]] = {}
        for p in i["ports"]:
            key = f"{int(p['internal'])}/{p['protocol']}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": p["ip"], "HostPort": str(int(p["external"]))})
        config["ExposedPorts"] = exposed
        host["PortBindings"] = bindings
    if "healthcheck" in i:  # :139-162, every duration through time.ParseDuration
        h = i["healthcheck"]
        config["Healthcheck"] = {
            "Test": list(h.get("tests", [])),
            "Interval": parse_go_duration(h["interval"]),
            "Timeout": parse_go_duration(h["timeout"]),
            "StartPeriod": parse_go_duration(h["startPeriod"]),
            "StartInterval": parse_go_duration(h["startInterval"]),
            "Retries": int(h["retries"]),
        }
    if i.get("capabilities"):
        host["CapAdd"] = list(i["capabilities"].get("adds", []))
    if i.get("memory"):  # :334-336, MB
        host["Memory"] = int(i["memory"]) * MB
    if i.get("memorySwap"):  # :342-348, MB unless -1
        swap = int(i["memorySwap"])
        host["MemorySwap"] = swap * MB if swap > 0 else swap
    config["HostConfig"] = host
    return config


def read_back(inspect: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """What the provider's Read stores for the fields present in `fields` (resourceDockerContainerRead,
    resource_docker_container_funcs.go:750-980)."""
    config, host = inspect["Config"], inspect["HostConfig"]
    out: dict[str, Any] = {}
    if "memory" in fields:  # :932
        out["memory"] = host["Memory"] // MB
    if "memorySwap" in fields:  # :940-944
        swap = host["MemorySwap"]
        out["memorySwap"] = swap // MB if swap > 0 else swap
    if "stopTimeout" in fields:  # :978
        out["stopTimeout"] = config.get("StopTimeout")
    if "restart" in fields:  # :857
        out["restart"] = host["RestartPolicy"]["Name"]
    if "networkMode" in fields:  # :954
        out["networkMode"] = host["NetworkMode"]
    if "healthcheck" in fields and config.get("Healthcheck") is not None:  # :960-970
        h = config["Healthcheck"]
        out["healthcheck"] = {
            "tests": h.get("Test"),
            "interval": go_duration_string(h.get("Interval", 0)),
            "timeout": go_duration_string(h.get("Timeout", 0)),
            "startPeriod": go_duration_string(h.get("StartPeriod", 0)),
            "startInterval": go_duration_string(h.get("StartInterval", 0)),
            "retries": h.get("Retries", 0),
        }
    if "ports" in fields:  # :797-803 and flattenContainerPorts (structures.go:35-59)
        ports = inspect["NetworkSettings"]["Ports"] or {}
        flat = []
        for key in sorted(ports, key=lambda k: int(k.split("/")[0])):
            for binding in ports[key] or []:
                internal, protocol = key.split("/")
                flat.append(
                    {
                        "internal": int(internal),
                        "external": int(binding["HostPort"]),
                        "ip": binding["HostIp"],
                        "protocol": protocol,
                    }
                )
        out["ports"] = flat
    return out
