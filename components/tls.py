"""The mail server's TLS certificate: self-signed by the stack, from Let's Encrypt via certbot, or existing."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_tls as tls

from components.host_target import HostTarget
from config.dms_env import LETSENCRYPT_CONTAINER_DIR, SELF_SIGNED_CERT, SELF_SIGNED_KEY
from config.model import DEFAULT_CERTBOT_IMAGES
from config.settings import MailSettings

CLOUDFLARE_CREDENTIALS_DIR = "/run/mailstack"
"""Where the certbot container sees `<dataDir>/certbot`. certbot stores this path in
`renewal/<name>.conf`, so it must stay the same for every later `certbot renew`."""
CLOUDFLARE_CREDENTIALS = f"{CLOUDFLARE_CREDENTIALS_DIR}/cloudflare.ini"
SELF_SIGNED_HOURS = 365 * 24
SELF_SIGNED_EARLY_RENEWAL_HOURS = 30 * 24
CERTBOT_WAIT_SECONDS = 600
"""First issuance: ACME account, DNS propagation (or HTTP validation) and issuance."""


def certbot_script(settings: MailSettings) -> str:
    """The certbot container's `/bin/sh -c` script: issue once, then renew every 12 hours.

    `certonly -n` with the same `--cert-name` is idempotent (an existing, not-yet-due lineage is
    kept), so a container restart never requests a duplicate certificate (Let's Encrypt allows 5
    per week for the same names). A failed first issuance waits an hour before the container exits
    and Docker restarts it: 5 failed validations per hour are allowed, and a tight retry loop would
    lock the name out. A lineage issued by the staging CA is never "due", so leaving staging forces
    one renewal (reference/tls-and-updates.md §1).
    """
    t = settings.tls
    host = settings.hostname
    args = ["certonly", "-n", "--cert-name", host, "-d", host, "--agree-tos"]
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
    return (
        leave_staging
        + f"{certonly}{'' if t.staging else ' $extra'} || "
        + '{ echo "mailstack: certbot certonly failed; next attempt in 1 h '
        + "(Let's Encrypt allows 5 failed validations per hour)\" >&2; sleep 3600; exit 1; }; "
        + "trap exit TERM; while :; do certbot renew; sleep 12h & wait $!; done"
    )


@dataclass(frozen=True)
class TlsArgs:
    settings: MailSettings
    host: HostTarget


class Tls(pulumi.ComponentResource):
    """What DMS needs for its certificate, by `settings.tls.mode`.

    - `self-signed`: a pulumi-tls key and certificate for the hostname, written to
      `<dataDir>/config/ssl/` (DMS `SSL_TYPE=manual`; change detection reloads on renewal).
    - `letsencrypt`: a certbot container (DNS-01 through Cloudflare, or HTTP-01 on port 80) keeping
      `<dataDir>/letsencrypt`; it is created with `wait`, so DMS, which depends on it, starts only
      once `live/<hostname>/fullchain.pem` exists (DMS refuses to start without it).
    - `existing`: the host directory `tls.path`, laid out like /etc/letsencrypt.
    """

    volumes: list[docker.ContainerVolumeArgs]
    """Mounts the DMS container needs for its certificate."""
    ready: list[pulumi.Resource]
    """Resources DMS must wait for (certificate files, the certbot container)."""

    def __init__(self, name: str, args: TlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:Tls", name, None, opts)
        settings, host = args.settings, args.host
        child = pulumi.ResourceOptions(parent=self)
        self.volumes = []
        self.ready = []
        mode = settings.tls.mode
        if mode == "self-signed":
            key = tls.PrivateKey(f"{name}-key", algorithm="RSA", rsa_bits=2048, opts=child)
            cert = tls.SelfSignedCert(
                f"{name}-cert",
                private_key_pem=key.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(common_name=settings.hostname),
                dns_names=[settings.hostname],
                validity_period_hours=SELF_SIGNED_HOURS,
                # An `up` in the last 30 days replaces the certificate; the new files reload DMS.
                early_renewal_hours=SELF_SIGNED_EARLY_RENEWAL_HOURS,
                allowed_uses=["key_encipherment", "digital_signature", "server_auth"],
                opts=child,
            )
            config_dir = f"{host.data_dir}/config"
            self.ready = [
                host.write_file(f"{name}-key-file", f"{config_dir}/{SELF_SIGNED_KEY}", key.private_key_pem, child),
                host.write_file(f"{name}-cert-file", f"{config_dir}/{SELF_SIGNED_CERT}", cert.cert_pem, child),
            ]
        elif mode == "existing":
            assert settings.tls.path is not None  # config.checks.tls requires it
            self.volumes = [_letsencrypt_volume(settings.tls.path)]
        else:
            self._certbot(name, settings, host, child)
        self.register_outputs({})

    def _certbot(self, name: str, settings: MailSettings, host: HostTarget, child: pulumi.ResourceOptions) -> None:
        challenge = settings.tls.challenge or "http"
        docker_opts = pulumi.ResourceOptions(parent=self, provider=host.docker_provider, depends_on=host.ready)
        image = docker.RemoteImage(
            f"{name}-certbot-image", name=DEFAULT_CERTBOT_IMAGES[challenge], keep_locally=True, opts=docker_opts
        )
        letsencrypt_dir = f"{host.data_dir}/letsencrypt"
        volumes = [docker.ContainerVolumeArgs(host_path=letsencrypt_dir, container_path=LETSENCRYPT_CONTAINER_DIR)]
        ports: list[docker.ContainerPortArgs] = []
        files: list[pulumi.Resource] = []
        if challenge == "dns-cloudflare":
            token = pulumi.Config("cloudflare").require_secret("apiToken")
            credentials = token.apply(lambda t: f"dns_cloudflare_api_token = {t}\n")
            secrets_dir = f"{host.data_dir}/certbot"
            files.append(
                host.write_file(f"{name}-cloudflare-credentials", f"{secrets_dir}/cloudflare.ini", credentials, child)
            )
            # The directory, not the file: the file is replaced by rename, and a single-file bind
            # mount would keep showing the old inode (reference/docker-mailserver.md §6, Caddy note).
            volumes.append(
                docker.ContainerVolumeArgs(
                    host_path=secrets_dir, container_path=CLOUDFLARE_CREDENTIALS_DIR, read_only=True
                )
            )
        else:
            ports.append(
                docker.ContainerPortArgs(internal=80, external=80, ip=settings.ports.bind_address, protocol="tcp")
            )
        certbot = docker.Container(
            f"{name}-certbot",
            name=f"mailstack-{settings.stack}-certbot",
            image=image.image_id,
            entrypoints=["/bin/sh", "-c"],
            command=[certbot_script(settings)],
            volumes=volumes,
            ports=ports,
            restart="unless-stopped",
            network_mode="bridge",  # explicit: the provider shows a diff on every run otherwise
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", f"test -f {LETSENCRYPT_CONTAINER_DIR}/live/{settings.hostname}/fullchain.pem"],
                interval="10s",
                timeout="5s",
                retries=3,
                start_period=f"{CERTBOT_WAIT_SECONDS}s",
            ),
            wait=True,
            wait_timeout=CERTBOT_WAIT_SECONDS,
            opts=pulumi.ResourceOptions.merge(
                docker_opts,
                pulumi.ResourceOptions(
                    depends_on=files,
                    # Fixed name and port 80: the old container must go before the new one starts.
                    delete_before_replace=True,
                    replace_on_changes=["healthcheck"],
                ),
            ),
        )
        self.volumes = [_letsencrypt_volume(letsencrypt_dir)]
        self.ready = [certbot]


def _letsencrypt_volume(host_path: str) -> docker.ContainerVolumeArgs:
    # The whole tree, read-only: live/ holds relative symlinks into archive/ (reference/tls-and-updates.md §4).
    return docker.ContainerVolumeArgs(host_path=host_path, container_path=LETSENCRYPT_CONTAINER_DIR, read_only=True)
