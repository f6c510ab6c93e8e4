"""A tiny stack with one resource of each kind mailstack uses, for tests/test_change_impact.py.

Every `proofs:*` config key changes one input, so each replace rule can be exercised alone.
"""

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_command as command
import pulumi_docker as docker
import pulumi_random as random

cfg = pulumi.Config("proofs")

image = docker.RemoteImage(
    "image", name=cfg.get("image") or "dms:15.1.0", keep_locally=cfg.get_bool("keep") is not False
)
volume = docker.Volume(
    "data",
    name=cfg.get("volume") or "mail-data",
    opts=pulumi.ResourceOptions(protect=True, retain_on_delete=True),
)
accounts = command.local.Command(
    "accounts",
    create="umask 077 && cat > accounts.cf",
    stdin=pulumi.Output.secret(cfg.get("accounts") or "me@example.org|{SHA512-CRYPT}$6$x$y"),
    triggers=[cfg.get("trigger") or "1"],
)
seed = random.RandomBytes("seed", length=cfg.get_int("seedLength") or 32)
docker.Container(
    "mail",
    image=image.image_id,
    restart=cfg.get("restart") or "always",
    memory=cfg.get_int("memory") or 768,
    # Sent as Docker stores it (-1: no swap limit), unless proofs:noSwap leaves it to Docker.
    memory_swap=None if cfg.get_bool("noSwap") else -1,
    healthcheck=docker.ContainerHealthcheckArgs(
        tests=["CMD-SHELL", cfg.get("health") or "ss -lnt | grep -q :25"], start_period=cfg.get("startPeriod")
    ),
    labels=[docker.ContainerLabelArgs(label="mailstack.unwatched", value=cfg.get("label") or "v1")],
    volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path="/var/mail")],
    opts=pulumi.ResourceOptions(
        delete_before_replace=True,
        depends_on=[accounts],
        replace_on_changes=["healthcheck"] if cfg.get_bool("healthReplaces") else None,
        ignore_changes=["memory"] if cfg.get_bool("ignoreMemory") else None,
    ),
)
cloudflare.DnsRecord(
    "mx",
    zone_id=cfg.get("zone") or "zone-1",
    name="example.org",
    type="MX",
    content=cfg.get("mx") or "mail.example.org",
    priority=10,
    ttl=cfg.get_int("ttl") or 3600,
)
if cfg.get_bool("extraRecord"):
    cloudflare.DnsRecord("spf", zone_id="zone-1", name="example.org", type="TXT", content='"v=spf1 mx -all"', ttl=3600)
