"""The typed, immutable settings model: the configuration contract of DESIGN.md as pydantic models.

Field names are snake_case; the user-facing keys are the camelCase aliases (`publicIPv4`, `backupMx`,
`zoneId`). Unknown keys are refused (`extra="forbid"`), which is what turns a typo such as `acounts`
into an error instead of a silently ignored block.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator
from pydantic.alias_generators import to_camel

from mailstack.config.backup_model import Backup, MigrateFrom

DEFAULT_IMAGE = "ghcr.io/docker-mailserver/docker-mailserver:15.1.0"
DEFAULT_WATCHTOWER_IMAGE = "nickfedor/watchtower:1.21.0"
DEFAULT_CERTBOT_IMAGES = {"dns-cloudflare": "certbot/dns-cloudflare:v4.2.0", "http": "certbot/certbot:v4.2.0"}
DEFAULT_SSH_DATA_DIR = "/mnt/dietpi_userdata/mailstack"
DEFAULT_LOCAL_DATA_DIR = "~/.mailstack/{stack}"
DEFAULT_MX_PRIORITY = 10
DEFAULT_TTL = 3600
DEFAULT_DKIM_SELECTOR = "mail"
DEFAULT_DKIM_BITS: Literal[2048] = 2048
DEFAULT_DMARC_POLICY: DmarcPolicy = "quarantine"
DEFAULT_SPF_POLICY: SpfPolicy = "-all"
# A 1 GB Pi: the minimal profile (no ClamAV/Amavis/Rspamd) lives well inside 768 MB; Rspamd and its
# Redis want roughly twice that (DMS README: 1 GB "may run into problems without swap", ClamAV alone ~1.2 GiB).
DEFAULT_MEMORY_MB = {"minimal": 768, "standard": 1536}

DmarcPolicy = Literal["none", "quarantine", "reject"]
SpfPolicy = Literal["-all", "~all"]
Alignment = Literal["r", "s"]


def _env_value(value: object) -> object:
    """mailserver.env is plain VAR=VAL: booleans become DMS's 1/0, numbers their decimal text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return value


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        hide_input_in_errors=True,
        str_strip_whitespace=True,
    )


class Target(_Model):
    """Where the Docker engine runs."""

    kind: Literal["local", "ssh"] = "local"
    host: str | None = None
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    host_key: str | None = None
    """authorized_keys form (`ssh-ed25519 AAAA…`); pins the host key for both SSH clients."""
    private_key_file: str | None = None
    data_dir: str | None = None
    """Host directory for config, certificates and state; default depends on `kind`."""
    bootstrap: bool = True
    memory_cgroup: bool = Field(True, alias="memoryCgroup")
    """False on a host whose kernel has no memory cgroup: no memory limit is sent (Docker would
    discard it, and the provider would show the limit as a change on every `pulumi up`)."""
    docker_ipv6: bool = Field(False, alias="dockerIPv6")
    """Set true once the host's Docker daemon has IPv6 (ip6tables) configured; required for publicIPv6."""


class Ports(_Model):
    """Opt-in ports. 25, 465 and 993 are always published."""

    submission: bool = False
    imap: bool = False
    pop3: bool = False
    bind_address: str | None = None

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.ip_address(v)
        return v


class Tls(_Model):
    mode: Literal["self-signed", "letsencrypt", "existing"] = "self-signed"
    challenge: Literal["dns-cloudflare", "http"] | None = None
    """Default: `dns-cloudflare` when the hostname's zone is at Cloudflare, else `http` (config/checks.py `hostname_dns`)."""
    email: str | None = None
    staging: bool = False
    path: str | None = None
    """`existing` only: host directory laid out like /etc/letsencrypt."""


DnsProvider = Literal["manual", "cloudflare", "route53", "digitalocean", "hetzner", "rfc2136"]
DNS_PROVIDERS: tuple[str, ...] = ("manual", "cloudflare", "route53", "digitalocean", "hetzner", "rfc2136")


class Rfc2136(_Model):
    """The primary server that takes DNS UPDATEs (RFC 2136) signed with a TSIG key (RFC 8945)."""

    server: str | None = None
    """Name or address of the primary (not a resolver): the server whose ACL lets the key update the zones."""
    port: int = Field(53, ge=1, le=65535)
    key_name: str | None = None
    """The TSIG key's name, as the server's config names it (e.g. `mailstack.` in knot.conf/named.conf)."""
    key_algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512"] = "hmac-sha256"
    key_secret: SecretStr | None = None
    """Base64 secret (`tsig-keygen`, `keymgr -t`); set with --secret."""


class Dns(_Model):
    provider: DnsProvider = "manual"
    ttl: int = DEFAULT_TTL
    rfc2136: Rfc2136 | None = None


class DomainDns(_Model):
    provider: DnsProvider | None = None
    """Overrides `dns.provider` for this domain's zone: one stack can publish at two DNS hosts."""


class BackupMx(_Model):
    host: str
    priority: int = Field(20, ge=0, le=65535)
    spf_include: str | None = None
    """The backup provider's SPF include, added to this domain's SPF record."""


class Mx(_Model):
    priority: int = Field(DEFAULT_MX_PRIORITY, ge=0, le=65535)


class Spf(_Model):
    policy: SpfPolicy = DEFAULT_SPF_POLICY
    include: tuple[str, ...] = ()
    ip4: tuple[ipaddress.IPv4Network, ...] = ()
    ip6: tuple[ipaddress.IPv6Network, ...] = ()


class Dkim(_Model):
    selector: str = DEFAULT_DKIM_SELECTOR
    bits: Literal[1024, 2048, 3072, 4096] = DEFAULT_DKIM_BITS
    retired: tuple[str, ...] = ()
    """Selectors no longer signing but still published until removed (key rotation)."""


class Dmarc(_Model):
    policy: DmarcPolicy = DEFAULT_DMARC_POLICY
    subdomain_policy: DmarcPolicy | None = None
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    adkim: Alignment | None = None
    aspf: Alignment | None = None
    fo: str | None = None
    ri: int | None = Field(None, ge=1)
    """Removed by RFC 9989 (receivers ignore it); accepted with a warning because the seed how-to uses it."""
    np: DmarcPolicy | None = None
    """RFC 9989 §4.7: policy for non-existent subdomains."""
    t: Literal["y", "n"] | None = None
    """RFC 9989 §4.7: test mode (`y`: receivers apply one policy level below `p`)."""
    pct: int | None = None
    """Removed by RFC 9989; refused with a pointer to `t` (config/delivery_checks.py)."""
    rf: str | None = None
    """Removed by RFC 9989; refused (config/delivery_checks.py)."""


class TlsRpt(_Model):
    rua: tuple[str, ...] = ()


MtaStsMode = Literal["none", "testing", "enforce"]
DEFAULT_MTA_STS_MAX_AGE = 604800
"""One week: RFC 8461 §3.2 suggests weeks for a policy in `enforce` mode."""
MTA_STS_MAX_AGE_LIMIT = 31557600
"""RFC 8461 §3.2: max_age is at most 31557600 seconds (about one year)."""


class MtaSts(_Model):
    mode: MtaStsMode | None = None
    """Default: `testing` where mailstack hosts the policy (Cloudflare DNS), else the policy is not published."""
    max_age: int = Field(DEFAULT_MTA_STS_MAX_AGE, ge=0, le=MTA_STS_MAX_AGE_LIMIT)


class ExtraRecord(_Model):
    name: str = "@"
    """Relative to the domain (`@` = apex, `www`, `_acme`), or a full name ending in the domain."""
    type: Literal["A", "AAAA", "CAA", "CNAME", "MX", "SRV", "TXT"]
    content: str
    priority: int | None = Field(None, ge=0, le=65535)
    ttl: int | None = None
    purpose: str = "extra record from config"


class Domain(_Model):
    zone: str | None = None
    zone_id: str | None = None
    dns: DomainDns = DomainDns()
    mx: Mx = Mx()
    backup_mx: tuple[BackupMx, ...] = ()
    spf: Spf = Spf()
    dkim: Dkim = Dkim()
    dmarc: Dmarc = Dmarc()
    tlsrpt: TlsRpt | None = None
    mta_sts: MtaSts | None = None
    records: tuple[ExtraRecord, ...] = ()


class Account(_Model):
    password: SecretStr | None = None
    """Omitted: a password is generated (pulumi-random) and exported as a secret output."""
    quota: str | None = None
    migrate_from: MigrateFrom | None = None
    """Old IMAP server to import this mailbox from (config/migration.py)."""


class Relay(_Model):
    preset: Literal["brevo", "mailgun", "mailgun-eu", "sendgrid", "ses", "postmark", "smtp2go", "custom"] = "custom"
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    spf_include: str | None = None
    region: str | None = None


class Updates(_Model):
    watchtower: bool = False
    image: str = DEFAULT_WATCHTOWER_IMAGE


class Inbound(_Model):
    spf_fail: Literal["reject", "junk"] = "reject"
    """`reject`: mail failing SPF is refused at SMTP time; `junk`: delivered to the recipient's Junk folder."""


class Ddns(_Model):
    """A home address that changes: ddclient on the host keeps the hostname's address current."""

    enabled: bool = False
    provider: Literal["dns", "dynu", "duckdns", "noip"] = "dns"
    """`dns`: the hostname's own zone, through its backend (cloudflare or rfc2136); else a DDNS service."""
    username: str | None = None
    """dynu, noip: the account (or host) login."""
    password: SecretStr | None = None
    """dynu, noip: the password (dynu: or its IP-update password); duckdns: the token. Secret."""
    interval: int = Field(300, ge=60, le=86400)
    """Seconds between ddclient's address checks."""
    ip_source: str = "ipify-ipv4"
    """Where ddclient learns the public IPv4: a ddclient web source name or an http(s) URL answering with it."""


class RawSettings(_Model):
    """Exactly what the stack config says, shape-checked; semantic checks run afterwards."""

    hostname: str
    public_ipv4: ipaddress.IPv4Address | None = Field(None, alias="publicIPv4")
    public_ipv6: ipaddress.IPv6Address | None = Field(None, alias="publicIPv6")
    target: Target = Target()
    image: str = DEFAULT_IMAGE
    profile: Literal["minimal", "standard"] = "minimal"
    memory_limit_mb: int | None = Field(None, alias="memoryLimitMB", ge=256)
    ports: Ports = Ports()
    env: dict[str, Annotated[str, BeforeValidator(_env_value)]] = {}
    tls: Tls = Tls()
    dns: Dns = Dns()
    domains: dict[str, Domain]
    accounts: dict[str, Account]
    aliases: dict[str, Annotated[tuple[str, ...], BeforeValidator(_one_or_many)]] = {}
    relay: Relay | None = None
    updates: Updates = Updates()
    inbound: Inbound = Inbound()
    backup: Backup | None = None
    ddns: Ddns = Ddns()
    autoconfig: bool | None = None
    """Client autoconfiguration documents; default true where mailstack hosts them (Cloudflare DNS)."""
    dane: bool = False
    """TLSA for the SMTP server's key (RFC 7672); needs DNSSEC, which mailstack manages at Cloudflare."""
    dane_rollover: int = Field(0, ge=0)
    """The generation of the SMTP key in use (config/dane.py); +1 rolls over to the published next key."""


TOP_LEVEL_KEYS: tuple[str, ...] = tuple((f.alias or name) for name, f in RawSettings.model_fields.items())
