"""Validate a stack's raw configuration once and report every problem together.

`load_settings` is pure: it takes the plain mapping Pulumi hands the program (`mailstack:*` keys,
objects as JSON text) plus the set of keys stored as secrets, and returns `MailSettings` or raises
one `ConfigError` listing every problem with its key and the command that fixes it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from mailstack.config import backup, checks, ddns, settings_checks
from mailstack.config.errors import NAMESPACE, ConfigError, Problem, key_path, problem, rm_command, set_command
from mailstack.config.model import (
    DEFAULT_LOCAL_DATA_DIR,
    DEFAULT_MEMORY_MB,
    DEFAULT_MTA_STS_MAX_AGE,
    DEFAULT_SSH_DATA_DIR,
    TOP_LEVEL_KEYS,
    Dmarc,
    Domain,
    RawSettings,
)
from mailstack.config.names import InvalidNameError, normalise_address, to_ascii
from mailstack.config.relay import PRESETS
from mailstack.config.settings import (
    AccountSettings,
    AliasSettings,
    DomainSettings,
    MailSettings,
    MtaStsSettings,
    RelaySettings,
    Rfc2136Settings,
    TargetSettings,
    TlsSettings,
)

Check = Callable[["checks.Context"], Iterable[Problem]]


def load_settings(
    raw: Mapping[str, object],
    *,
    secret_keys: Collection[str] = (),
    stack: str = "dev",
    home: str | None = None,
    extra_checks: Iterable[Check] = (),
) -> MailSettings:
    """Parse, check and resolve a stack configuration.

    Args:
        raw: config keys as Pulumi passes them (`mailstack:hostname`, `cloudflare:apiToken`, …);
            object values may be JSON text or already-decoded objects.
        secret_keys: the full keys whose values were set with `--secret`.
        stack: the stack name (used in messages and default paths).
        home: home directory used to expand the local target's default data dir.
        extra_checks: further checks to run on the parsed settings (e.g. DNS record rules).

    Returns:
        The resolved settings.

    Raises:
        ConfigError: listing every problem found.
    """
    problems: list[Problem] = []
    data: dict[str, object] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        if key not in TOP_LEVEL_KEYS:
            problems.append(_unknown_key([key], TOP_LEVEL_KEYS))
            continue
        decoded = _decode(value)
        # Pulumi.yaml must give optional keys a default; its empty defaults mean "not set".
        if decoded in ("", None, {}) or (key == "memoryLimitMB" and decoded in (0, "0")):
            continue
        data[key] = decoded

    fields: dict[str, Any] = {}
    failed: set[str] = set()
    for name, info in RawSettings.model_fields.items():
        alias = info.alias or name
        if alias not in data:
            if info.is_required():
                failed.add(name)
                problems.extend(checks.missing_required(alias))
                fields[name] = None
            else:
                fields[name] = info.get_default(call_default_factory=True)
            continue
        value = data[alias]
        entry_model = _dict_entry_model(info.annotation)
        if entry_model is not None and isinstance(value, dict):
            # Validate mapping entries one by one, so one bad domain does not hide the problems of
            # the others; a broken entry stays declared (with defaults) so that cross-checks such as
            # "account outside the declared domains" do not report a second, derived problem.
            entries: dict[str, Any] = {}
            for entry_key, entry_value in value.items():
                try:
                    entries[str(entry_key)] = entry_model.model_validate(entry_value if entry_value is not None else {})
                except ValidationError as exc:
                    problems.extend(_from_pydantic(alias, info.annotation, exc, prefix=(str(entry_key),)))
                    entries[str(entry_key)] = entry_model.model_construct()
            fields[name] = entries
            continue
        annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        try:
            fields[name] = TypeAdapter[Any](annotation).validate_python(value)
        except ValidationError as exc:
            failed.add(name)
            problems.extend(_from_pydantic(alias, info.annotation, exc))
            fields[name] = info.get_default(call_default_factory=True) if not info.is_required() else None

    parsed = RawSettings.model_construct(**fields)
    ctx = checks.Context(parsed, failed=frozenset(failed), secret_keys=frozenset(secret_keys), raw=raw, stack=stack)
    for check in (*checks.ALL, *extra_checks):
        problems.extend(check(ctx))
    settings = _try_resolve(parsed, stack, home) if not failed else None
    if settings is not None:
        for settings_check in settings_checks.ALL:
            problems.extend(settings_check(settings))
    if problems or settings is None:
        raise ConfigError(problems, stack)
    warnings = tuple(dict.fromkeys(w for warn in settings_checks.WARNINGS for w in warn(settings)))
    return dataclasses.replace(settings, warnings=warnings) if warnings else settings


def _try_resolve(parsed: RawSettings, stack: str, home: str | None) -> MailSettings | None:
    """Resolve even when cross-field checks failed, so resolved-settings checks can still run.

    A configuration with invalid names cannot be resolved; its problems are already listed.
    """
    try:
        return _resolve(parsed, stack, home)
    except (InvalidNameError, ValueError, AssertionError, KeyError):
        return None


def _decode(value: object) -> object:
    """Pulumi passes object and array config values as JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _unknown_key(path: list[str | int], known: Iterable[str]) -> Problem:
    name = str(path[-1])
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
    fix = rm_command(path)
    if close:
        fix += f", then set '{key_path([*path[:-1], close[0]])}' instead"
    return Problem(key_path(path), f"unknown key '{name}'{hint}", fix)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `X | None` down to the container or model type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = candidates[0]
        else:
            return annotation


def _model_at(annotation: Any, path: Iterable[str | int]) -> type[BaseModel] | None:
    """The pydantic model that owns the keys at `path` (to suggest the closest valid key)."""
    current = annotation
    for seg in path:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == seg), None)
            if field is None:
                return None
            current = field.annotation
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif origin is tuple:
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _dict_entry_model(annotation: Any) -> type[BaseModel] | None:
    """For `dict[str, Model]` fields, the Model."""
    if typing.get_origin(annotation) is dict:
        value_type = _unwrap(typing.get_args(annotation)[1])
        if isinstance(value_type, type) and issubclass(value_type, BaseModel):
            return value_type
    return None


def _from_pydantic(alias: str, annotation: Any, exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[str | int, ...]] = set()
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        if loc in seen:
            continue
        seen.add(loc)
        path: list[str | int] = [alias, *loc]
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(annotation, loc[:-1])
            known = [(f.alias or n) for n, f in model.model_fields.items()] if model else []
            out.append(_unknown_key(path, known))
        elif kind == "missing":
            out.append(problem(path, "is required"))
        elif kind == "literal_error":
            expected = str(err.get("ctx", {}).get("expected", ""))
            choices = expected.replace(" or ", ", ").replace("'", "")
            out.append(problem(path, f"must be one of: {choices}", value=f"<{choices.replace(', ', '|')}>"))
        else:
            message = str(err["msg"])
            if kind == "value_error":
                message = str(err.get("ctx", {}).get("error", message))
            message = message[0].lower() + message[1:]
            out.append(problem(path, message))
    return out


def _resolve(raw: RawSettings, stack: str, home: str | None) -> MailSettings:
    """Apply defaults and normalise names: only called on a configuration that passed every check."""
    target = raw.target
    default_dir = DEFAULT_SSH_DATA_DIR if target.kind == "ssh" else DEFAULT_LOCAL_DATA_DIR.format(stack=stack)
    data_dir = target.data_dir or default_dir
    if data_dir.startswith("~"):
        data_dir = str(Path(home or Path.home()) / data_dir[2:])
    hosted = raw.dns.provider == "cloudflare"  # where the Worker serves the documents (DomainSettings.hosts_web)
    domains = tuple(
        sorted(
            (
                DomainSettings(
                    name=to_ascii(name),
                    zone=to_ascii(d.zone) if d.zone else to_ascii(name),
                    zone_id=d.zone_id,
                    mx_priority=d.mx.priority,
                    backup_mx=d.backup_mx,
                    spf=d.spf,
                    dkim=d.dkim,
                    dmarc=_dmarc_uris(d.dmarc),
                    tlsrpt=d.tlsrpt,
                    records=d.records,
                    dns_provider=d.dns.provider or raw.dns.provider,
                    mta_sts=_mta_sts(d, (d.dns.provider or raw.dns.provider) == "cloudflare"),
                    autoconfig=(d.dns.provider or raw.dns.provider) == "cloudflare"
                    if raw.autoconfig is None
                    else raw.autoconfig,
                )
                for name, d in raw.domains.items()
            ),
            key=lambda d: d.name,
        )
    )
    accounts = tuple(
        sorted(
            (
                AccountSettings(normalise_address(a), acc.password, acc.quota, acc.migrate_from)
                for a, acc in raw.accounts.items()
            ),
            key=lambda a: a.address,
        )
    )
    aliases = tuple(
        sorted(
            (
                AliasSettings(checks.normalise_alias_key(k), tuple(normalise_address(t) for t in targets))
                for k, targets in raw.aliases.items()
            ),
            # Catch-alls last: Postfix virtual(5) consults specific addresses first anyway, and a
            # readable file lists them after the addresses they do not shadow.
            key=lambda a: (a.address.startswith("@"), a.address),
        )
    )
    relay = None
    if raw.relay is not None:
        preset = PRESETS.get(raw.relay.preset)
        host = raw.relay.host or (preset.host.format(region=raw.relay.region) if preset else "")
        if raw.relay.password is None:
            raise ValueError("relay without password")  # reported by checks.relay
        relay = RelaySettings(
            host=host,
            port=raw.relay.port or (preset.port if preset else 587),
            username=raw.relay.username or (preset.username if preset and preset.username else ""),
            password=raw.relay.password,
            spf_include=raw.relay.spf_include or (preset.spf_include if preset else None),
            preset=raw.relay.preset,
        )
    tls = raw.tls
    challenge = tls.challenge
    if tls.mode == "letsencrypt" and challenge is None:
        # The hostname's zone decides (config/checks.py `hostname_dns`), not the stack-level provider.
        challenge = "dns-cloudflare" if checks.hostname_dns(raw)[0] == "cloudflare" else "http"
    return MailSettings(
        stack=stack,
        hostname=to_ascii(raw.hostname),
        public_ipv4=str(raw.public_ipv4) if raw.public_ipv4 else None,
        public_ipv6=str(raw.public_ipv6) if raw.public_ipv6 else None,
        target=TargetSettings(
            kind=target.kind,
            data_dir=data_dir.rstrip("/"),
            host=target.host,
            port=target.port,
            user=target.user,
            host_key=target.host_key,
            private_key_file=target.private_key_file,
            bootstrap=target.bootstrap,
            memory_cgroup=target.memory_cgroup,
        ),
        image=raw.image,
        profile=raw.profile,
        memory_mb=raw.memory_limit_mb or DEFAULT_MEMORY_MB[raw.profile],
        ports=raw.ports,
        env=tuple(sorted(raw.env.items())),
        tls=TlsSettings(mode=tls.mode, challenge=challenge, email=tls.email, staging=tls.staging, path=tls.path),
        dns_provider=raw.dns.provider,
        ttl=raw.dns.ttl,
        domains=domains,
        accounts=accounts,
        aliases=aliases,
        relay=relay,
        watchtower=raw.updates.watchtower,
        watchtower_image=raw.updates.image,
        spf_fail=raw.inbound.spf_fail,
        backup=backup.resolve(raw.backup),
        rfc2136=_rfc2136(raw),
        ddns=ddns.resolve(raw, to_ascii(raw.hostname), {d.zone: d.dns_provider for d in domains}),
        autoconfig=hosted if raw.autoconfig is None else raw.autoconfig,
        dane=raw.dane,
        dane_rollover=raw.dane_rollover,
    )


def _rfc2136(raw: RawSettings) -> Rfc2136Settings | None:
    """`dns.rfc2136`, when a domain publishes through it (checks.dns reported anything missing)."""
    uses = raw.dns.provider == "rfc2136" or any(d.dns.provider == "rfc2136" for d in raw.domains.values())
    r = raw.dns.rfc2136
    if not uses or r is None or not (r.server and r.key_name and r.key_secret):
        return None
    key_name = r.key_name if r.key_name.endswith(".") else r.key_name + "."
    return Rfc2136Settings(r.server, r.port, key_name.lower(), r.key_algorithm, r.key_secret)


def _mta_sts(domain: Domain, hosted: bool) -> MtaStsSettings | None:
    """The policy to publish: the configured mode, else `testing` where mailstack hosts it, else none.

    `testing` first (RFC 8461 §5: senders report but still deliver) so a wrong MX list shows up in
    TLS-RPT reports before `enforce` can turn it into undelivered mail.
    """
    configured = domain.mta_sts
    max_age = configured.max_age if configured is not None else DEFAULT_MTA_STS_MAX_AGE
    mode = configured.mode if configured is not None else None
    if mode is None:
        return MtaStsSettings("testing", max_age) if hosted else None
    return MtaStsSettings(mode, max_age)


def report_uri(value: str) -> str:
    """A DMARC report destination as a `mailto:` URI with an A-label domain.

    A bare address (`dmarc@example.org`, how the seed how-to writes it) is not a DMARC URI: RFC 9989
    §4.7 and its ABNF take URIs (RFC 3986), and receivers ignore anything else, so it gets the
    `mailto:` scheme here. config/checks.py already refused values that are not addresses.
    """
    address = value[7:] if value.startswith("mailto:") else value
    address, bang, size = address.partition("!")
    local, at, domain = address.rpartition("@")
    if not (local and at):
        return value  # not an address: config/checks.py reports it
    return f"mailto:{local}@{to_ascii(domain)}{bang}{size}"


def _dmarc_uris(dmarc: Dmarc) -> Dmarc:
    return dmarc.model_copy(
        update={"rua": tuple(report_uri(u) for u in dmarc.rua), "ruf": tuple(report_uri(u) for u in dmarc.ruf)}
    )


__all__ = ["ConfigError", "Problem", "load_settings", "set_command"]
