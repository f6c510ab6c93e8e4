"""DKIM signing keys: one RSA key per domain and selector (active and retired), kept in Pulumi state."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from mailstack.config.names import legacy_selector_domain_id, selector_domain_id
from mailstack.config.settings import DomainSettings

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
        pairs = [(d, s) for d in args.domains for s in (d.dkim.selector, *d.dkim.retired)]
        aliases = legacy_aliases(name, [(d.name, s) for d, s in pairs])
        for domain, selector in pairs:
            # The logical name is the key's identity: changing bits replaces only that key.
            key = tls.PrivateKey(
                f"{name}-{selector_domain_id(selector, domain.name)}",
                algorithm="RSA",
                rsa_bits=domain.dkim.bits,
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(aliases=aliases.get((domain.name, selector)))
                ),
            )
            self.public_keys[(domain.name, selector)] = key.public_key_pem
            self.private_keys[(domain.name, selector)] = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({f"{d}/{s}": pub for (d, s), pub in self.public_keys.items()})


def legacy_aliases(prefix: str, ids: list[DkimId]) -> dict[DkimId, list[pulumi.Alias]]:
    """Aliases from the names resources had before `selector_domain_id` (a `-` in the selector).

    Only where the old name is not some other resource's current name: two resources claiming one
    state entry is an engine error, and a config whose old names collided could not have been
    deployed, so there is no state to keep.

    Args:
        prefix: the resource-name prefix (`<component>` or `<component>-dkim`).
        ids: every (domain, selector) named with this prefix.
    """
    current = {f"{prefix}-{selector_domain_id(s, d)}" for d, s in ids}
    out: dict[DkimId, list[pulumi.Alias]] = {}
    for domain, selector in ids:
        old = f"{prefix}-{legacy_selector_domain_id(selector, domain)}"
        if old not in current:
            out[(domain, selector)] = [pulumi.Alias(name=old)]
    return out
