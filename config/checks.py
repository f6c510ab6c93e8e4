"""Semantic checks that span fields: each yields Problems and never raises.

Every check runs even when others fail, so a user sees the whole list at once. A check skips the
parts whose fields failed shape validation (those already have their own problem).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm

from mailstack.config.errors import Problem, key_path, problem, set_command
from mailstack.config.model import Domain, RawSettings
from mailstack.config.names import (
    InvalidNameError,
    is_ip,
    label_count,
    normalise_address,
    split_address,
    to_ascii,
    to_dns_name,
)

# Keys mailstack sets itself (config/dms_env.py builds them); a user value would silently fight ours.
MANAGED_ENV_KEYS: frozenset[str] = frozenset(
    {
        "ACCOUNT_PROVISIONER",
        "DEFAULT_RELAY_HOST",
        "ENABLE_AMAVIS",
        "ENABLE_CLAMAV",
        "ENABLE_FAIL2BAN",
        "ENABLE_IMAP",
        "ENABLE_OPENDKIM",
        "ENABLE_OPENDMARC",
        "ENABLE_POLICYD_SPF",
        "ENABLE_POP3",
        "ENABLE_QUOTAS",
        "ENABLE_RSPAMD",
        "ENABLE_RSPAMD_REDIS",
        "ENABLE_SPAMASSASSIN",
        "OVERRIDE_HOSTNAME",
        "PERMIT_DOCKER",
        "RELAY_HOST",
        "RELAY_PASSWORD",
        "RELAY_PORT",
        "RELAY_USER",
        "SSL_CERT_PATH",
        "SSL_DOMAIN",
        "SSL_KEY_PATH",
        "SSL_TYPE",
    }
)
_ENV_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Dovecot quota rule sizes: bytes with an optional binary suffix (doveconf quota_rule, DMS `setup quota set`).
QUOTA = re.compile(r"^[1-9][0-9]*[kKMGT]?$")
# RFC 6376 §3.1: a selector is a sub-domain (dot-separated labels).
_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_FO = re.compile(r"^[01ds](:[01ds])*$")  # RFC 7489 §6.3 fo tag
_CF_ZONE_ID = re.compile(r"^[0-9a-f]{32}$")
_SSH_HOST_KEY = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}$")
_SHA1_ONLY_HOST_KEYS = ("ssh-rsa", "ssh-dss")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
CF_TOKEN_KEY = "cloudflare:apiToken"
KeyPath = list[str | int]


@dataclass(frozen=True)
class Context:
    settings: RawSettings
    failed: frozenset[str]
    secret_keys: frozenset[str]
    raw: Mapping[str, object]
    stack: str

    def ok(self, *fields: str) -> bool:
        return not (self.failed & set(fields))

    @property
    def domain_names(self) -> dict[str, str]:
        """Declared domains: normalised name → the key as written (only the valid ones)."""
        out: dict[str, str] = {}
        for name in self.settings.domains or {}:
            try:
                out.setdefault(to_ascii(name), name)
            except InvalidNameError:
                continue
        return out


def missing_required(alias: str) -> list[Problem]:
    if alias == "accounts":
        return [
            problem(
                ["accounts"],
                "at least one account is required (DMS shuts down after ~2 minutes without one)",
                set_command(["accounts", "postmaster@example.org", "password"], "<password>", secret=True),
            )
        ]
    if alias == "domains":
        return [
            problem(
                ["domains"],
                "at least one mail domain is required",
                set_command(["domains", "example.org", "mx", "priority"], "10"),
            )
        ]
    return [problem([alias], "is required")]


def normalise_alias_key(key: str) -> str:
    if key.startswith("@"):
        return "@" + to_ascii(key[1:])
    return normalise_address(key)


def hostname(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("hostname") or ctx.settings.hostname is None:
        return
    try:
        name = to_ascii(ctx.settings.hostname)
    except InvalidNameError as exc:
        yield problem(["hostname"], str(exc), value="mail.example.org")
        return
    if label_count(name) < 3:
        yield problem(
            ["hostname"],
            f"'{name}' has fewer than 3 labels; use a host name under a mail domain, e.g. mail.{name}",
            value=f"mail.{name}",
        )
    if name in ctx.domain_names:
        yield problem(
            ["hostname"],
            f"'{name}' is also a mail domain; DMS would list it in both mydestination and virtual_mailbox_domains",
            value=f"mail.{name}",
        )


def domains(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("domains"):
        return
    hostname_ascii = _safe_ascii(ctx.settings.hostname) if ctx.ok("hostname") else None
    seen: dict[str, str] = {}
    ttl_manual = ctx.ok("dns") and set(dns_providers(ctx)) != {"cloudflare"}
    for key, dom in ctx.settings.domains.items():
        base: KeyPath = ["domains", key]
        try:
            name = to_ascii(key)
        except InvalidNameError as exc:
            yield problem(
                base, str(exc), f"pulumi config rm --path '{key_path(base)}' and declare the domain by its valid name"
            )
            continue
        if name in seen:
            yield problem(
                base,
                f"duplicates '{seen[name]}' (the names differ only in case or IDN form)",
                f"pulumi config rm --path '{key_path(base)}'",
            )
            continue
        seen[name] = key
        if label_count(name) < 2:
            yield problem(
                base,
                f"'{name}' is not a registrable mail domain (it has a single label)",
                f"pulumi config rm --path '{key_path(base)}'",
            )
        if dom.zone is not None:
            try:
                zone = to_ascii(dom.zone)
            except InvalidNameError as exc:
                yield problem([*base, "zone"], str(exc))
            else:
                if name != zone and not name.endswith("." + zone):
                    yield problem([*base, "zone"], f"'{name}' is not inside zone '{zone}'", value=name)
        for i, backup in enumerate(dom.backup_mx):
            path: KeyPath = [*base, "backupMx", i, "host"]
            if is_ip(backup.host):
                yield problem(path, f"'{backup.host}' is an IP address; an MX must name a host (RFC 5321 §5.1)")
                continue
            try:
                host = to_ascii(backup.host)
            except InvalidNameError as exc:
                yield problem(path, str(exc))
                continue
            if host == hostname_ascii:
                yield problem(path, "is this server's own hostname; a backup MX must be another provider's host")
            if backup.priority <= dom.mx.priority:
                yield problem(
                    [*base, "backupMx", i, "priority"],
                    f"{backup.priority} is not above the primary MX priority {dom.mx.priority}; senders would prefer the backup",
                    value=str(dom.mx.priority + 10),
                )
        includes: list[tuple[KeyPath, str]] = [(["spf", "include", i], inc) for i, inc in enumerate(dom.spf.include)]
        includes += [
            (["backupMx", i, "spfInclude"], b.spf_include) for i, b in enumerate(dom.backup_mx) if b.spf_include
        ]
        for sub, include in includes:
            if is_ip(include):
                yield problem(
                    [*base, *sub], f"'{include}' is an IP address; SPF include: takes a domain (use ip4:/ip6:)"
                )
                continue
            try:
                to_dns_name(include)
            except InvalidNameError as exc:
                yield problem([*base, *sub], str(exc))
        yield from _dkim(base, dom.dkim.selector, dom.dkim.retired)
        yield from _dmarc(base, dom)
        if dom.tlsrpt is not None:
            for i, uri in enumerate(dom.tlsrpt.rua):
                if not (uri.startswith("https://") or (uri.startswith("mailto:") and _EMAIL.match(uri[7:]))):
                    yield problem([*base, "tlsrpt", "rua", i], f"'{uri}' must be a mailto: or https: URI (RFC 8460 §3)")
        for i, rec in enumerate(dom.records):
            if rec.ttl is not None:
                yield from _ttl([*base, "records", i, "ttl"], rec.ttl, ttl_manual)
            if rec.type in ("MX", "SRV") and rec.priority is None:
                yield problem([*base, "records", i, "priority"], f"is required for {rec.type} records", value="10")


def _dkim(base: KeyPath, selector: str, retired: tuple[str, ...]) -> Iterator[Problem]:
    selectors: list[tuple[KeyPath, str]] = [([*base, "dkim", "selector"], selector)]
    selectors += [([*base, "dkim", "retired", i], sel) for i, sel in enumerate(retired)]
    for path, sel in selectors:
        if not _SELECTOR.match(sel):
            yield problem(
                path, f"'{sel}' is not a valid DKIM selector (RFC 6376 §3.1: lowercase DNS labels)", value="mail"
            )
    if selector in retired:
        yield problem(
            [*base, "dkim", "retired"],
            f"lists the active selector '{selector}'; a retired selector no longer signs",
            f"pulumi config rm --path '{key_path([*base, 'dkim', 'retired'])}'",
        )


def _report_address(uri: str) -> str | None:
    """The address of a DMARC report URI, or None when it is not a usable mailto: (RFC 7489 §6.2)."""
    address = uri[7:] if uri.startswith("mailto:") else uri
    address = address.split("!", 1)[0]  # optional size limit, e.g. mailto:a@b.org!10m
    if ":" in address or not _EMAIL.match(address):
        return None
    try:
        split_address(address)
    except InvalidNameError:
        return None
    return address


def _dmarc(base: KeyPath, dom: Domain) -> Iterator[Problem]:
    for tag in ("rua", "ruf"):
        for i, uri in enumerate(getattr(dom.dmarc, tag)):
            if _report_address(uri) is None:
                yield problem(
                    [*base, "dmarc", tag, i],
                    f"'{uri}' is not a mailto: report address; DMARC reports are only delivered by mail (RFC 7489 §6.2)",
                    value="mailto:dmarc@example.org",
                )
    if dom.dmarc.fo is not None and not _FO.match(dom.dmarc.fo):
        yield problem(
            [*base, "dmarc", "fo"], f"'{dom.dmarc.fo}' is not a DMARC fo value (colon-separated 0, 1, d, s)", value="1"
        )


def _ttl(path: KeyPath, ttl: int, manual: bool) -> Iterator[Problem]:
    if ttl == 1 and manual:
        yield problem(path, "1 means 'automatic' only at Cloudflare; a zone file needs 60-86400 seconds", value="3600")
    elif ttl != 1 and not 60 <= ttl <= 86400:
        yield problem(path, f"{ttl} is out of range: use 1 (automatic, Cloudflare) or 60-86400 seconds", value="3600")


# The credentials each DNS backend reads, with what they must allow. Each provider's own config
# namespace (`cloudflare:`, `aws:`, `digitalocean:`, `hcloud:`) is what its Pulumi provider reads
# by default; mailstack only checks that the keys are there, and secret.
CREDENTIALS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "cloudflare": ((CF_TOKEN_KEY, "Zone:DNS:Edit + Zone:Zone:Read, limited to the mail zones", True),),
    "route53": (
        ("aws:region", "the region pulumi-aws talks to; Route 53 is global, any region works", False),
        (
            "aws:accessKey",
            "an IAM access key allowed route53:ChangeResourceRecordSets, GetChange, ListResourceRecordSets, "
            "GetHostedZone and, without zoneId, ListHostedZones (ListHostedZonesByName for adopt); or set aws:profile "
            "instead",
            False,
        ),
        ("aws:secretKey", "the secret of that access key", True),
    ),
    "digitalocean": (
        (
            "digitalocean:token",
            "a personal access token with the domain scopes (domain:create, domain:read, domain:update, domain:delete)",
            True,
        ),
    ),
    "hetzner": (
        ("hcloud:token", "a Hetzner Cloud project API token with Read & Write (the project holding the zones)", True),
    ),
}
_ROUTE53_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,32}$")
_HETZNER_ZONE_ID = re.compile(r"^[0-9]+$")


def _credential_value(key: str) -> str:
    return {
        "aws:region": "us-east-1",
        "aws:accessKey": "<AKIA...>",
    }.get(key, "<token>" if key.endswith(("Token", ":token")) else "<secret>")


def dns_providers(ctx: Context) -> dict[str, list[KeyPath]]:
    """Backend → where it is chosen (`dns.provider`, `domains.<d>.dns.provider`), for the valid parts only."""
    used: dict[str, list[KeyPath]] = {}
    stack = ctx.settings.dns.provider if ctx.ok("dns") else "manual"
    for key, dom in (ctx.settings.domains or {}).items() if ctx.ok("domains") else ():
        chosen = dom.dns.provider
        used.setdefault(chosen or stack, []).append(
            ["domains", key, "dns", "provider"] if chosen else ["dns", "provider"]
        )
    if not used:
        used[stack] = [["dns", "provider"]]
    return used


def dns(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("dns"):
        return
    used = dns_providers(ctx)
    only_cloudflare = set(used) == {"cloudflare"}
    yield from _ttl(["dns", "ttl"], ctx.settings.dns.ttl, not only_cloudflare)
    for provider in sorted(used):
        for key, needs, secret in CREDENTIALS.get(provider, ()):
            if provider == "route53" and key in ("aws:accessKey", "aws:secretKey") and "aws:profile" in ctx.raw:
                continue  # a named profile from ~/.aws/credentials instead of keys in the stack
            command = f"pulumi config set {'--secret ' if secret else ''}{key} {_credential_value(key)}"
            if key not in ctx.raw:
                where = next((p for p in used[provider] if p[0] == "dns"), used[provider][0])
                name = "dns.provider" if where[0] == "dns" else key_path(where).removeprefix("mailstack:")
                yield Problem(key, f"is required when {name} is {provider} ({needs})", command)
            elif secret and key not in ctx.secret_keys:
                yield Problem(
                    key,
                    "is stored in plain text; an API token must be a secret"
                    if key == CF_TOKEN_KEY
                    else f"is stored in plain text; {provider}'s credential must be a secret",
                    command,
                )
    if "rfc2136" in used:
        yield from _rfc2136(ctx)
    elif ctx.settings.dns.rfc2136 is not None:
        yield problem(
            ["dns", "rfc2136"],
            "only applies when a domain's DNS is rfc2136",
            f"pulumi config rm --path '{key_path(['dns', 'rfc2136'])}'",
        )
    if ctx.ok("domains"):
        yield from _domain_dns(ctx)


def _rfc2136(ctx: Context) -> Iterator[Problem]:
    r = ctx.settings.dns.rfc2136
    base: KeyPath = ["dns", "rfc2136"]
    if r is None or not r.server:
        yield problem(
            [*base, "server"],
            "is required when a domain's DNS is rfc2136: the primary server that accepts updates for the zones",
            value="ns1.example.net",
        )
    if r is None or not r.key_name:
        yield problem(
            [*base, "keyName"], "is required: the TSIG key's name as the server's config names it", value="mailstack."
        )
    elif not _is_dns_name(r.key_name):
        yield problem(
            [*base, "keyName"],
            f"'{r.key_name}' is not a DNS name (RFC 8945 §4.2: key names are domain names)",
            value="mailstack.",
        )
    fix = set_command([*base, "keySecret"], "<base64 secret>", secret=True)
    if r is None or r.key_secret is None:
        yield problem([*base, "keySecret"], "is required: the TSIG key's base64 secret (tsig-keygen, keymgr -t)", fix)
    elif "mailstack:dns" not in ctx.secret_keys:
        yield problem([*base, "keySecret"], "is stored in plain text; a TSIG secret must be set with --secret", fix)
    elif not _is_base64(r.key_secret.get_secret_value()):
        yield problem(
            [*base, "keySecret"], "is not base64 (copy the `secret:` of the key as the server's config has it)", fix
        )


def _is_dns_name(name: str) -> bool:
    try:
        to_dns_name(name.rstrip("."))
    except InvalidNameError:
        return False
    return True


def _is_base64(text: str) -> bool:
    try:
        return bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False


def _domain_dns(ctx: Context) -> Iterator[Problem]:
    """A zone has one DNS host; `zoneId` means what that host calls a zone id."""
    stack = ctx.settings.dns.provider
    zones: dict[str, tuple[str, str]] = {}
    for key, dom in ctx.settings.domains.items():
        provider = dom.dns.provider or stack
        zone = _safe_ascii(dom.zone or key)
        if zone is None:
            continue
        if zone in zones and zones[zone][1] != provider:
            yield problem(
                ["domains", key, "dns", "provider"],
                f"zone {zone} is already published by {zones[zone][1]} (domain {zones[zone][0]}); a zone has one DNS host",
                value=zones[zone][1],
            )
        zones.setdefault(zone, (key, provider))
        if dom.zone_id is None:
            continue
        path: KeyPath = ["domains", key, "zoneId"]
        rm = f"pulumi config rm --path '{key_path(path)}'"
        # With manual DNS a zoneId is kept for a later move to Cloudflare, as before per-domain backends.
        if provider in ("cloudflare", "manual") and not _CF_ZONE_ID.match(dom.zone_id):
            yield problem(path, "is not a Cloudflare zone id (32 lowercase hex digits)")
        elif provider == "route53" and not _ROUTE53_ZONE_ID.match(dom.zone_id):
            yield problem(
                path, "is not a Route 53 hosted zone id (Z followed by capitals and digits, e.g. Z0123456789ABCDEFGHIJ)"
            )
        elif provider == "hetzner" and not _HETZNER_ZONE_ID.match(dom.zone_id):
            yield problem(path, "is not a Hetzner DNS zone id (a number; or leave it out: the zone name works too)")
        elif provider in ("digitalocean", "rfc2136"):
            yield problem(path, f"has no meaning with {provider} DNS (zones are named, not numbered)", rm)


def accounts(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("accounts") or ctx.settings.accounts is None:
        return
    if not ctx.settings.accounts:
        yield from missing_required("accounts")
        return
    declared = ctx.domain_names
    seen: dict[str, str] = {}
    plaintext = "mailstack:accounts" not in ctx.secret_keys
    for key, acc in ctx.settings.accounts.items():
        base: KeyPath = ["accounts", key]
        try:
            local, domain = split_address(key)
        except InvalidNameError as exc:
            yield problem(base, str(exc), f"pulumi config rm --path '{key_path(base)}'")
            continue
        address = f"{local}@{domain}"
        if address in seen:
            yield problem(
                base,
                f"duplicates account '{seen[address]}' (addresses differ only in case)",
                f"pulumi config rm --path '{key_path(base)}'",
            )
            continue
        seen[address] = key
        if ctx.ok("domains") and domain not in declared:
            yield problem(
                base,
                f"domain '{domain}' is not a declared mail domain",
                set_command(["domains", domain, "mx", "priority"], "10"),
            )
        if acc.quota is not None and not QUOTA.match(acc.quota):
            yield problem([*base, "quota"], f"'{acc.quota}' is not a quota (a size such as 500M, 5G or 1T)", value="5G")
        if acc.password is not None:
            if plaintext:
                yield problem(
                    [*base, "password"],
                    "is stored in plain text; passwords must be set with --secret",
                    set_command([*base, "password"], "<password>", secret=True),
                )
            elif not acc.password.get_secret_value():
                yield problem(
                    [*base, "password"],
                    "is empty; omit it to have one generated",
                    f"pulumi config rm --path '{key_path([*base, 'password'])}'",
                )


def aliases(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("aliases", "accounts", "domains", "hostname"):
        return
    declared = ctx.domain_names
    account_addrs = {_safe_address(a) for a in ctx.settings.accounts or {}} - {None}
    graph: dict[str, tuple[str, ...]] = {}
    keys: dict[str, str] = {}
    hostname_ascii = _safe_ascii(ctx.settings.hostname)
    for key, targets in ctx.settings.aliases.items():
        base: KeyPath = ["aliases", key]
        try:
            addr = normalise_alias_key(key)
        except InvalidNameError as exc:
            yield problem(base, str(exc), f"pulumi config rm --path '{key_path(base)}'")
            continue
        if addr in keys:
            yield problem(
                base,
                f"duplicates alias '{keys[addr]}' (addresses differ only in case)",
                f"pulumi config rm --path '{key_path(base)}'",
            )
            continue
        keys[addr] = key
        domain = addr.rpartition("@")[2]
        if domain not in declared:
            what = "catch-all" if addr.startswith("@") else "alias"
            yield problem(
                base,
                f"{what} for '{domain}', which is not a declared mail domain",
                set_command(["domains", domain, "mx", "priority"], "10"),
            )
        if addr in account_addrs:
            yield problem(
                base,
                "shadows the account of the same address; mail would never reach its mailbox",
                f"pulumi config rm --path '{key_path(base)}'",
            )
        if not targets:
            yield problem(base, "has no target address", value="me@example.org")
        normalised: list[str] = []
        for i, target in enumerate(targets):
            path: KeyPath = [*base, i] if len(targets) > 1 else base
            try:
                t_local, t_domain = split_address(target)
            except InvalidNameError as exc:
                yield problem(path, f"target {exc}", value="me@example.org")
                continue
            normalised.append(f"{t_local}@{t_domain}")
            if t_domain not in declared and t_domain in ("localhost", hostname_ascii):
                yield problem(
                    path,
                    f"target '{target}' is in the undeclared local domain '{t_domain}'; use an address in a declared mail domain",
                    value="me@example.org",
                )
        graph[addr] = tuple(normalised)
    # Targets inside our own domains must end in a mailbox: an account, another alias or a catch-all.
    catch_alls = {a[1:] for a in graph if a.startswith("@")}
    for addr, targets in graph.items():
        for target in targets:
            t_domain = target.rpartition("@")[2]
            if (
                t_domain in declared
                and target not in account_addrs
                and target not in graph
                and t_domain not in catch_alls
            ):
                yield problem(
                    ["aliases", keys[addr]],
                    f"target '{target}' is neither an account nor an alias; the mail would bounce",
                    set_command(["accounts", target, "password"], "<password>", secret=True),
                )
    yield from _alias_loops(graph, keys)


def _alias_loops(graph: Mapping[str, tuple[str, ...]], keys: Mapping[str, str]) -> Iterator[Problem]:
    """Report each cycle once, at its smallest address (Postfix would expand it until it gives up)."""
    reported: set[frozenset[str]] = set()

    def walk(node: str, trail: list[str]) -> Iterator[list[str]]:
        for nxt in graph.get(node, ()):
            if nxt in trail:
                yield trail[trail.index(nxt) :]
            elif nxt in graph:
                yield from walk(nxt, [*trail, nxt])

    for start in sorted(graph):
        for cycle in walk(start, [start]):
            members = frozenset(cycle)
            if members in reported:
                continue
            reported.add(members)
            first = min(cycle)
            i = cycle.index(first)
            ordered = cycle[i:] + cycle[:i]
            yield problem(
                ["aliases", keys[first]],
                "forms a loop: " + " -> ".join([*ordered, first]),
                f"pulumi config rm --path '{key_path(['aliases', keys[first]])}'",
            )


def relay(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("relay") or ctx.settings.relay is None:
        return
    r = ctx.settings.relay
    if r.preset == "custom" and not r.host:
        yield problem(
            ["relay", "host"],
            "is required for a custom relay (or choose a preset: brevo, mailgun, mailgun-eu, sendgrid, ses, postmark, smtp2go)",
            value="smtp.example.net",
        )
    if r.host and is_ip(r.host) is False:
        try:
            to_ascii(r.host)
        except InvalidNameError as exc:
            yield problem(["relay", "host"], str(exc))
    if r.preset == "ses" and not (r.region and re.match(r"^[a-z]{2}(-[a-z]+)+-[0-9]$", r.region)):
        yield problem(
            ["relay", "region"], "is required for the ses preset (an AWS region such as eu-west-1)", value="eu-west-1"
        )
    if not r.username and r.preset != "sendgrid":
        yield problem(
            ["relay", "username"], "is required (the SMTP login from your relay provider)", value="<smtp-login>"
        )
    if r.password is None:
        yield problem(
            ["relay", "password"],
            "is required (the relay's SMTP key or password)",
            set_command(["relay", "password"], "<smtp-key>", secret=True),
        )
    elif "mailstack:relay" not in ctx.secret_keys:
        yield problem(
            ["relay", "password"],
            "is stored in plain text; the relay password must be set with --secret",
            set_command(["relay", "password"], "<smtp-key>", secret=True),
        )
    if r.port == 465:
        yield problem(
            ["relay", "port"],
            "465 (implicit TLS) is not supported by DMS's relay setup; use 587 (STARTTLS)",
            value="587",
        )


def env(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("env"):
        return
    for key in ctx.settings.env:
        base: KeyPath = ["env", key]
        if not _ENV_KEY.match(key):
            yield problem(
                base,
                f"'{key}' is not an environment variable name (A-Z, 0-9, _)",
                f"pulumi config rm --path '{key_path(base)}'",
            )
        elif key in MANAGED_ENV_KEYS or key.endswith("__FILE"):
            yield problem(
                base,
                f"{key} is managed by mailstack; set it through its mailstack key instead",
                f"pulumi config rm --path '{key_path(base)}'",
            )


def hostname_dns(raw: RawSettings) -> tuple[str, str | None]:
    """The DNS backend of the zone holding the hostname, and that domain's key (None: the stack's `dns.provider`).

    DNS-01 writes `_acme-challenge.<hostname>` (RFC 8555 §8.4) into the hostname's own zone, so
    that zone's backend decides whether certbot can answer through Cloudflare. A hostname outside
    every zone of the stack falls back to `dns.provider`.
    """
    try:
        host = to_ascii(raw.hostname)
    except InvalidNameError:
        return raw.dns.provider, None
    best: tuple[int, str, str | None] = (-1, raw.dns.provider, None)
    for key, dom in (raw.domains or {}).items():
        try:
            zone = to_ascii(dom.zone or key)
        except InvalidNameError:
            continue
        if (host == zone or host.endswith("." + zone)) and len(zone) > best[0]:
            best = (len(zone), dom.dns.provider or raw.dns.provider, key if dom.dns.provider else None)
    return best[1], best[2]


def tls(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("tls"):
        return
    t = ctx.settings.tls
    if t.mode == "letsencrypt":
        provider: str | None = None
        domain: str | None = None
        if ctx.ok("dns"):
            provider = ctx.settings.dns.provider
            if ctx.ok("domains", "hostname"):
                provider, domain = hostname_dns(ctx.settings)
        challenge = t.challenge or ("dns-cloudflare" if provider == "cloudflare" else "http")
        if challenge == "dns-cloudflare" and provider not in ("cloudflare", None):
            yield problem(
                ["tls", "challenge"],
                f"dns-cloudflare needs the hostname's zone at Cloudflare; {ctx.settings.hostname} is in a "
                f"domains.{domain}.dns.provider {provider} zone: use the http challenge (port 80)"
                if domain
                else f"dns-cloudflare needs dns.provider cloudflare; with {provider} DNS use the http challenge (port 80)",
                value="http",
            )
        if t.email is not None and not _EMAIL.match(t.email):
            yield problem(["tls", "email"], f"'{t.email}' is not an email address", value="admin@example.org")
    elif t.challenge is not None or t.staging:
        yield problem(
            ["tls", "challenge" if t.challenge else "staging"],
            f"only applies to tls.mode letsencrypt (mode is {t.mode})",
            f"pulumi config rm --path '{key_path(['tls', 'challenge' if t.challenge else 'staging'])}'",
        )
    if t.mode == "existing" and not t.path:
        yield problem(
            ["tls", "path"],
            "is required for tls.mode existing (a host directory laid out like /etc/letsencrypt)",
            value="/etc/letsencrypt",
        )
    if t.path is not None and not t.path.startswith("/"):
        yield problem(["tls", "path"], f"'{t.path}' must be an absolute host path", value="/etc/letsencrypt")


def target(ctx: Context) -> Iterator[Problem]:
    if not ctx.ok("target"):
        return
    t = ctx.settings.target
    if t.kind == "ssh" and not t.host:
        yield problem(["target", "host"], "is required for an ssh target", value="dietpi.lan")
    if t.kind == "local" and t.host:
        yield problem(["target", "kind"], "is local but target.host is set; did you mean kind ssh?", value="ssh")
    if t.host_key is not None and not _SSH_HOST_KEY.match(t.host_key):
        yield problem(
            ["target", "hostKey"],
            "is not an SSH public key in authorized_keys form ('ssh-ed25519 AAAA…'); read it with ssh-keyscan",
            value="'ssh-ed25519 AAAA...'",
        )
    elif t.host_key is not None and t.host_key.split()[0] in _SHA1_ONLY_HOST_KEYS:
        # pulumi-command offers exactly the pin's key type as its only host-key algorithm
        # (provider/pkg/provider/remote/connection.go:93-94 in v1.2.1: `HostKeyAlgorithms =
        # []string{publicKey.Type()}`), and golang.org/x/crypto sends that list unchanged
        # (ssh/handshake.go:546 in v0.48.0), so an RSA pin offers only `ssh-rsa`, the SHA-1
        # signature. OpenSSH >= 8.8 and Dropbear >= 2025.87 (src/default_options.h:142,
        # DROPBEAR_RSA_SHA1 0) no longer offer it: every connection would fail key exchange.
        # DSA keys are gone from both servers altogether.
        port = f"-p {t.port} " if t.port != 22 else ""
        yield problem(
            ["target", "hostKey"],
            f"is an {t.host_key.split()[0]} key: pulumi-command can verify it only with SHA-1 signatures, which "
            "OpenSSH 8.8+ and current Dropbear refuse; pin the host's ed25519 (or ECDSA) key instead",
            f"pulumi config set --path 'mailstack:target.hostKey' "
            f"\"$(ssh-keyscan -t ed25519 {port}{t.host or '<host>'} | cut -d' ' -f2-)\"",
        )
    if t.data_dir is not None and not (t.data_dir.startswith("/") or t.data_dir.startswith("~/")):
        yield problem(["target", "dataDir"], f"'{t.data_dir}' must be an absolute path", value="/opt/mailstack")
    elif t.kind == "ssh" and t.data_dir is not None and t.data_dir.startswith("~/"):
        # `~` would be expanded on the machine running Pulumi (config/load.py), giving the
        # operator's home directory, which rarely exists on the mail host.
        yield problem(
            ["target", "dataDir"],
            f"'{t.data_dir}' would expand to this machine's home directory, not one on {t.host or 'the SSH host'}; "
            "give the absolute path on the host",
            value="/mnt/dietpi_userdata/mailstack",
        )
    if ctx.ok("publicIPv6") and ctx.settings.public_ipv6 is not None:
        # The provider publishes a port without `ip` on 0.0.0.0 only (resource_docker_container.go:509-523
        # in kreuzwerker/terraform-provider-docker v4.5.0), and Docker binds 0.0.0.0 to IPv4 alone
        # since 20.10. A second binding on `::` would add IPv6, but Docker reports the two bindings of a
        # port in another order than they were sent (reversed on 20.10: tests/test_docker_engine.py),
        # flattenContainerPorts (resource_docker_container_structures.go:35-59) keeps that order,
        # the diff suppression matches only the first binding of a port (resource_docker_container.go:
        # 1192-1245), and `ports` forces replacement: the mail container would be replaced on every
        # `pulumi up` (terraform-provider-docker#909, fix pending in #910). Without ip6tables the `::`
        # listener is docker-proxy, and every IPv6 client would reach DMS as the Docker gateway.
        yield problem(
            ["publicIPv6"],
            "cannot be served: the mail ports are published on 0.0.0.0 (IPv4 only), so an AAAA record would send "
            "IPv6 mail to a closed port, and publishing them on :: as well would make the Docker provider replace "
            "the mail container on every pulumi up (terraform-provider-docker#909); publish no AAAA record "
            "(docs/host.md, IPv6)"
            + (
                ""
                if t.docker_ipv6
                else "; without target.dockerIPv6 IPv6 clients would also reach DMS as the Docker gateway"
            ),
            "pulumi config rm 'mailstack:publicIPv6'",
        )


def private_key_file(ctx: Context) -> Iterator[Problem]:
    """The SSH key file must be readable (pulumi-command takes the key text, not a path).

    Reads the file system, so it is not in ALL: the Pulumi adapter passes it to load_settings.
    """
    if not ctx.ok("target"):
        return
    t = ctx.settings.target
    if t.kind != "ssh" or not t.private_key_file:
        return
    path = Path(t.private_key_file).expanduser()
    if not (path.is_file() and os.access(path, os.R_OK)):
        yield problem(
            ["target", "privateKeyFile"],
            f"'{t.private_key_file}' is not a readable file; name an existing SSH private key, or remove it to use ssh-agent",
            f"pulumi config rm --path '{key_path(['target', 'privateKeyFile'])}'",
        )
    elif ssh_key_is_encrypted(path.read_bytes()):
        # pulumi-command parses the key without a passphrase unless privateKeyPassword is given
        # (provider/pkg/provider/remote/connection.go:106-116 in v1.2.1), which mailstack does not
        # set: every command would fail. The agent holds the decrypted key instead.
        yield problem(
            ["target", "privateKeyFile"],
            f"'{t.private_key_file}' is protected by a passphrase, which pulumi-command cannot ask for; "
            f"load it into ssh-agent (ssh-add {t.private_key_file}) and remove privateKeyFile",
            f"pulumi config rm --path '{key_path(['target', 'privateKeyFile'])}'",
        )


def watchtower_under_pulumi(ctx: Context) -> Iterator[Problem]:
    """`updates.watchtower` cannot work on containers Pulumi manages.

    Not in ALL: only the Pulumi adapter passes it to load_settings. `render`'s compose.yaml names
    images by reference and has no state to fall out of, so Watchtower stays valid there.

    The program creates each container from the pulled image's ID (`sha256:…`, so that a new image
    replaces the container). Watchtower treats a bare `sha256:` image as pinned and never pulls for
    it (nicholas-fedor/watchtower v1.21.0 pkg/container/image.go:66 and :408). Were it to recreate
    the container anyway, the new container would have an ID Pulumi's state does not hold: the
    next `pulumi up` would fail creating the fixed name, or delete Watchtower's container.
    """
    if not ctx.ok("updates") or not ctx.settings.updates.watchtower:
        return
    yield problem(
        ["updates", "watchtower"],
        "Watchtower cannot update containers Pulumi manages (they run a pinned image ID, and a container it "
        "recreated would fall out of Pulumi's state); bump `mailstack:image` and run `pulumi up` instead "
        "(docs/host.md, Updates)",
        set_command(["updates", "watchtower"], "false"),
    )


def ssh_key_is_encrypted(data: bytes) -> bool:
    """True for a passphrase-protected OpenSSH or PEM private key; False otherwise, also for text
    that is not a key at all (the SSH client reports that one with its own words)."""
    from cryptography.hazmat.primitives import serialization

    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    for load in loaders:
        try:
            load(data, password=None)
        except TypeError:  # "private key is encrypted" / "password-protected"
            return True
        except (ValueError, UnsupportedAlgorithm):
            continue
        return False
    return False


def _safe_ascii(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return to_ascii(name)
    except InvalidNameError:
        return None


def _safe_address(address: str) -> str | None:
    try:
        return normalise_address(address)
    except InvalidNameError:
        return None


def backup_and_migration(ctx: Context) -> Iterator[Problem]:
    """`mailstack:backup` and `accounts.<a>.migrateFrom` (rules in config/backup.py, config/migration.py)."""
    from mailstack.config import backup, migration

    if ctx.ok("backup"):
        data_dir = ctx.settings.target.data_dir if ctx.ok("target") else None
        yield from backup.checks(ctx.settings.backup, secret="mailstack:backup" in ctx.secret_keys, data_dir=data_dir)
    if ctx.ok("accounts") and ctx.settings.accounts:
        yield from migration.checks(ctx.settings.accounts, secret="mailstack:accounts" in ctx.secret_keys)


def ddns(ctx: Context) -> Iterator[Problem]:
    """`mailstack:ddns` (rules in config/ddns.py)."""
    from mailstack.config import ddns as ddns_rules

    if ctx.ok("ddns", "hostname", "domains", "dns", "target"):
        yield from ddns_rules.checks(ctx.settings, secret="mailstack:ddns" in ctx.secret_keys)


ALL: tuple[Callable[[Context], Iterable[Problem]], ...] = (
    hostname,
    target,
    dns,
    tls,
    domains,
    accounts,
    aliases,
    relay,
    env,
    backup_and_migration,
    ddns,
)
