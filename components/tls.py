"""The mail server's TLS certificate: self-signed by the stack, from Let's Encrypt via certbot, or existing."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components import docker_spec
from components.host_target import HostTarget
from mailstack.config import containers, dane
from mailstack.config.settings import MailSettings


@dataclass(frozen=True)
class TlsArgs:
    settings: MailSettings
    host: HostTarget
    dane_key: pulumi.Output[str] | None = None
    """With `dane`: the key the certificate must carry (config/dane.py), instead of one of its own."""


class Tls(pulumi.ComponentResource):
    """What DMS needs for its certificate, by `settings.tls.mode`.

    - `self-signed`: a pulumi-tls key and certificate for the hostname, written to
      `<dataDir>/config/ssl/` (DMS `SSL_TYPE=manual`; change detection reloads on renewal).
    - `letsencrypt`: a certbot container (DNS-01 through Cloudflare, or HTTP-01 on port 80) keeping
      `<dataDir>/letsencrypt`; it is created with `wait`, so DMS, which depends on it, starts only
      once `live/<hostname>/fullchain.pem` exists (DMS refuses to start without it).
    - `existing`: the host directory `tls.path`, laid out like /etc/letsencrypt.

    The certificate mounts of the DMS container are part of its spec (`containers.tls_mounts`).
    """

    ready: list[pulumi.Resource]
    """Resources DMS must wait for (certificate files, the certbot container)."""

    def __init__(self, name: str, args: TlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:Tls", name, None, opts)
        settings, host = args.settings, args.host
        child = pulumi.ResourceOptions(parent=self)
        self.ready = []
        cert_spec = containers.self_signed_cert_spec(settings)
        certbot = containers.certbot_container(settings)
        if cert_spec is not None:
            key_pem = args.dane_key
            if key_pem is None:
                key_pem = tls.PrivateKey(
                    f"{name}-key", algorithm=cert_spec.key_algorithm, rsa_bits=cert_spec.rsa_bits, opts=child
                ).private_key_pem
            cert = tls.SelfSignedCert(
                f"{name}-cert",
                private_key_pem=key_pem,
                subject=tls.SelfSignedCertSubjectArgs(common_name=cert_spec.common_name),
                dns_names=list(cert_spec.dns_names),
                validity_period_hours=cert_spec.validity_hours,
                early_renewal_hours=cert_spec.early_renewal_hours,
                allowed_uses=list(cert_spec.allowed_uses),
                opts=child,
            )
            config_dir = containers.config_dir(settings)
            self.ready = [
                host.write_file(f"{name}-key-file", f"{config_dir}/{cert_spec.key_file}", key_pem, child),
                host.write_file(f"{name}-cert-file", f"{config_dir}/{cert_spec.cert_file}", cert.cert_pem, child),
            ]
        elif certbot is not None:
            if args.dane_key is not None:
                # The certbot script swaps this key into the lineage (config/dane.py key_swap_script).
                path = containers.data_path(settings, f"{containers.LETSENCRYPT_SUBDIR}/{dane.KEY_DIR}/{dane.KEY_FILE}")
                self.ready.append(host.write_file(f"{name}-dane-key", path, args.dane_key, child))
            self.ready.append(self._certbot(name, settings, certbot, host, child, before=self.ready))
        self.register_outputs({})

    def _certbot(
        self,
        name: str,
        settings: MailSettings,
        spec: containers.ContainerSpec[str],
        host: HostTarget,
        child: pulumi.ResourceOptions,
        *,
        before: list[pulumi.Resource],
    ) -> pulumi.Resource:
        docker_opts = pulumi.ResourceOptions(parent=self, provider=host.docker_provider, depends_on=host.ready)
        image = host.in_line(lambda o: docker_spec.image(f"{name}-certbot-image", spec, o), docker_opts)
        files: list[pulumi.Resource] = list(before)
        credentials_file = containers.cloudflare_credentials_file(settings)
        if credentials_file is not None:
            token = pulumi.Config("cloudflare").require_secret("apiToken")
            files.append(
                host.write_file(
                    f"{name}-cloudflare-credentials",
                    containers.data_path(settings, credentials_file),
                    token.apply(containers.certbot_credentials_text),
                    child,
                )
            )
        return host.in_line(
            lambda o: docker_spec.container(f"{name}-certbot", spec, image_id=image.image_id, opts=o),
            pulumi.ResourceOptions.merge(
                docker_opts,
                pulumi.ResourceOptions(
                    depends_on=files,
                    # Fixed name and port 80: the old container must go before the new one starts
                    # (pulumi-docker sets DeleteBeforeReplace for containers too, provider/resources.go:114
                    # in v5.1.0). Update never applies a healthcheck change: replace_on_changes.
                    delete_before_replace=True,
                    replace_on_changes=["healthcheck"],
                ),
            ),
        )
