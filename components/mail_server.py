"""docker-mailserver on the host: image, protected volumes, config files, the container."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components import docker_spec
from components.accounts import Accounts
from components.dkim_keys import DkimKeys, legacy_aliases
from components.host_target import HostTarget
from components.tls import Tls, TlsArgs
from mailstack.config import containers, dms_files
from mailstack.config.dms_files import DkimSigner
from mailstack.config.names import selector_domain_id
from mailstack.config.settings import MailSettings


@dataclass(frozen=True)
class MailServerArgs:
    settings: MailSettings
    host: HostTarget
    """Where the container runs and where its files are written."""
    dkim: DkimKeys
    """Signing keys; only `dkim.active` selectors are installed in the signer."""
    accounts: Accounts
    """The accounts file text (hashes) to install."""
    dane_key: pulumi.Output[str] | None = None
    """The SMTP key in use when `dane` is on (DaneKeys.in_use_private_key_pem): the certificate's key."""


def volume_options(parent: pulumi.Resource, provider: pulumi.ProviderResource) -> pulumi.ResourceOptions:
    """Mail volumes survive everything: no config change, replacement or `destroy` deletes mail.

    `protect` makes Pulumi refuse to delete or replace them; `retain_on_delete` makes a delete
    (after `pulumi state unprotect`) only forget them, leaving the Docker volume on the host.
    """
    return pulumi.ResourceOptions(parent=parent, provider=provider, protect=True, retain_on_delete=True)


class MailServer(pulumi.ComponentResource):
    """The DMS container and everything it needs on the host.

    Files in `<dataDir>/config` (mounted at /tmp/docker-mailserver) are written before the
    container exists, because DMS shuts down on first start without an account. Account, alias,
    quota, relay and certificate files are watched by DMS's change detector, so changing them never
    touches the container. The DKIM signer's files are not (OpenDKIM) or need DMS's start-up chown
    (Rspamd): a label carrying their fingerprint replaces the container when they change.
    """

    container_name: pulumi.Output[str]
    """Name of the DMS container (`docker exec -it <name> setup email list`)."""

    def __init__(self, name: str, args: MailServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:MailServer", name, None, opts)
        settings, host, dkim = args.settings, args.host, args.dkim
        child = pulumi.ResourceOptions(parent=self)
        config_dir = containers.config_dir(settings)

        # The protected volumes first, right behind the bootstrap in the host's line (HostTarget.in_line):
        # `pulumi destroy --exclude-protected` keeps a protected resource and everything it depends
        # on (getProtectedExcludes, pkg/cmd/pulumi/operations/destroy.go:589-607 in pulumi/pulumi), so
        # volumes registered after the file commands would keep every file, DKIM keys and relay
        # password included, and the certbot container, on the host.
        def volume(role: str) -> docker.Volume:
            return host.in_line(
                lambda o: docker.Volume(f"{name}-{role}", name=containers.volume_name(settings, role), opts=o),
                pulumi.ResourceOptions.merge(
                    volume_options(self, host.docker_provider), pulumi.ResourceOptions(depends_on=host.ready)
                ),
            )

        volumes = {role: volume(role) for role, _ in containers.VOLUMES}

        def write(role: str, relative_path: str, text: pulumi.Input[str]) -> pulumi.Resource:
            return host.write_file(f"{name}-{role}", f"{config_dir}/{relative_path}", text, child)

        files = [
            write("accounts", dms_files.ACCOUNTS, args.accounts.text),
            write("aliases", dms_files.VIRTUAL, dms_files.virtual_file(settings.aliases, settings.accounts)),
            write("quotas", dms_files.QUOTAS, dms_files.quotas_file(settings.accounts)),
        ]
        for path, text in dms_files.inbound_files(settings.profile, settings.spf_fail).items():
            files.append(write(_role(path), path, text))
        if settings.relay is not None:
            files.append(
                write("relay-credentials", dms_files.SASL_PASSWORDS, dms_files.sasl_password_file(settings.relay))
            )

        # DKIM: only active selectors are installed; retired ones stay in DNS (MailDns) only.
        signers = [DkimSigner(domain, selector, settings.domain(domain).dkim.bits) for domain, selector in dkim.active]
        signer_texts = dms_files.signer_files(settings.profile, signers)
        for path, text in signer_texts.items():
            files.append(write(_role(path), path, text))
        public_keys: dict[str, pulumi.Output[str]] = {}
        key_aliases = legacy_aliases(f"{name}-dkim", [(s.domain, s.selector) for s in signers])
        for signer in signers:
            path = dms_files.key_path(settings.profile, signer)
            files.append(
                host.write_file(
                    f"{name}-dkim-{selector_domain_id(signer.selector, signer.domain)}",
                    f"{config_dir}/{path}",
                    dkim.private_keys[(signer.domain, signer.selector)],
                    pulumi.ResourceOptions(parent=self, aliases=key_aliases.get((signer.domain, signer.selector))),
                )
            )
            public_keys[path] = dkim.public_keys[(signer.domain, signer.selector)]
        signer_fingerprint = pulumi.Output.all(**public_keys).apply(
            lambda pems: dms_files.signer_fingerprint(signer_texts, pems)
        )

        tls = Tls(f"{name}-tls", TlsArgs(settings=settings, host=host, dane_key=args.dane_key), opts=child)

        # Every Docker resource is registered through `host.in_line`: one operation on the host at a
        # time (HostTarget.in_line: Dropbear's limit on unauthenticated connections).
        docker_opts = pulumi.ResourceOptions(parent=self, provider=host.docker_provider, depends_on=host.ready)
        spec = containers.mail_container(settings, signer_fingerprint=signer_fingerprint)
        image = host.in_line(lambda o: docker_spec.image(f"{name}-image", spec, o), docker_opts)

        container = host.in_line(
            lambda o: docker_spec.container(
                f"{name}-container",
                spec,
                image_id=image.image_id,
                volumes={containers.volume_name(settings, role): volume.name for role, volume in volumes.items()},
                opts=o,
            ),
            pulumi.ResourceOptions.merge(
                docker_opts,
                pulumi.ResourceOptions(
                    depends_on=[*files, *tls.ready],
                    # Fixed name and host ports: the old container must be gone before the new one
                    # starts. pulumi-docker sets DeleteBeforeReplace for containers itself
                    # (provider/resources.go:114 in v5.1.0); saying so here keeps it explicit. A
                    # healthcheck change is not ForceNew, and Update stores it without applying it
                    # (kreuzwerker v4.5.0 resource_docker_container_funcs.go:1016-1019 lists no
                    # healthcheck), hence replace_on_changes.
                    delete_before_replace=True,
                    replace_on_changes=["healthcheck"],
                ),
            ),
        )
        # No Watchtower here: config.checks.watchtower_under_pulumi refuses `updates.watchtower` for
        # this program (a container created from an image ID is never updated by it, and one it
        # recreated would fall out of Pulumi's state). Image updates are `mailstack:image` + `pulumi up`.
        # Last: it must know every file written on the host (HostTarget.remove_files_on_move).
        host.remove_files_on_move(f"{name}-files-on-move", child)

        self.container_name = container.name
        self.register_outputs({"container_name": self.container_name})


def _role(path: str) -> str:
    """Resource-name role for a signer file: `opendkim/KeyTable` → `opendkim-keytable`."""
    return path.replace("/", "-").replace(".", "-").replace("override-d-", "").lower()
