"""ContainerSpec (config/containers.py) → pulumi_docker resources: the one translation every container goes through."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from mailstack.config.containers import (
    DOCKER_STOP_TIMEOUT,
    MEMORY_SWAP_UNLIMITED,
    ContainerSpec,
    Healthcheck,
    Mount,
    PortBinding,
    go_duration,
)


def image(resource_name: str, spec: ContainerSpec[object], opts: pulumi.ResourceOptions) -> docker.RemoteImage:
    """The spec's image, pulled once and kept when the container is replaced."""
    return docker.RemoteImage(resource_name, name=spec.image, keep_locally=True, opts=opts)


def container(
    resource_name: str,
    spec: ContainerSpec[pulumi.Input[str]],
    *,
    image_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    volumes: Mapping[str, pulumi.Input[str]] | None = None,
) -> docker.Container:
    """A `docker.Container` carrying exactly the spec's values.

    Args:
        resource_name: Pulumi resource name.
        spec: the container.
        image_id: id of the pulled image (`image(...).image_id`), so a new image replaces the container.
        opts: resource options (provider, parent, dependencies, replacement behaviour).
        volumes: spec volume name → the `docker.Volume`'s name output, so the container depends on
            the volumes it mounts.
    """
    named = volumes or {}
    return docker.Container(
        resource_name,
        name=spec.name,
        image=image_id,
        hostname=spec.hostname,
        # Empty collections are left out, not sent as []: inputs a container never had stay unset.
        envs=[f"{key}={value}" for key, value in spec.env] or None,
        ports=None if spec.ports is None else [_port(p) for p in spec.ports],
        volumes=[_volume(m, named) for m in spec.mounts] or None,
        capabilities=docker.ContainerCapabilitiesArgs(adds=list(spec.capabilities)) if spec.capabilities else None,
        labels=[docker.ContainerLabelArgs(label=key, value=value) for key, value in spec.labels] or None,
        restart=spec.restart,
        stop_timeout=spec.stop_timeout,
        # The provider's Delete stops the container with a timeout of 0 (SIGKILL right after
        # SIGTERM) unless this is set (kreuzwerker/terraform-provider-docker
        # internal/provider/resource_docker_container_funcs.go:1086-1093 in v4.5.0), on every
        # replacement and destroy, whatever `stop_timeout` says: Postfix and Dovecot get their grace.
        destroy_grace_seconds=spec.stop_timeout if spec.stop_timeout is not None else DOCKER_STOP_TIMEOUT,
        memory=spec.memory_mb,
        memory_swap=MEMORY_SWAP_UNLIMITED if spec.memory_mb is not None else None,
        network_mode=spec.network_mode,
        healthcheck=None if spec.healthcheck is None else _healthcheck(spec.healthcheck),
        entrypoints=None if spec.entrypoint is None else list(spec.entrypoint),
        command=None if spec.command is None else list(spec.command),
        wait=True if spec.wait_healthy_seconds is not None else None,
        wait_timeout=spec.wait_healthy_seconds,
        opts=opts,
    )


def _port(port: PortBinding) -> docker.ContainerPortArgs:
    return docker.ContainerPortArgs(internal=port.internal, external=port.external, ip=port.ip, protocol=port.protocol)


def _volume(mount: Mount, named: Mapping[str, pulumi.Input[str]]) -> docker.ContainerVolumeArgs:
    volume_name = None if mount.volume_name is None else named.get(mount.volume_name, mount.volume_name)
    return docker.ContainerVolumeArgs(
        container_path=mount.container_path,
        host_path=mount.host_path,
        volume_name=volume_name,
        # Only `True` is sent: a bind registered without `readOnly` stays that way.
        read_only=True if mount.read_only else None,
    )


def _healthcheck(check: Healthcheck) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=list(check.tests),
        # Every field, in the form the provider reads back (config.containers.go_duration).
        interval=go_duration(check.interval),
        timeout=go_duration(check.timeout),
        start_period=go_duration(check.start_period),
        start_interval=go_duration(check.start_interval),
        retries=check.retries,
    )
