"""One mail record published by DNS UPDATE with TSIG: a thin Pulumi dynamic provider over config/rfc2136.py.

The provider object holds no state and no secret: the engine serialises it (dill) into every
resource's state, so the TSIG secret travels as the `keySecret` input instead, which the program
passes as a secret Output and `additional_secret_outputs` keeps secret in the state. The engine
runs the provider in a separate Python process started in the project directory; it imports this
module and config/ from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic
from pulumi.runtime import rpc

from mailstack.config import rfc2136


class Rfc2136Provider(pulumi.dynamic.ResourceProvider):
    """Create, read, update, delete and diff one RR (the logic and its RFC references: config/rfc2136.py)."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        record = rfc2136.record_of(props)
        rfc2136.write(rfc2136.server_of(props), record)
        return pulumi.dynamic.CreateResult(record.key, dict(props))

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        live = rfc2136.read(rfc2136.server_of(props), rfc2136.record_of(props))
        if live is None:
            return pulumi.dynamic.ReadResult(None, {})  # gone: the engine drops it from the state
        outs = {**props, "content": live.content, "priority": live.priority, "ttl": live.ttl}
        return pulumi.dynamic.ReadResult(id_, outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed, replaces = rfc2136.diff(olds, news, unknown=rpc.UNKNOWN)
        # Delete first: a replacement at the same name and type would otherwise have its new RR
        # deleted by the old one's delete.
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        rfc2136.write(rfc2136.server_of(news), rfc2136.record_of(news), previous=[rfc2136.record_of(olds)])
        return pulumi.dynamic.UpdateResult(dict(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        rfc2136.delete(rfc2136.server_of(props), rfc2136.record_of(props))


@dataclass(frozen=True)
class Rfc2136RecordArgs:
    server: str
    port: int
    key_name: str
    key_algorithm: str
    key_secret: pulumi.Input[str]
    """Secret Output of the base64 TSIG secret."""
    zone: str
    name: str
    type: str
    content: pulumi.Input[str]
    priority: int | None
    ttl: int


class Rfc2136Record(pulumi.dynamic.Resource, module="mailstack", name="Rfc2136Record"):
    """A DNS record kept by RFC 2136 updates; type token `pulumi-python:dynamic/mailstack:Rfc2136Record`."""

    def __init__(self, name: str, args: Rfc2136RecordArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "server": args.server,
            "port": args.port,
            "keyName": args.key_name,
            "keyAlgorithm": args.key_algorithm,
            "keySecret": pulumi.Output.secret(args.key_secret),
            "zone": args.zone,
            "name": args.name,
            "type": args.type,
            "content": args.content,
            "priority": args.priority,
            "ttl": args.ttl,
        }
        secret = pulumi.ResourceOptions(additional_secret_outputs=["keySecret"])
        super().__init__(Rfc2136Provider(), name, props, pulumi.ResourceOptions.merge(secret, opts))
