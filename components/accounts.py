"""Account credentials: generated passwords, the per-stack hash seed, and the accounts file text."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random as random

from mailstack.config import dms_files
from mailstack.config.passwords import GENERATED_PASSWORD_LENGTH, SEED_BYTES, hash_passwords
from mailstack.config.settings import AccountSettings

PREVIOUS_PARENT_TYPE = "mailstack:index:MailServer"
PREVIOUS_PARENT_NAME = "mail"
"""The component these resources belonged to until 2026-11-28. Their aliases keep their state across
that move: an upgrade neither draws new generated passwords nor re-salts the hashes."""


@dataclass(frozen=True)
class AccountsArgs:
    accounts: tuple[AccountSettings, ...]


async def _accounts_text(seed_b64: str, addresses: Sequence[str], passwords: Mapping[str, str]) -> str:
    """The accounts file text. Hashing (seconds for a thousand accounts) runs on a thread that waits
    for the worker processes, so the event loop goes on registering resources meanwhile."""
    accounts = [(address, passwords[address]) for address in addresses]
    hashes = await asyncio.to_thread(hash_passwords, base64.b64decode(seed_b64), accounts)
    return dms_files.accounts_file(zip(addresses, hashes, strict=True))


class Accounts(pulumi.ComponentResource):
    """The secrets behind DMS's accounts file, and the file text.

    Hashes use a salt derived from a per-stack secret seed, so an unchanged config produces
    byte-identical text: no diff and no rewrite (config/passwords.py). The program creates this
    component first: hashing can only start once the seed is known, and under the SDK's event loop
    that comes sooner the fewer registrations are queued ahead of it (docs/proofs.md, Scale).
    """

    text: pulumi.Output[str]
    """Secret: `postfix-accounts.cf`, one `address|{SHA512-CRYPT}...` line per account."""
    generated_passwords: pulumi.Output[dict[str, str]]
    """Secret: address → password, for accounts configured without one."""

    def __init__(self, name: str, args: AccountsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:Accounts", name, None, opts)
        # A plain string, not `pulumi.create_urn` (an Output): every Output an alias waits for delays
        # the seed's registration behind the rest of the stack. The engine leaves the root stack's
        # type out of URNs (generateURN in pulumi/pkg/resource/deploy), hence no `Stack$` here.
        previous_parent = (
            f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{PREVIOUS_PARENT_TYPE}::{PREVIOUS_PARENT_NAME}"
        )

        def child(previous_name: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self,
                aliases=[pulumi.Alias(name=f"{PREVIOUS_PARENT_NAME}-{previous_name}", parent=previous_parent)],
            )

        seed = random.RandomBytes(f"{name}-hash-seed", length=SEED_BYTES, opts=child("hash-seed"))
        generated = {
            a.address: random.RandomPassword(
                f"{name}-password-{a.address}",
                length=GENERATED_PASSWORD_LENGTH,
                special=False,
                opts=child(f"password-{a.address}"),
            )
            for a in args.accounts
            if a.password is None
        }
        addresses = [a.address for a in args.accounts]
        given = {a.address: a.password for a in args.accounts if a.password is not None}

        def accounts_file(values: list[str]) -> Awaitable[str]:
            # Given passwords are read here rather than wrapped one Output each: a thousand Outputs
            # cost the SDK about a second (benchmarks/scale.py). The text is secret regardless.
            seed_b64, *generated_passwords = values
            passwords = {address: password.get_secret_value() for address, password in given.items()}
            passwords.update(zip(generated, generated_passwords, strict=True))
            return _accounts_text(seed_b64, addresses, passwords)

        self.text = pulumi.Output.secret(
            pulumi.Output.all(seed.base64, *(pw.result for pw in generated.values())).apply(accounts_file)
        )
        # Output.all() without arguments resolves to a list; an empty mapping must stay a mapping.
        self.generated_passwords = pulumi.Output.secret(
            pulumi.Output.all(**{address: pw.result for address, pw in generated.items()}) if generated else {}
        )
        self.register_outputs({"generated_passwords": self.generated_passwords})
