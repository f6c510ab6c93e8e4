"""DNS record rules over the resolved settings: SPF lookup budget, record syntax, names vs addresses, duplicates.

Each check yields `Problem`s keyed to the config entry the user edits. The checks never raise: a
record that cannot even be built from a value that `config/checks.py` already refused (an IP as a
backup MX, say) is skipped here, so the user sees that problem once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

import dns.exception
import dns.name

from mailstack.config.errors import Problem, key_path, problem, rm_command
from mailstack.config.names import is_ip
from mailstack.config.records import (
    SPF_LOOKUP_LIMIT,
    AddressError,
    RecordSpec,
    dkim_record,
    dkim_selectors,
    dmarc_record,
    extra_record,
    host_address_records,
    mx_records,
    parse_txt,
    report_authorization_records,
    spf_lookup_terms,
    spf_record,
    spf_term_name,
    srv_records,
    tlsrpt_record,
)
from mailstack.config.settings import DomainSettings, MailSettings

KeyPath = Sequence[str | int]
_BUILD_ERRORS = (ValueError, KeyError, dns.exception.DNSException)


def _records_path(domain: DomainSettings, index: int) -> list[str | int]:
    return ["domains", domain.name, "records", index]


def _sourced(settings: MailSettings) -> Iterator[tuple[RecordSpec, list[str | int]]]:
    """Every record the stack would publish (DKIM with an empty key), with the config entry behind it."""
    for record in host_address_records(settings):
        yield record, ["publicIPv4" if record.type == "A" else "publicIPv6"]
    # A domain declared twice (differing in case or IDN form), a backup MX that is this server and a
    # retired selector equal to the active one are refused by config/checks.py; they are left out
    # here so the duplicate check does not report them a second time.
    seen_domains: set[str] = set()
    for domain in settings.domains:
        if domain.name in seen_domains:
            continue
        seen_domains.add(domain.name)
        base: list[str | int] = ["domains", domain.name]
        try:
            primary, *backups = mx_records(settings, domain)
        except _BUILD_ERRORS:
            primary, backups = None, []
        if primary is not None:
            yield primary, [*base, "mx", "priority"]
        for i, backup in enumerate(backups):
            if backup.content != settings.hostname:
                yield backup, [*base, "backupMx", i, "host"]
        try:
            spf: RecordSpec | None = spf_record(settings, domain)
        except _BUILD_ERRORS:
            spf = None  # an include config/checks.py refused
        if spf is not None:
            yield spf, [*base, "spf"]
        for selector in dict.fromkeys(dkim_selectors(domain)):
            yield dkim_record(settings, domain, selector, ""), [*base, "dkim"]
        yield dmarc_record(settings, domain), [*base, "dmarc"]
        tlsrpt = tlsrpt_record(settings, domain)
        if tlsrpt is not None:
            yield tlsrpt, [*base, "tlsrpt"]
        for record in srv_records(settings, domain):
            yield record, ["ports"]
        for i, rec in enumerate(domain.records):
            try:
                extra = extra_record(settings, domain, rec)
            except _BUILD_ERRORS:
                continue  # reported by record_syntax or names_not_addresses
            yield extra, _records_path(domain, i)
    for record in report_authorization_records(settings):
        source = record.name.partition("._report._dmarc.")[0]
        yield record, ["domains", source, "dmarc", "rua"]


def spf_budget(settings: MailSettings) -> Iterator[Problem]:
    """RFC 7208 §4.6.4: an SPF record needing more than 10 DNS lookups is a permerror for every receiver.

    Counted statically: each include, a, mx, ptr, exists and redirect of the record itself. Includes
    cost more once expanded (their own terms count too), which only `verify` can see.
    """
    for record, path in _sourced(settings):
        if record.type != "TXT" or not record.content.startswith("v=spf1"):
            continue
        terms = spf_lookup_terms(record.content)
        count = len(terms)
        if count > SPF_LOOKUP_LIMIT:
            at = [*path, "include"] if path[-1] == "spf" else [*path, "content"]
            yield problem(
                at,
                f"the SPF record of {record.name} needs {count} DNS lookups ({' '.join(terms)}); RFC 7208 §4.6.4 "
                f"allows {SPF_LOOKUP_LIMIT}, beyond that receivers treat SPF as a permanent error",
                f"remove includes (pulumi config rm --path '{_key(at)}[<index>]') or replace them with the provider's "
                "ip4:/ip6: ranges (mailstack:domains.<d>.spf.ip4 / ip6)",
            )


def record_syntax(settings: MailSettings) -> Iterator[Problem]:
    """Extra records whose content dnspython refuses, quoted TXT strings over 255 bytes, over-long names."""
    for domain in settings.domains:
        for i, rec in enumerate(domain.records):
            path = _records_path(domain, i)
            if rec.type == "TXT" and rec.content.strip().startswith('"'):
                yield from _quoted_txt(path, rec.content)
                continue
            try:
                extra_record(settings, domain, rec)
            except AddressError:
                continue  # names_not_addresses reports it
            except _BUILD_ERRORS as exc:
                yield problem(
                    [*path, "content"],
                    f"'{rec.content}' is not valid {rec.type} content ({exc})",
                    value="<content>",
                )
    seen: set[str] = set()
    for record, path in _sourced(settings):
        if record.name in seen:
            continue
        seen.add(record.name)
        try:
            dns.name.from_text(record.name)
        except dns.exception.DNSException as exc:
            # RFC 1035 §2.3.4: labels ≤63 bytes, names ≤255 bytes on the wire. Report-authorisation
            # names join two domains and are the ones that overflow in practice.
            yield problem(path, f"the record name {record.name} is not a valid DNS name ({exc})")


def _quoted_txt(path: KeyPath, content: str) -> Iterator[Problem]:
    """A user who quotes TXT content chose the string boundaries; mailstack does not re-split them."""
    try:
        parse_txt(content)
    except dns.exception.DNSException as exc:
        detail = "a quoted string is over 255 bytes (RFC 1035 §3.3)" if "too long" in str(exc) else str(exc)
        yield problem(
            [*path, "content"],
            f"quoted TXT content cannot be used as given: {detail}; give the text unquoted and mailstack "
            "splits it into 255-byte strings",
            value="'<text without quotes>'",
        )


def names_not_addresses(settings: MailSettings) -> Iterator[Problem]:
    """MX, CNAME and SRV targets and SPF domain terms must be names, never IP addresses.

    RFC 5321 §5.1 (an MX naming an address is a misconfiguration most senders refuse), RFC 2782 (SRV
    target), RFC 7208 §5.2/§6.1 (include:/redirect= take a domain; an address belongs in ip4:/ip6:).
    Configured SPF includes and backup MX hosts are checked with the raw config (config/checks.py).
    """
    relay = settings.relay
    if relay is not None and relay.spf_include and is_ip(relay.spf_include):
        yield problem(
            ["relay", "spfInclude"],
            f"'{relay.spf_include}' is an IP address; SPF include: takes a domain (put addresses in spf.ip4/ip6)",
            value="spf.relay-provider.example",
        )
    for domain in settings.domains:
        for i, rec in enumerate(domain.records):
            path = [*_records_path(domain, i), "content"]
            if rec.type in ("MX", "CNAME", "SRV"):
                target = rec.content.split()[-1] if rec.content.split() else ""
                if is_ip(target.rstrip(".")):
                    yield problem(
                        path, f"'{target}' is an IP address; a {rec.type} record must name a host", value="<host name>"
                    )
            elif rec.type == "TXT":
                try:
                    text = parse_txt(rec.content.strip())
                except dns.exception.DNSException:
                    continue  # record_syntax reports it
                if text.startswith("v=spf1"):
                    yield from _spf_terms(path, text)


def _spf_terms(path: KeyPath, text: str) -> Iterator[Problem]:
    for term in text.split()[1:]:
        name = spf_term_name(term)
        rest = term.lstrip("+-~?")[len(name) :]
        if rest[:1] not in (":", "="):
            continue
        value = rest[1:]
        if name in ("include", "exists", "redirect", "a", "mx", "ptr") and _looks_like_address(value):
            yield problem(
                path,
                f"SPF term '{term}' names an IP address where a domain is required (RFC 7208); use ip4:/ip6: for addresses",
                value="<SPF text>",
            )
        elif name in ("ip4", "ip6") and not _is_network(value, name):
            yield problem(
                path, f"SPF term '{term}' needs an {name} address or network (RFC 7208 §5.6)", value="<SPF text>"
            )


def _looks_like_address(value: str) -> bool:
    return is_ip(value.split("/", 1)[0])


def _is_network(value: str, kind: str) -> bool:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return network.version == (4 if kind == "ip4" else 6)


def duplicates(settings: MailSettings) -> Iterator[Problem]:
    """Records the stack would publish twice, or that cannot coexist.

    - the same record twice (Cloudflare refuses the second: error 81058);
    - two records with one identity, e.g. a second SPF TXT at a name (RFC 7208 §3.2: permerror), a
      second DMARC record (RFC 7489 §6.6.3: no policy at all), two A records for the mail host;
    - a CNAME beside any other record at its name (RFC 1034 §3.6.2, RFC 2181 §10.1).
    """
    by_key: dict[str, tuple[RecordSpec, list[str | int]]] = {}
    names: dict[str, list[tuple[RecordSpec, list[str | int]]]] = {}
    for record, path in _sourced(settings):
        names.setdefault(record.name, []).append((record, path))
        first = by_key.get(record.key)
        if first is None:
            by_key[record.key] = (record, path)
            continue
        other, other_path = first
        if other.content == record.content:
            message = f"publishes {record.type} {record.name} {_show(record)} a second time (see {_key(other_path)})"
        else:
            message = (
                f"adds a second {_kind(record)} at {record.name} ({_show(record)}), beside {_show(other)} from "
                f"{_key(other_path)}; only one can be published"
            )
        yield problem(path, message, rm_command(path))
    for name, entries in names.items():
        cnames = [(r, p) for r, p in entries if r.type == "CNAME"]
        if cnames and len(entries) > 1:
            record, path = cnames[0]
            yield problem(
                path,
                f"a CNAME at {name} cannot coexist with the other records there (RFC 1034 §3.6.2)",
                rm_command(path),
            )


def _kind(record: RecordSpec) -> str:
    if record.type == "TXT":
        tag = record.key.rsplit("-", 1)[-1]
        return {"spf1": "SPF record", "dmarc1": "DMARC record", "dkim1": "DKIM key", "tlsrptv1": "TLS-RPT record"}.get(
            tag, "TXT record"
        )
    return f"{record.type} record"


def _show(record: RecordSpec) -> str:
    content = record.content if len(record.content) <= 60 else record.content[:57] + "..."
    return f"'{content}'"


def _key(path: KeyPath) -> str:
    return key_path(path)


def zone_ids(settings: MailSettings) -> Iterator[Problem]:
    """Domains sharing a Cloudflare zone must not name different zone ids (one would be silently ignored)."""
    first: dict[str, tuple[str, str]] = {}
    for domain in settings.domains:
        if domain.zone_id is None:
            continue
        seen = first.setdefault(domain.zone, (domain.zone_id, domain.name))
        if seen[0] != domain.zone_id:
            path = ["domains", domain.name, "zoneId"]
            yield problem(
                path,
                f"zone {domain.zone} already has zoneId {seen[0]} (from {seen[1]}); one zone has one id",
                value=seen[0],
            )


ALL = (spf_budget, record_syntax, names_not_addresses, duplicates, zone_ids)
"""The record checks `load_settings` runs (through config.settings_checks.ALL)."""
