"""`compose.yaml` and `mailserver.env` for a stack: the containers the components create, in Compose form.

Every container comes from config/containers.py, the specs the Pulumi components translate into
`docker.Container`s (components/docker_spec.py); this module only changes their form. Nothing here
decides anything about a container.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mailstack.config import containers
from mailstack.config.containers import ContainerSpec, Healthcheck, Mount, go_duration
from mailstack.config.settings import MailSettings

SCHEMA_PATH = Path(__file__).parent / "data" / "compose-spec.json"
MAIL_SERVICE = "mailserver"
CERTBOT_SERVICE = "certbot"
WATCHTOWER_SERVICE = "watchtower"
ENV_FILE = "mailserver.env"


def env_file_text(env: Sequence[tuple[str, str]]) -> str:
    """`mailserver.env`: plain `VAR=VAL` lines (DMS: no quotes, no substitution; compose reads it the same way).

    Raises:
        ValueError: a value holds a line break, which no env file can carry.
    """
    for key, value in env:
        if "\n" in value or "\r" in value:
            raise ValueError(f"environment variable {key} contains a line break")
    return "".join(f"{key}={value}\n" for key, value in env)


def services(settings: MailSettings, *, signer_fingerprint: str) -> dict[str, ContainerSpec[str]]:
    """Compose service name → container spec, for the containers these settings run."""
    out: dict[str, ContainerSpec[str]] = {
        MAIL_SERVICE: containers.mail_container(settings, signer_fingerprint=signer_fingerprint)
    }
    certbot = containers.certbot_container(settings)
    if certbot is not None:
        out[CERTBOT_SERVICE] = certbot
    watchtower = containers.watchtower_container(settings)
    if watchtower is not None:
        out[WATCHTOWER_SERVICE] = watchtower
    return out


def service_document(
    spec: ContainerSpec[str], *, env_file: str | None = None, depends_on: Mapping[str, ContainerSpec[str]] | None = None
) -> dict[str, Any]:
    """One service in Compose's long syntax (explicit fields are easier to audit than short strings).

    Args:
        spec: the container.
        env_file: file holding the spec's environment (written by the caller); None puts it inline.
        depends_on: services that must run first, by name. One with `wait_healthy_seconds` must be
            healthy, as the component waits for it.
    """
    doc: dict[str, Any] = {"image": spec.image, "container_name": spec.name}
    if spec.hostname:
        doc["hostname"] = spec.hostname
    if env_file:
        doc["env_file"] = [env_file]
    elif spec.env:
        doc["environment"] = dict(spec.env)
    if spec.entrypoint is not None:
        doc["entrypoint"] = list(spec.entrypoint)
    if spec.command is not None:
        doc["command"] = list(spec.command)
    if spec.ports:
        doc["ports"] = [
            {
                "target": p.internal,
                "published": p.external,
                "protocol": p.protocol,
                **({"host_ip": p.ip} if p.ip else {}),
            }
            for p in spec.ports
        ]
    if spec.mounts:
        doc["volumes"] = [_mount(m) for m in spec.mounts]
    if spec.capabilities:
        doc["cap_add"] = list(spec.capabilities)
    if spec.labels:
        doc["labels"] = dict(spec.labels)
    if spec.memory_mb is not None:
        doc["mem_limit"] = f"{spec.memory_mb}m"
        doc["memswap_limit"] = containers.MEMORY_SWAP_UNLIMITED
    doc["restart"] = spec.restart
    if spec.stop_timeout is not None:
        doc["stop_grace_period"] = f"{spec.stop_timeout}s"
    doc["network_mode"] = spec.network_mode
    if spec.healthcheck is not None:
        doc["healthcheck"] = _healthcheck(spec.healthcheck)
    if depends_on:
        doc["depends_on"] = {
            name: {"condition": "service_healthy" if dep.wait_healthy_seconds is not None else "service_started"}
            for name, dep in depends_on.items()
        }
    return doc


def _mount(mount: Mount) -> dict[str, Any]:
    if mount.volume_name is not None:
        out: dict[str, Any] = {"type": "volume", "source": mount.volume_name, "target": mount.container_path}
    else:
        # The provider's `volumes` are Docker `Binds`, which create a missing host directory
        # (certbot's letsencrypt/ on first start); Compose's long syntax does so only when asked.
        out = {"type": "bind", "source": mount.host_path, "target": mount.container_path}
        out["bind"] = {"create_host_path": True}
    if mount.read_only:
        out["read_only"] = True
    return out


def _healthcheck(check: Healthcheck) -> dict[str, Any]:
    return {
        "test": list(check.tests),
        "interval": go_duration(check.interval),
        "timeout": go_duration(check.timeout),
        "start_period": go_duration(check.start_period),
        "start_interval": go_duration(check.start_interval),
        "retries": check.retries,
    }


def compose_document(settings: MailSettings, *, signer_fingerprint: str) -> dict[str, Any]:
    """The whole compose file as a mapping (project name, services, named volumes)."""
    specs = services(settings, signer_fingerprint=signer_fingerprint)
    # DMS waits for its certificate, as the component makes it wait for the Tls resources.
    waits_for = {CERTBOT_SERVICE: specs[CERTBOT_SERVICE]} if CERTBOT_SERVICE in specs else None
    documents = {
        MAIL_SERVICE: service_document(specs[MAIL_SERVICE], env_file=ENV_FILE, depends_on=waits_for),
        **{name: service_document(spec) for name, spec in specs.items() if name != MAIL_SERVICE},
    }
    volumes = sorted({m.volume_name for spec in specs.values() for m in spec.mounts if m.volume_name})
    escaped: dict[str, Any] = _escape(
        {
            "name": f"mailstack-{settings.stack}",
            "services": documents,
            # `name`: the Docker volume the stack creates, not one prefixed with the project name.
            "volumes": {volume: {"name": volume} for volume in volumes},
        }
    )
    return escaped


def _escape(value: Any) -> Any:
    """Double every `$`: Compose interpolates `$VAR` in values (certbot's script uses `$extra`, `$!`)."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: _escape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape(item) for item in value]
    return value


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
