"""DKIM signing keys: one RSA key per domain and selector (active and retired), kept in Pulumi state."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from config.settings import DomainSettings

DkimId = tuple[str, str]
"""(domain, selector)."""


@dataclass(frozen=True)
class DkimKeysArgs:
    domains: tuple[DomainSettings, ...]
    """Mail domains; each contributes its active selector and its retired selectors."""


class DkimKeys(pulumi.ComponentResource):
    """Creates a `tls.PrivateKey` per (domain, selector).

    The private key is a Pulumi secret (pulumi-tls marks it so); only the public half is ever
    published. Retired selectors keep their key so the DNS record stays valid while mail signed with
    it is still in flight (RFC 6376 §3.6.1: verifiers fetch the key at verification time).
    """

    public_keys: dict[DkimId, pulumi.Output[str]]
    """Public key PEM (SubjectPublicKeyInfo) per (domain, selector)."""
    private_keys: dict[DkimId, pulumi.Output[str]]
    """Private key PEM (secret) per (domain, selector)."""
    active: tuple[DkimId, ...]
    """The (domain, selector) pairs that sign outgoing mail."""

    def __init__(self, name: str, args: DkimKeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:DkimKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.public_keys = {}
        self.private_keys = {}
        self.active = tuple((d.name, d.dkim.selector) for d in args.domains)
        for domain in args.domains:
            for selector in (domain.dkim.selector, *domain.dkim.retired):
                # The logical name is the key's identity: changing bits replaces only that key.
                key = tls.PrivateKey(
                    f"{name}-{selector}-{domain.name}",
                    algorithm="RSA",
                    rsa_bits=domain.dkim.bits,
                    opts=child,
                )
                self.public_keys[(domain.name, selector)] = key.public_key_pem
                self.private_keys[(domain.name, selector)] = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({f"{d}/{s}": pub for (d, s), pub in self.public_keys.items()})
