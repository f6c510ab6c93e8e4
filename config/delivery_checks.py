"""Rules that keep mail reaching the right mailbox and passing receivers' checks.

Errors (`ALL`) and warnings (`WARNINGS`) over the resolved settings; both yield `Problem`s keyed to
the config entry the user edits, with the command that fixes it. Warnings never stop a deploy: the
Pulumi program logs them (components/stack_config.py) and `render` prints them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from mailstack.config.dms_env import external_forwards
from mailstack.config.errors import Problem, problem, rm_command, set_command
from mailstack.config.names import InvalidNameError, normalise_address
from mailstack.config.records import host_address_records, spf_text
from mailstack.config.settings import MailSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges no other mail server can reach, with the RFC that reserves each. Anything else Python does
# not call global (benchmarking, reserved, multicast, ...) is caught by the fallback in
# `_non_public`, described by IANA's special-purpose address registries (RFC 6890).
_NON_PUBLIC: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str], ...] = tuple(
    (ipaddress.ip_network(net), kind, rfc)
    for net, kind, rfc in (
        ("10.0.0.0/8", "private", "RFC 1918"),
        ("172.16.0.0/12", "private", "RFC 1918"),
        ("192.168.0.0/16", "private", "RFC 1918"),
        ("127.0.0.0/8", "loopback", "RFC 1122"),
        ("169.254.0.0/16", "link-local", "RFC 3927"),
        ("100.64.0.0/10", "carrier-grade NAT (shared)", "RFC 6598"),
        ("192.0.2.0/24", "documentation", "RFC 5737"),
        ("198.51.100.0/24", "documentation", "RFC 5737"),
        ("203.0.113.0/24", "documentation", "RFC 5737"),
        ("::1/128", "loopback", "RFC 4291"),
        ("fe80::/10", "link-local", "RFC 4291"),
        ("fc00::/7", "unique local (private)", "RFC 4193"),
        ("2001:db8::/32", "documentation", "RFC 3849"),
        ("3fff::/20", "documentation", "RFC 9637"),
    )
)


def _non_public(address: IPAddress) -> str | None:
    """Why `address` cannot be a mail server's public address, or None when it can."""
    for network, kind, rfc in _NON_PUBLIC:
        if address.version == network.version and address in network:
            return f"a {kind} address ({network}, {rfc})"
    if not address.is_global:
        return "not a globally routable address (IANA special-purpose registry, RFC 6890)"
    return None


def _published_addresses(settings: MailSettings) -> Iterator[tuple[str, IPAddress, str]]:
    """(config key, address, why not public) for each A/AAAA of the hostname the stack publishes."""
    for record in host_address_records(settings):
        address = ipaddress.ip_address(record.content)
        why = _non_public(address)
        if why is not None:
            yield ("publicIPv4" if record.type == "A" else "publicIPv6"), address, why


def _host_provider(settings: MailSettings) -> str:
    """The backend that publishes the hostname's address: its zone's (per-domain), else the stack's."""
    records = host_address_records(settings)
    return settings.zone_providers.get(records[0].zone, settings.dns_provider) if records else settings.dns_provider


def public_addresses(settings: MailSettings) -> Iterator[Problem]:
    """A managed DNS provider must not publish an unreachable address as the mail host's A/AAAA."""
    provider = _host_provider(settings)
    if provider == "manual":
        return
    for key, address, why in _published_addresses(settings):
        yield problem(
            [key],
            f"{address} is {why}: {provider} would publish it as the address of {settings.hostname}, "
            "where no other mail server can reach it",
            value="<the server's public address>",
        )


def public_addresses_warning(settings: MailSettings) -> Iterator[Problem]:
    """With manual DNS (the dev stack binds 127.0.0.1) an unreachable address is allowed, with a note."""
    if _host_provider(settings) != "manual":
        return
    for key, address, why in _published_addresses(settings):
        yield problem(
            [key],
            f"{address} is {why}: fine for a test stack, but the zone file publishes it as the address of "
            f"{settings.hostname}, where no other mail server can reach it",
            value="<the server's public address>",
        )


def report_mailboxes(settings: MailSettings) -> Iterator[Problem]:
    """A DMARC report address in one of the stack's own domains must end in a mailbox.

    Otherwise every aggregate and failure report bounces (or, worse, is a backscatter source).
    A catch-all of that domain counts: it delivers the reports to its target.
    """
    local = set(settings.domain_names)
    delivered = {a.address for a in settings.accounts} | {a.address for a in settings.aliases}
    catch_alls = {a.address[1:] for a in settings.aliases if a.address.startswith("@")}
    for domain in settings.domains:
        for tag in ("rua", "ruf"):
            for i, uri in enumerate(getattr(domain.dmarc, tag)):
                try:
                    address = normalise_address(uri[len("mailto:") :].split("!", 1)[0])
                except InvalidNameError:
                    continue  # config/checks.py reports it
                report_domain = address.rpartition("@")[2]
                if report_domain not in local or address in delivered or report_domain in catch_alls:
                    continue
                target = next(
                    (a.address for a in settings.accounts if a.domain == report_domain),
                    settings.accounts[0].address if settings.accounts else "<existing account>",
                )
                account_fix = set_command(["accounts", address, "password"], "<password>", secret=True)
                alias_fix = set_command(["aliases", address], target)
                yield problem(
                    ["domains", domain.name, "dmarc", tag, i],
                    f"'{address}' is in the stack's domain {report_domain} but is neither an account nor an alias: "
                    "every DMARC report sent to it would bounce",
                    f"{alias_fix} (deliver the reports to an existing mailbox), or {account_fix} (a mailbox of its own)",
                )


def relay_spf(settings: MailSettings) -> Iterator[Problem]:
    """A custom relay sends every outgoing message: the domains' SPF must authorize it.

    Without `relay.spfInclude`, and with no include/ip4/ip6 of the domain's own, the record is
    `v=spf1 mx -all`: the relay's addresses are not the MX, so receivers get an SPF fail (RFC 7208
    §2.6.4) for every message. The presets without an include (ses, postmark, smtp2go) send with
    their own Return-Path domain, whose SPF they publish (config/relay.py), so they are exempt.
    """
    relay = settings.relay
    if relay is None or relay.preset != "custom" or relay.spf_include or not relay.host:
        return
    bare = [d for d in settings.domains if not (d.spf.include or d.spf.ip4 or d.spf.ip6)]
    if not bare:
        return
    names = ", ".join(f"{d.name} ('{spf_text(settings, d)}')" for d in bare)
    ip4 = set_command(["domains", bare[0].name, "spf", "ip4", 0], "<relay address>")
    yield problem(
        ["relay", "spfInclude"],
        f"the custom relay {relay.host} sends all outgoing mail, but the SPF record of {names} does not authorize "
        "it: receivers would see an SPF fail for every message",
        f"{set_command(['relay', 'spfInclude'], '<the SPF domain your relay provider documents>')} "
        f"(or list the relay's sending addresses: {ip4})",
    )


def removed_dmarc_tags(settings: MailSettings) -> Iterator[Problem]:
    """`pct` and `rf` are gone from DMARC (RFC 9989, Appendix "Changes from RFC 7489"): refuse them with the replacement."""
    for domain in settings.domains:
        base: list[str | int] = ["domains", domain.name, "dmarc"]
        if domain.dmarc.pct is not None:
            yield problem(
                [*base, "pct"],
                "pct was removed by RFC 9989 and receivers ignore it; to try a policy first, use t: y "
                "(receivers then apply one level below p)",
                f"{rm_command([*base, 'pct'])}, then {set_command([*base, 't'], 'y')}",
            )
        if domain.dmarc.rf is not None:
            yield problem(
                [*base, "rf"],
                "rf was removed by RFC 9989 and receivers ignore it (failure reports have a single format)",
                rm_command([*base, "rf"]),
            )


def spf_junk_needs_spam_folder(settings: MailSettings) -> Iterator[Problem]:
    """On the standard profile, `junk` relies on DMS's MOVE_SPAM_TO_JUNK Sieve script (on by default)."""
    if settings.spf_fail == "junk" and settings.profile == "standard" and ("MOVE_SPAM_TO_JUNK", "0") in settings.env:
        yield problem(
            ["env", "MOVE_SPAM_TO_JUNK"],
            "is 0, but inbound.spfFail junk on the standard profile files mail into Junk through DMS's "
            "MOVE_SPAM_TO_JUNK; mail failing SPF would land in the inbox",
            rm_command(["env", "MOVE_SPAM_TO_JUNK"]),
        )


def srs_for_forwards(settings: MailSettings) -> Iterator[Problem]:
    """Forwarding outside the stack without SRS fails SPF at the destination (see config/dms_env.srs_env)."""
    forwards = external_forwards(settings)
    if forwards and ("ENABLE_SRS", "0") in settings.env:
        yield problem(
            ["env", "ENABLE_SRS"],
            f"is 0, but aliases forward to {', '.join(forwards)} outside the stack's domains: without SRS the "
            "forwarded mail keeps its sender's envelope address and fails SPF at the destination",
            rm_command(["env", "ENABLE_SRS"]),
        )


def ri_warning(settings: MailSettings) -> Iterator[Problem]:
    for domain in settings.domains:
        if domain.dmarc.ri is not None:
            path: list[str | int] = ["domains", domain.name, "dmarc", "ri"]
            yield problem(
                path,
                "ri was removed by RFC 9989: receivers send aggregate reports once a day whatever it says "
                "(it is still published, for receivers that follow RFC 7489)",
                rm_command(path),
            )


ALL = (public_addresses, report_mailboxes, relay_spf, removed_dmarc_tags, spf_junk_needs_spam_folder, srs_for_forwards)
WARNINGS = (public_addresses_warning, ri_warning)
