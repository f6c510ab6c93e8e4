"""The SMTP server's TLS keys for DANE: the generation in use and the next one (config/dane.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from mailstack.config import dane
from mailstack.config.settings import MailSettings


@dataclass(frozen=True)
class DaneKeysArgs:
    settings: MailSettings
    """`dane` must be true; `daneRollover` names the generation in use."""


class DaneKeys(pulumi.ComponentResource):
    """A pulumi-tls ECDSA P-256 key per generation, `<name>-<generation>`, for the one in use and the next.

    Naming keys by generation is what makes a rollover safe: raising `daneRollover` by one keeps
    the resource (and the published TLSA) of the next key, which becomes the key in use, deletes
    the old one and creates a new next key, whose TLSA is published from then on.
    """

    in_use_private_key_pem: pulumi.Output[str]
    """The key the server uses (secret)."""
    public_keys: dict[int, pulumi.Output[str]]
    """Public key PEM per generation (in use, next): what the TLSA records pin."""

    def __init__(self, name: str, args: DaneKeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:DaneKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        in_use, following = dane.generations(args.settings)
        keys = {
            g: tls.PrivateKey(f"{name}-{g}", algorithm=dane.KEY_ALGORITHM, ecdsa_curve=dane.KEY_CURVE, opts=child)
            for g in (in_use, following)
        }
        self.in_use_private_key_pem = keys[in_use].private_key_pem
        self.public_keys = {g: key.public_key_pem for g, key in keys.items()}
        self.register_outputs({"public_keys": {str(g): pem for g, pem in self.public_keys.items()}})
