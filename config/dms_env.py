"""DMS container environment and published ports, from the settings (pure; no Pulumi).

The environment holds no secret: relay credentials go to `postfix-sasl-password.cf`, certificates
to files. Every key set here is in `config.checks.MANAGED_ENV_KEYS`, so a user's `mailstack:env`
can never silently fight it; a test keeps the two in step. The exception are the SRS keys
(`SRS_ENV_KEYS`), defaults derived from the aliases that a user may override.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailstack.config.model import Ports
from mailstack.config.settings import MailSettings, TlsSettings

SSL_CONTAINER_DIR = "/tmp/docker-mailserver/ssl"
"""Self-signed certificate and key, inside DMS's config volume: watched by change detection."""
SELF_SIGNED_CERT = "ssl/cert.pem"
SELF_SIGNED_KEY = "ssl/key.pem"
LETSENCRYPT_CONTAINER_DIR = "/etc/letsencrypt"

# Profiles (DMS docs config/environment.md; target/scripts/startup/variables-stack.sh). `minimal` is the light legacy
# stack that fits a 1 GB Pi; `standard` is DMS's Rspamd recipe (config/security/rspamd.md), where
# Rspamd does DKIM signing, DMARC and SPF itself, so the milters it replaces are off.
PROFILE_ENV: dict[str, dict[str, str]] = {
    "minimal": {
        "ENABLE_OPENDKIM": "1",
        "ENABLE_OPENDMARC": "1",
        "ENABLE_POLICYD_SPF": "1",
        "ENABLE_AMAVIS": "0",  # DMS default is 1; it only feeds SpamAssassin/ClamAV, both off
        "ENABLE_SPAMASSASSIN": "0",
        "ENABLE_CLAMAV": "0",  # ~1.2 GiB of signatures in RAM (ClamAV docs, Docker page)
        "ENABLE_RSPAMD": "0",
        "ENABLE_RSPAMD_REDIS": "0",
        "ENABLE_FAIL2BAN": "0",
    },
    "standard": {
        "ENABLE_RSPAMD": "1",
        "ENABLE_RSPAMD_REDIS": "1",
        "ENABLE_OPENDKIM": "0",
        "ENABLE_OPENDMARC": "0",
        "ENABLE_POLICYD_SPF": "0",
        "ENABLE_AMAVIS": "0",
        "ENABLE_SPAMASSASSIN": "0",
        "ENABLE_CLAMAV": "0",
        "ENABLE_FAIL2BAN": "1",  # needs NET_ADMIN: see `capabilities`
    },
}


@dataclass(frozen=True)
class PublishedPort:
    port: int
    """Same number inside and outside: mail clients and MTAs expect the well-known ports."""
    service: str


def tls_env(tls: TlsSettings) -> dict[str, str]:
    """SSL_* variables for the TLS mode (DMS helpers/ssl.sh)."""
    if tls.mode == "self-signed":
        # `manual`, not DMS's `self-signed` mode: that one wants a demoCA layout; `manual` takes any
        # PEM pair and change detection reloads Postfix/Dovecot when the files change.
        return {
            "SSL_TYPE": "manual",
            "SSL_CERT_PATH": f"/tmp/docker-mailserver/{SELF_SIGNED_CERT}",
            "SSL_KEY_PATH": f"/tmp/docker-mailserver/{SELF_SIGNED_KEY}",
        }
    # letsencrypt and existing: DMS finds live/<hostname>/ (or live/<parent domain>/ for a wildcard)
    # under /etc/letsencrypt itself; no SSL_DOMAIN needed.
    return {"SSL_TYPE": "letsencrypt"}


def dms_env(settings: MailSettings) -> tuple[tuple[str, str], ...]:
    """The container environment as sorted (name, value) pairs; user `env` entries included.

    `config.checks.env` already refused user keys that collide with the managed ones.
    """
    env: dict[str, str] = {
        "ACCOUNT_PROVISIONER": "FILE",
        # No trust for Docker networks: `network`/`connected-networks` can make an open relay (DMS #1405).
        "PERMIT_DOCKER": "none",
        "ENABLE_IMAP": "1",  # 993 is always published; 143 only when ports.imap
        "ENABLE_POP3": "1" if settings.ports.pop3 else "0",
        "ENABLE_QUOTAS": "1",
        **PROFILE_ENV[settings.profile],
        **tls_env(settings.tls),
    }
    if settings.relay is not None:
        # DEFAULT_RELAY_HOST, not the legacy RELAY_HOST/RELAY_PORT pair; the credentials live in
        # postfix-sasl-password.cf under this exact string (DMS target/scripts/helpers/relay.sh).
        env["DEFAULT_RELAY_HOST"] = settings.relay.relay_host
    # Derived defaults, not managed keys: a user's env may override them (config/delivery_checks.py
    # refuses only ENABLE_SRS=0 while aliases forward outside the stack).
    env.update(srs_env(settings))
    for key, value in settings.env:
        env[key] = value
    return tuple(sorted(env.items()))


SRS_ENV_KEYS = frozenset({"ENABLE_SRS", "SRS_DOMAINNAME", "SRS_EXCLUDE_DOMAINS"})


def external_forwards(settings: MailSettings) -> tuple[str, ...]:
    """Alias targets outside the stack's domains: mail to them leaves with its original sender."""
    local = set(settings.domain_names)
    return tuple(sorted({t for a in settings.aliases for t in a.targets if t.rpartition("@")[2] not in local}))


def srs_domain(settings: MailSettings) -> str:
    """The domain SRS addresses use: the mail domain holding the hostname, else the first mail domain.

    It must be a stack domain: its SPF (`mx`) authorises this server, so the forwarded message
    passes SPF at the destination, and its MX brings bounces to the SRS address back here, where
    postsrsd reverses them. DMS's own default (SRS_DOMAINNAME = the hostname minus its first
    label, startup/variables-stack.sh) is not a mail domain when the hostname lives elsewhere.
    """
    names = settings.domain_names
    holders = [d for d in names if settings.hostname.endswith("." + d)]
    return max(holders, key=len) if holders else names[0]


def srs_env(settings: MailSettings) -> dict[str, str]:
    """ENABLE_SRS when any alias forwards outside the stack (DMS: "SRS is needed if DMS acts as forwarder").

    A forwarded message keeps its sender's envelope address, whose SPF does not list this server:
    the destination sees an SPF fail. SRS (postsrsd, setup.d/postfix.sh `_setup_SRS`) rewrites the
    envelope sender to `SRS0=…@<SRS_DOMAINNAME>`. The stack's own domains are excluded: postsrsd
    would otherwise also rewrite mail the users send from a second domain, losing its SPF alignment.
    """
    if not external_forwards(settings):
        return {}
    domain = srs_domain(settings)
    env = {"ENABLE_SRS": "1", "SRS_DOMAINNAME": domain}
    others = [d for d in settings.domain_names if d != domain]
    if others:
        env["SRS_EXCLUDE_DOMAINS"] = ",".join(others)
    return env


def published_ports(ports: Ports) -> tuple[PublishedPort, ...]:
    """Ports to publish: 25/465/993 always, the plaintext-capable ones only when opted in."""
    out = [PublishedPort(25, "smtp"), PublishedPort(465, "submissions"), PublishedPort(993, "imaps")]
    if ports.submission:
        out.append(PublishedPort(587, "submission"))
    if ports.imap:
        out.append(PublishedPort(143, "imap"))
    if ports.pop3:
        out += [PublishedPort(110, "pop3"), PublishedPort(995, "pop3s")]
    return tuple(sorted(out, key=lambda p: p.port))


def capabilities(settings: MailSettings) -> tuple[str, ...]:
    """Linux capabilities to add: Fail2Ban bans with nftables, which needs NET_ADMIN (DMS fail2ban.md)."""
    return ("NET_ADMIN",) if PROFILE_ENV[settings.profile]["ENABLE_FAIL2BAN"] == "1" else ()
