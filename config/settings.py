"""Resolved, immutable settings: what the builders and components consume.

`load_settings` produces a `MailSettings` only from a configuration that passed every check, with
every default applied and every name normalised (lowercase A-labels, no trailing dot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from mailstack.config.backup_model import BackupSettings, MigrateFrom
from mailstack.config.errors import Problem
from mailstack.config.model import BackupMx, Dkim, Dmarc, ExtraRecord, MtaStsMode, Ports, Spf, TlsRpt


@dataclass(frozen=True)
class TargetSettings:
    kind: Literal["local", "ssh"]
    data_dir: str
    host: str | None = None
    port: int = 22
    user: str = "root"
    host_key: str | None = None
    private_key_file: str | None = None
    bootstrap: bool = True
    memory_cgroup: bool = True
    """The host's kernel has the memory cgroup (target.memoryCgroup): the memory limit is sent."""


@dataclass(frozen=True)
class TlsSettings:
    mode: Literal["self-signed", "letsencrypt", "existing"]
    challenge: Literal["dns-cloudflare", "http"] | None = None
    email: str | None = None
    staging: bool = False
    path: str | None = None


@dataclass(frozen=True)
class MtaStsSettings:
    """A published MTA-STS policy (RFC 8461); `mode: none` is the published way to withdraw one (§8.3)."""

    mode: MtaStsMode
    max_age: int


@dataclass(frozen=True)
class DomainSettings:
    name: str
    zone: str
    zone_id: str | None
    mx_priority: int
    backup_mx: tuple[BackupMx, ...]
    spf: Spf
    dkim: Dkim
    dmarc: Dmarc
    tlsrpt: TlsRpt | None
    records: tuple[ExtraRecord, ...]
    dns_provider: str = "manual"
    """Where this domain's zone is published: `domains.<d>.dns.provider`, else `dns.provider`."""
    mta_sts: MtaStsSettings | None = None
    """None: no policy and no `_mta-sts` record (the default where mailstack cannot host the policy)."""
    autoconfig: bool = False
    """Serve this domain's client autoconfiguration documents (`autoconfig`, default: where hosted)."""

    @property
    def hosts_web(self) -> bool:
        """Whether mailstack serves this domain's HTTPS documents (a Cloudflare Worker in its zone)."""
        return self.dns_provider == "cloudflare"


@dataclass(frozen=True)
class Rfc2136Settings:
    """`dns.rfc2136`: the primary that takes the updates and the TSIG key that signs them."""

    server: str
    port: int
    key_name: str
    key_algorithm: str
    key_secret: SecretStr


@dataclass(frozen=True)
class DdnsSettings:
    """`ddns` when enabled: who publishes the hostname's changing address, and how ddclient reaches it."""

    provider: str
    """`cloudflare` or `rfc2136` (the hostname's zone backend, for `ddns.provider: dns`), `dynu`, `duckdns`, `noip`."""
    hostname: str
    zone: str | None
    """The stack zone holding the hostname (cloudflare, rfc2136); None at a DDNS service."""
    username: str | None
    password: SecretStr | None
    interval: int
    ip_source: str


@dataclass(frozen=True)
class AccountSettings:
    address: str
    password: SecretStr | None
    quota: str | None
    migrate_from: MigrateFrom | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class AliasSettings:
    address: str
    """`local@domain`, or `@domain` for a catch-all."""
    targets: tuple[str, ...]


@dataclass(frozen=True)
class RelaySettings:
    host: str
    port: int
    username: str
    password: SecretStr
    spf_include: str | None
    preset: str = "custom"
    """`relay.preset`; the presets without an SPF include send with their own Return-Path domain."""

    @property
    def relay_host(self) -> str:
        """Postfix `relayhost` form; brackets skip the MX lookup (postconf(5))."""
        return f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class MailSettings:
    stack: str
    hostname: str
    public_ipv4: str | None
    public_ipv6: str | None
    target: TargetSettings
    image: str
    profile: Literal["minimal", "standard"]
    memory_mb: int
    ports: Ports
    env: tuple[tuple[str, str], ...]
    tls: TlsSettings
    dns_provider: str
    """`dns.provider`: the stack's default DNS backend (each domain may override it)."""
    ttl: int
    domains: tuple[DomainSettings, ...]
    accounts: tuple[AccountSettings, ...]
    aliases: tuple[AliasSettings, ...] = ()
    relay: RelaySettings | None = None
    watchtower: bool = False
    watchtower_image: str = ""
    spf_fail: Literal["reject", "junk"] = "reject"
    """`inbound.spfFail`: refuse mail failing SPF, or file it into the recipient's Junk folder."""
    warnings: tuple[Problem, ...] = ()
    """Things worth knowing that do not stop a deploy (the Pulumi program logs them, `render` prints them)."""
    backup: BackupSettings | None = None
    rfc2136: Rfc2136Settings | None = None
    ddns: DdnsSettings | None = None
    autoconfig: bool = False
    """Serve Thunderbird autoconfig, Outlook autodiscover and an Apple profile for every domain."""
    dane: bool = False
    """Publish TLSA `_25._tcp.<hostname>` for the SMTP key and manage DNSSEC (RFC 7672)."""
    dane_rollover: int = 0
    """`daneRollover`: the generation of the SMTP key in use (config/dane.py)."""

    @property
    def hosts_web(self) -> bool:
        """Whether mailstack serves HTTPS documents for some domain (a Cloudflare Worker); else `render` writes them."""
        return any(d.hosts_web for d in self.domains)

    def domain(self, name: str) -> DomainSettings:
        return next(d for d in self.domains if d.name == name)

    @property
    def domain_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.domains)

    @property
    def zone_providers(self) -> dict[str, str]:
        """Zone → the DNS backend that publishes it (config/checks.py refuses a zone with two)."""
        return {d.zone: d.dns_provider for d in sorted(self.domains, key=lambda d: d.name)}

    @property
    def dns_providers(self) -> frozenset[str]:
        """Every backend a zone of the stack uses."""
        return frozenset(self.zone_providers.values())
