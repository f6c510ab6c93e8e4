"""`compose.yaml` and `mailserver.env` for a stack: the containers the components create, in Compose form.

Every value comes from the builders and constants the Pulumi components use (config/dms_env.py,
config/dms_files.py, components/mail_server.py, components/tls.py); nothing here decides anything
about mail. Values the components still compute inline (inside their constructors) are not copied:
they are listed in `PENDING` and the render marks `compose.yaml` incomplete until they move into
pure functions (docs/render.md, "Not rendered yet").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components.mail_server import HEALTHCHECK, SIGNER_LABEL, VOLUMES, WATCHTOWER_LABEL
from config.dms_env import capabilities, published_ports
from config.settings import MailSettings

SCHEMA_PATH = Path(__file__).parent / "data" / "compose-spec.json"
MAIL_SERVICE = "mailserver"
ENV_FILE = "mailserver.env"

PENDING: dict[str, tuple[str, ...]] = {
    MAIL_SERVICE: (
        "container_name",
        "volume names",
        "config directory mount",
        "/etc/localtime mount",
        "certificate mount (tls.mode letsencrypt/existing)",
        "restart",
        "stop_grace_period",
        "healthcheck timeout and retries",
        "network_mode",
    ),
    "certbot": ("the whole service (tls.mode letsencrypt)",),
    "watchtower": ("the whole service (updates.watchtower)",),
}
"""What the components compute inline, so compose.yaml cannot carry it yet (by service)."""


@dataclass(frozen=True)
class Port:
    port: int
    """Same number on the host and in the container (config.dms_env.PublishedPort)."""
    host_ip: str | None


@dataclass(frozen=True)
class Mount:
    target: str
    """Path in the container."""
    volume: str | None = None
    """Named volume (compose key); None for a bind mount of `source`."""
    source: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Service:
    image: str
    hostname: str | None = None
    env_file: str | None = None
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    cap_add: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    memory_mb: int | None = None
    healthcheck: tuple[str, ...] = ()
    """Docker's test form, e.g. ("CMD-SHELL", "<shell>")."""


def env_file_text(env: Sequence[tuple[str, str]]) -> str:
    """`mailserver.env`: plain `VAR=VAL` lines (DMS: no quotes, no substitution; compose reads it the same way).

    Raises:
        ValueError: a value holds a line break, which no env file can carry.
    """
    for key, value in env:
        if "\n" in value or "\r" in value:
            raise ValueError(f"environment variable {key} contains a line break")
    return "".join(f"{key}={value}\n" for key, value in env)


def mail_service(settings: MailSettings, *, signer_fingerprint: str) -> Service:
    """The DMS container as components/mail_server.py defines it (minus `PENDING`)."""
    labels = [(SIGNER_LABEL, signer_fingerprint)]
    if settings.watchtower:
        labels.append((WATCHTOWER_LABEL, "true"))
    return Service(
        image=settings.image,
        hostname=settings.hostname,
        env_file=ENV_FILE,
        ports=tuple(Port(p.port, settings.ports.bind_address) for p in published_ports(settings.ports)),
        mounts=tuple(Mount(target=path, volume=role) for role, path in VOLUMES),
        cap_add=capabilities(settings),
        labels=tuple(labels),
        memory_mb=settings.memory_mb,
        healthcheck=("CMD-SHELL", HEALTHCHECK),
    )


def pending(settings: MailSettings) -> tuple[str, ...]:
    """Human-readable list of what compose.yaml lacks for these settings."""
    out = [f"{MAIL_SERVICE}: {item}" for item in PENDING[MAIL_SERVICE] if _applies(item, settings)]
    if settings.tls.mode == "letsencrypt":
        out += [f"certbot: {item}" for item in PENDING["certbot"]]
    if settings.watchtower:
        out += [f"watchtower: {item}" for item in PENDING["watchtower"]]
    return tuple(out)


def _applies(item: str, settings: MailSettings) -> bool:
    return not item.startswith("certificate mount") or settings.tls.mode != "self-signed"


def service_document(service: Service) -> dict[str, Any]:
    """One service in Compose's long syntax (explicit fields are easier to audit than short strings)."""
    doc: dict[str, Any] = {"image": service.image}
    if service.hostname:
        doc["hostname"] = service.hostname
    if service.env_file:
        doc["env_file"] = [service.env_file]
    if service.ports:
        doc["ports"] = [
            {
                "target": p.port,
                "published": p.port,
                "protocol": "tcp",
                **({"host_ip": p.host_ip} if p.host_ip else {}),
            }
            for p in service.ports
        ]
    if service.mounts:
        doc["volumes"] = [_mount(m) for m in service.mounts]
    if service.cap_add:
        doc["cap_add"] = list(service.cap_add)
    if service.labels:
        doc["labels"] = dict(service.labels)
    if service.memory_mb is not None:
        doc["mem_limit"] = f"{service.memory_mb}m"
    if service.healthcheck:
        doc["healthcheck"] = {"test": list(service.healthcheck)}
    return doc


def _mount(mount: Mount) -> dict[str, Any]:
    if mount.volume is not None:
        out: dict[str, Any] = {"type": "volume", "source": mount.volume, "target": mount.target}
    else:
        out = {"type": "bind", "source": mount.source, "target": mount.target}
    if mount.read_only:
        out["read_only"] = True
    return out


def compose_document(settings: MailSettings, *, signer_fingerprint: str) -> dict[str, Any]:
    """The whole compose file as a mapping (project name, services, named volumes)."""
    services = {MAIL_SERVICE: mail_service(settings, signer_fingerprint=signer_fingerprint)}
    volumes = sorted({m.volume for s in services.values() for m in s.mounts if m.volume})
    return {
        "name": f"mailstack-{settings.stack}",
        "services": {key: service_document(service) for key, service in services.items()},
        "volumes": {volume: {} for volume in volumes},
    }


def dump(document: Mapping[str, Any], *, header: Sequence[str] = ()) -> str:
    """YAML text in the document's key order, with `#` header lines."""
    body = yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=120)
    return "".join(f"# {line}\n" if line else "#\n" for line in header) + body


@cache
def schema() -> dict[str, Any]:
    """The vendored Compose Specification JSON schema (mailstack/data/README.md says where it is from)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


def schema_errors(document: Mapping[str, Any]) -> list[str]:
    """Every violation of the Compose schema, as `<path>: <message>` (empty = valid).

    jsonschema is a test dependency (requirements-dev.txt); the render itself does not need it.
    """
    import jsonschema  # type: ignore[import-untyped]

    validator = jsonschema.Draft7Validator(schema())
    return sorted(
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(dict(document))
    )
