"""Scheduled restic backups of the mail volumes and config directory (`mailstack:backup`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import docker_spec
from components.host_target import HostTarget
from mailstack.config import backup, containers
from mailstack.config.settings import MailSettings


@dataclass(frozen=True)
class BackupArgs:
    settings: MailSettings
    """Validated settings; `settings.backup` must be set."""
    host: HostTarget
    """Where the job's files are written and its container runs."""
    server: pulumi.Resource
    """The mail server component: its volumes must exist before the job mounts them."""


class Backup(pulumi.ComponentResource):
    """The job's files in `<dataDir>/backup` (0600, over stdin) and the container that runs it.

    The container (restic's image) runs config/scripts/mailstack-backup.sh's scheduler loop with
    the mail volumes and config directory mounted read-only; DMS keeps running. It has no env:
    restic reads the password and repository from files, the script loads backend keys from a
    file. A label carries the fingerprint of the non-secret files, so a new script or schedule
    replaces the container; new credentials are read at the next run without a replacement.
    """

    info: pulumi.Output[dict[str, object]]
    """The `backup` stack output (status file, commands); nothing secret."""

    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:Backup", name, None, opts)
        settings, host = args.settings, args.host
        assert settings.backup is not None
        child = pulumi.ResourceOptions(parent=self)
        job_dir = containers.data_path(settings, backup.JOB_SUBDIR)
        plain = backup.plain_file_texts(settings.backup, settings.stack)
        texts: dict[str, pulumi.Input[str]] = {**plain, **backup.secret_file_texts(settings.backup)}
        files = [
            host.write_file(
                f"{name}-{job_file.name.replace('_', '-').replace('.', '-')}",
                f"{job_dir}/{job_file.name}",
                texts[job_file.name],
                child,
            )
            for job_file in backup.job_files(settings.backup)
        ]
        spec = backup.container(settings, fingerprint=backup.job_fingerprint(plain))
        assert spec is not None
        docker_opts = pulumi.ResourceOptions(parent=self, provider=host.docker_provider, depends_on=host.ready)
        image = docker_spec.image(f"{name}-image", spec, docker_opts)
        docker_spec.container(
            f"{name}-container",
            spec,
            image_id=image.image_id,
            opts=pulumi.ResourceOptions.merge(
                docker_opts,
                pulumi.ResourceOptions(
                    depends_on=[*files, args.server],
                    # Fixed container name: the old one must be gone first. pulumi-docker sets
                    # DeleteBeforeReplace for containers itself (provider/resources.go:114 in
                    # v5.1.0); explicit here. A healthcheck change is stored, never applied, by the
                    # provider's Update (kreuzwerker v4.5.0 resource_docker_container_funcs.go:1016-1019).
                    delete_before_replace=True,
                    replace_on_changes=["healthcheck"],
                ),
            ),
        )
        self.info = pulumi.Output.from_input(backup.commands(settings))
        self.register_outputs({"info": self.info})
