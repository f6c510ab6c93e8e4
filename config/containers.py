"""The containers mailstack runs, as pure specs: the Pulumi components and `render`'s compose.yaml both use them.

A `ContainerSpec` holds every value of one container (name, image reference, mounts, restart,
healthcheck, ...). components/docker_spec.py turns it into a `docker.Container`; mailstack/compose.py
turns the same spec into a Compose service. Neither decides anything about the container itself.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from mailstack.config import dane
from mailstack.config.dms_env import (
    LETSENCRYPT_CONTAINER_DIR,
    SELF_SIGNED_CERT,
    SELF_SIGNED_KEY,
    capabilities,
    dms_env,
    published_ports,
)
from mailstack.config.dms_files import (
    CONTAINER_CONFIG_DIR,
    POLICYD_SPF_CONF,
    POLICYD_SPF_CONTAINER_PATH,
    inbound_files,
    unwatched_fingerprint,
)
from mailstack.config.model import DEFAULT_CERTBOT_IMAGES
from mailstack.config.settings import MailSettings

LabelValue_co = TypeVar("LabelValue_co", covariant=True)
"""A label value: `str`, or (in the component) a Pulumi Output for the signer fingerprint."""
T = TypeVar("T")

# Sub-directories of `target.dataDir` on the host. `render` writes its files at the same relative
# paths, so a render directory used as the data directory is laid out exactly like the host.
CONFIG_SUBDIR = "config"
"""DMS's config volume (mounted at /tmp/docker-mailserver)."""
LETSENCRYPT_SUBDIR = "letsencrypt"
"""certbot's /etc/letsencrypt (tls.mode letsencrypt)."""
CERTBOT_SECRETS_SUBDIR = "certbot"
"""certbot's Cloudflare credentials (DNS-01 challenge)."""
CLOUDFLARE_INI = "cloudflare.ini"

# DMS v15.1 compose.yaml healthcheck: Postfix listens on :25 once DMS finished its setup. DMS's
# compose.yaml leaves interval and start period to Docker (30 s, 0 s) and says `retries: 0` (Docker
# then counts 3); they are all explicit here (Healthcheck).
HEALTHCHECK = "ss --listening --ipv4 --tcp | grep --silent ':smtp' || exit 1"
MAIL_HEALTH_INTERVAL = 30
MAIL_HEALTH_START_PERIOD = 30
"""The start period DMS's own Dockerfile declares after v15.1.0 (`HEALTHCHECK --start-period=30s`)."""
SIGNER_LABEL = "mailstack.signer-config-sha256"
INBOUND_LABEL = "mailstack.inbound-config-sha256"
"""Fingerprint of the inbound.spfFail files DMS reads only at start (config.dms_files.unwatched_fingerprint)."""
WATCHTOWER_LABEL = "com.centurylinklabs.watchtower.enable"
VOLUMES = (("mail-data", "/var/mail"), ("mail-state", "/var/mail-state"), ("mail-logs", "/var/log/mail"))
"""(role, container path) of DMS's named volumes; the role names the volume and its Pulumi resource."""
MAIL_STOP_TIMEOUT = 60
"""Seconds: compose `stop_grace_period: 1m` of DMS: Postfix/Dovecot flush queues and indexes."""
MEMORY_SWAP_UNLIMITED = -1
"""memory_swap sent with every memory limit. Left out, Docker stores twice the memory, or -1 where
the kernel has no swap accounting (moby daemon/create.go verifies, :80, before it adapts, :106;
daemon_unix.go:439-442 then :343-345 in v20.10.24, the same in v28.5.2), and the provider reads that
back into `memory_swap`, which its schema does not compute: an update on every run. -1 is stored as
sent on every host (checked on the real engine in tests/test_docker_engine.py), and leaves swap to
the host, as DMS's docs advise for small machines (swap for the container)."""
DOCKER_STOP_TIMEOUT = 10
"""Seconds Docker waits after SIGTERM for a container without its own stop timeout (moby
container/container_unix.go:28, DefaultStopTimeout, in v20.10.24)."""
NETWORK_MODE = "bridge"
"""Explicit: the provider shows a diff on every run otherwise (pulumi-docker#1272)."""

CLOUDFLARE_CREDENTIALS_DIR = "/run/mailstack"
"""Where the certbot container sees `<dataDir>/certbot`. certbot stores this path in
`renewal/<name>.conf`, so it must stay the same for every later `certbot renew`."""
CLOUDFLARE_CREDENTIALS = f"{CLOUDFLARE_CREDENTIALS_DIR}/{CLOUDFLARE_INI}"
CERTBOT_WAIT_SECONDS = 600
"""First issuance: ACME account, DNS propagation (or HTTP validation) and issuance."""
SELF_SIGNED_HOURS = 365 * 24
SELF_SIGNED_EARLY_RENEWAL_HOURS = 30 * 24


@dataclass(frozen=True)
class Mount:
    container_path: str
    host_path: str | None = None
    """Bind mount of this host path; exactly one of `host_path` and `volume_name` is set."""
    volume_name: str | None = None
    """Named Docker volume."""
    read_only: bool = False


@dataclass(frozen=True)
class PortBinding:
    internal: int
    external: int
    ip: str | None
    """Host address to bind; None for every interface."""
    protocol: Literal["tcp", "udp"] = "tcp"


@dataclass(frozen=True)
class Healthcheck:
    """Every field is set: Docker fills a zero field from the image's HEALTHCHECK (moby daemon/commit.go
    `merge`, v20.10.24 lines 77-96), so a zero would make the container's check depend on the image
    (DMS's Dockerfile gains `HEALTHCHECK --start-period=30s` after v15.1.0) and the provider would
    read back a value that was never sent: a diff, and a replacement, on every `pulumi up`."""

    tests: tuple[str, ...]
    """Docker's test form, e.g. ("CMD-SHELL", "<shell>")."""
    interval: int
    """Seconds between checks (Docker's default is 30)."""
    timeout: int
    """Seconds one check may take."""
    start_period: int
    """Seconds after start during which failures do not count."""
    retries: int
    """Consecutive failures that make the container unhealthy (Docker's default is 3)."""
    start_interval: int = 0
    """Seconds between checks during `start_period`. 0: engines before API 1.44 (Docker 25) neither
    store nor report the field, so they read it back as "0s" whatever was sent; on newer engines 0
    means Docker's default (5 s), and neither DMS's nor certbot's image sets `--start-interval`."""


def go_duration(seconds: int) -> str:
    """`seconds` as Go's `time.Duration.String()` writes it: "0s", "30s", "1m30s", "10m0s", "1h0m0s".

    The Docker provider reads healthcheck durations back in exactly this form
    (kreuzwerker/terraform-provider-docker internal/provider/resource_docker_container_funcs.go:964-967
    in v4.5.0, the version pulumi-docker 5.2.0 bridges) and compares them as strings, with no diff
    suppression: "600s" sent and "10m0s" read back is a change on every run. Compose parses the same
    form (Go's `time.ParseDuration`).
    """
    if seconds < 0:
        raise ValueError(f"a healthcheck duration cannot be negative: {seconds}")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass(frozen=True)
class ContainerSpec(Generic[LabelValue_co]):
    """One container, independent of how it is created (Pulumi or `docker compose`)."""

    name: str
    """Container name (fixed: `docker exec -it <name> ...`)."""
    image: str
    """Image reference; the component pulls it as a `RemoteImage` and runs its id."""
    mounts: tuple[Mount, ...]
    restart: Literal["always", "unless-stopped"]
    network_mode: str = NETWORK_MODE
    hostname: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortBinding, ...] | None = None
    """None: no ports input at all. `()` is kept apart from None because the certbot container has
    always registered an explicit empty list, and a registered input is compared with Pulumi state."""
    capabilities: tuple[str, ...] = ()
    labels: tuple[tuple[str, LabelValue_co], ...] = ()
    stop_timeout: int | None = None
    """Seconds between SIGTERM and SIGKILL on stop."""
    memory_mb: int | None = None
    """Memory limit in MiB. Swap is left unlimited (`MEMORY_SWAP_UNLIMITED`)."""
    healthcheck: Healthcheck | None = None
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    wait_healthy_seconds: int | None = None
    """Containers that depend on this one start only once it is healthy, waiting at most this long."""


@dataclass(frozen=True)
class SelfSignedCertSpec:
    """The stack's self-signed certificate (tls.mode self-signed), as pulumi-tls is asked for it."""

    common_name: str
    dns_names: tuple[str, ...]
    validity_hours: int
    early_renewal_hours: int
    """An `up` in the last 30 days replaces the certificate; the new files reload DMS."""
    allowed_uses: tuple[str, ...]
    """pulumi-tls names (`key_encipherment`, `digital_signature`, `server_auth`)."""
    key_file: str
    """Relative to the config directory, where DMS's `SSL_KEY_PATH` points."""
    cert_file: str
    key_algorithm: Literal["RSA"] = "RSA"
    rsa_bits: int = 2048


def data_path(settings: MailSettings, relative: str) -> str:
    """Absolute host path of `relative` inside `target.dataDir`."""
    return f"{settings.target.data_dir}/{relative}"


def config_dir(settings: MailSettings) -> str:
    """Host directory of DMS's config volume."""
    return data_path(settings, CONFIG_SUBDIR)


def volume_name(settings: MailSettings, role: str) -> str:
    """Docker volume name of one of `VOLUMES`: per stack, so two stacks on one host never share mail."""
    return f"mailstack-{settings.stack}-{role}"


def tls_mounts(settings: MailSettings) -> tuple[Mount, ...]:
    """What DMS mounts for its certificate (self-signed files live in the config volume: nothing extra)."""
    mode = settings.tls.mode
    if mode == "existing":
        assert settings.tls.path is not None  # config.checks.tls requires it
        host_path = settings.tls.path
    elif mode == "letsencrypt":
        host_path = data_path(settings, LETSENCRYPT_SUBDIR)
    else:
        return ()
    # The whole tree, read-only: live/ holds relative symlinks into archive/ (DMS docs
    # config/security/ssl.md "Let's Encrypt"; target/scripts/helpers/ssl.sh reads live/<name>/).
    return (Mount(LETSENCRYPT_CONTAINER_DIR, host_path=host_path, read_only=True),)


def mail_container(settings: MailSettings, *, signer_fingerprint: T) -> ContainerSpec[T | str]:
    """The DMS container.

    Args:
        settings: the validated settings.
        signer_fingerprint: value of the `SIGNER_LABEL` label (config.dms_files.signer_fingerprint):
            a string, or in the Pulumi component the Output that resolves to it.
    """
    labels: list[tuple[str, T | str]] = [(SIGNER_LABEL, signer_fingerprint)]
    inbound = inbound_files(settings.profile, settings.spf_fail)
    inbound_fingerprint = unwatched_fingerprint(inbound)
    if inbound_fingerprint is not None:
        labels.append((INBOUND_LABEL, inbound_fingerprint))
    if settings.watchtower:
        labels.append((WATCHTOWER_LABEL, "true"))
    # DMS reads policyd-spf's settings from the image path only; its docs bind-mount a file from
    # the config dir there (best-practices/dkim_dmarc_spf.md). Read-only, and replaced with the
    # container whenever it changes (the label above), so the single-file mount never goes stale.
    inbound_mounts = (
        (Mount(POLICYD_SPF_CONTAINER_PATH, host_path=f"{config_dir(settings)}/{POLICYD_SPF_CONF}", read_only=True),)
        if POLICYD_SPF_CONF in inbound
        else ()
    )
    return ContainerSpec(
        name=f"mailstack-{settings.stack}-mailserver",
        image=settings.image,
        hostname=settings.hostname,
        env=dms_env(settings),
        ports=tuple(PortBinding(p.port, p.port, settings.ports.bind_address) for p in published_ports(settings.ports)),
        mounts=(
            *(Mount(path, volume_name=volume_name(settings, role)) for role, path in VOLUMES),
            Mount(CONTAINER_CONFIG_DIR, host_path=config_dir(settings)),
            Mount("/etc/localtime", host_path="/etc/localtime", read_only=True),
            *tls_mounts(settings),
            *inbound_mounts,
        ),
        capabilities=capabilities(settings),
        labels=tuple(labels),
        restart="always",
        stop_timeout=MAIL_STOP_TIMEOUT,
        # Without the host's memory cgroup Docker discards the limit (Memory 0, moby
        # daemon/daemon_unix.go:434-437 in v20.10.24, :423-426 in v28.5.2) and every refresh would
        # show it as a change: target.memoryCgroup false sends none (HostTarget warns).
        memory_mb=settings.memory_mb if settings.target.memory_cgroup else None,
        healthcheck=Healthcheck(
            ("CMD-SHELL", HEALTHCHECK),
            interval=MAIL_HEALTH_INTERVAL,
            timeout=3,
            start_period=MAIL_HEALTH_START_PERIOD,
            retries=3,
        ),
    )


def certbot_challenge(settings: MailSettings) -> Literal["dns-cloudflare", "http"] | None:
    """The ACME challenge certbot answers; None when there is no certbot (tls.mode is not letsencrypt)."""
    if settings.tls.mode != "letsencrypt":
        return None
    return settings.tls.challenge or "http"


def cloudflare_credentials_file(settings: MailSettings) -> str | None:
    """certbot's `cloudflare.ini`, relative to `target.dataDir`; None without the DNS-01 challenge."""
    if certbot_challenge(settings) != "dns-cloudflare":
        return None
    return f"{CERTBOT_SECRETS_SUBDIR}/{CLOUDFLARE_INI}"


def certbot_credentials_text(token: str) -> str:
    """`cloudflare.ini` for certbot-dns-cloudflare: an API token (Zone:DNS:Edit), no global key."""
    return f"dns_cloudflare_api_token = {token}\n"


def certbot_script(settings: MailSettings) -> str:
    """The certbot container's `/bin/sh -c` script: issue once, then renew every 12 hours.

    `certonly -n` with the same `--cert-name` is idempotent (an existing, not-yet-due lineage is
    kept), so a container restart never requests a duplicate certificate (Let's Encrypt allows 5
    per week for the same names). A failed first issuance waits an hour before the container exits
    and Docker restarts it: 5 failed validations per hour are allowed, and a tight retry loop would
    lock the name out. A lineage issued by the staging CA is never "due", so leaving staging forces
    one renewal (certbot main.py `_handle_identical_cert_request`; Let's Encrypt rate-limits docs).
    """
    t = settings.tls
    host = settings.hostname
    args = ["certonly", "-n", "--cert-name", host, "-d", host, "--agree-tos"]
    if settings.dane:
        # DANE pins the key (config/dane.py): certbot must keep it across renewals.
        args += ["--reuse-key", "--key-type", "ecdsa", "--elliptic-curve", "secp256r1"]
    args += ["--email", t.email] if t.email else ["--register-unsafely-without-email"]
    if t.staging:
        args.append("--staging")
    if t.challenge == "dns-cloudflare":
        args += ["--dns-cloudflare", "--dns-cloudflare-credentials", CLOUDFLARE_CREDENTIALS]
    else:
        args.append("--standalone")
    certonly = "certbot " + " ".join(shlex.quote(a) for a in args)
    renewal_conf = shlex.quote(f"{LETSENCRYPT_CONTAINER_DIR}/renewal/{host}.conf")
    leave_staging = (
        "" if t.staging else f'extra=""; if grep -qs acme-staging {renewal_conf}; then extra="--force-renewal"; fi; '
    )
    # With DANE, the lineage is moved onto mailstack's key after issuance and at each 12-hourly
    # round, so a rollover (a new key file from `pulumi up`) takes effect within 12 hours.
    swap = f"{dane.key_swap_script(host, LETSENCRYPT_CONTAINER_DIR)}; " if settings.dane else ""
    return (
        leave_staging
        + f"{certonly}{'' if t.staging else ' $extra'} || "
        + '{ echo "mailstack: certbot certonly failed; next attempt in 1 h '
        + "(Let's Encrypt allows 5 failed validations per hour)\" >&2; sleep 3600; exit 1; }; "
        + f"trap exit TERM; while :; do {swap}certbot renew; sleep 12h & wait $!; done"
    )


def certbot_container(settings: MailSettings) -> ContainerSpec[str] | None:
    """The certbot container keeping `<dataDir>/letsencrypt` (tls.mode letsencrypt), else None.

    DMS refuses to start without `live/<hostname>/fullchain.pem`, so the healthcheck is that file
    and DMS waits for it (`wait_healthy_seconds`).
    """
    challenge = certbot_challenge(settings)
    if challenge is None:
        return None
    mounts = [Mount(LETSENCRYPT_CONTAINER_DIR, host_path=data_path(settings, LETSENCRYPT_SUBDIR))]
    ports: tuple[PortBinding, ...] = ()
    if challenge == "dns-cloudflare":
        # The directory, not the file: the file is replaced by rename, and a single-file bind
        # mount would keep showing the old inode (DMS docs config/security/ssl.md, Caddy section).
        mounts.append(
            Mount(CLOUDFLARE_CREDENTIALS_DIR, host_path=data_path(settings, CERTBOT_SECRETS_SUBDIR), read_only=True)
        )
    else:
        ports = (PortBinding(80, 80, settings.ports.bind_address),)
    return ContainerSpec(
        name=f"mailstack-{settings.stack}-certbot",
        image=DEFAULT_CERTBOT_IMAGES[challenge],
        entrypoint=("/bin/sh", "-c"),
        command=(certbot_script(settings),),
        mounts=tuple(mounts),
        ports=ports,
        restart="unless-stopped",
        healthcheck=Healthcheck(
            ("CMD-SHELL", f"test -f {LETSENCRYPT_CONTAINER_DIR}/live/{settings.hostname}/fullchain.pem"),
            interval=10,
            timeout=5,
            start_period=CERTBOT_WAIT_SECONDS,
            retries=3,
        ),
        wait_healthy_seconds=CERTBOT_WAIT_SECONDS,
    )


def watchtower_container(settings: MailSettings) -> ContainerSpec[str] | None:
    """Watchtower (updates.watchtower), else None."""
    if not settings.watchtower:
        return None
    return ContainerSpec(
        name=f"mailstack-{settings.stack}-watchtower",
        image=settings.watchtower_image,
        # Daily, removing replaced images, and only containers labelled enable=true (the DMS
        # container): nothing else on the host is touched (Watchtower docs, arguments: --label-enable).
        command=("--interval", "86400", "--cleanup", "--label-enable"),
        mounts=(Mount("/var/run/docker.sock", host_path="/var/run/docker.sock"),),
        restart="unless-stopped",
    )


def self_signed_cert_spec(settings: MailSettings) -> SelfSignedCertSpec | None:
    """The self-signed certificate for the hostname (tls.mode self-signed), else None.

    Written to `<dataDir>/config/ssl/` (DMS `SSL_TYPE=manual`; change detection reloads on renewal).
    """
    if settings.tls.mode != "self-signed":
        return None
    return SelfSignedCertSpec(
        common_name=settings.hostname,
        dns_names=(settings.hostname,),
        validity_hours=SELF_SIGNED_HOURS,
        early_renewal_hours=SELF_SIGNED_EARLY_RENEWAL_HOURS,
        allowed_uses=("key_encipherment", "digital_signature", "server_auth"),
        key_file=SELF_SIGNED_KEY,
        cert_file=SELF_SIGNED_CERT,
    )
