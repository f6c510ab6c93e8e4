"""DNS record rules (config/record_checks.py) through load_settings: the exact problems, keys and fixes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailstack.config import ConfigError, load_settings

BASE: dict[str, Any] = {
    "mailstack:hostname": "mail.example.org",
    "mailstack:publicIPv4": "192.0.2.10",
    "mailstack:domains": {"example.org": {}},
    "mailstack:accounts": {"me@example.org": {}},
}
D = 'mailstack:domains["example.org"]'


def problems(**changes: Any) -> list[tuple[str, str, str]]:
    raw = {**BASE, **{f"mailstack:{k}": v for k, v in changes.items()}}
    raw = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
    with pytest.raises(ConfigError) as info:
        load_settings(raw, secret_keys={"mailstack:relay"}, stack="t")
    return [(p.key, p.message, p.fix) for p in info.value.problems]


def domain(**fields: Any) -> dict[str, Any]:
    return {"example.org": fields}


def test_spf_over_ten_lookups() -> None:
    includes = [f"spf{i}.provider.example" for i in range(10)]
    assert problems(domains=domain(spf={"include": includes})) == [
        (
            f"{D}.spf.include",
            "the SPF record of example.org needs 11 DNS lookups (mx "
            + " ".join(f"include:{i}" for i in includes)
            + "); RFC 7208 §4.6.4 allows 10, beyond that receivers treat SPF as a permanent error",
            f"remove includes (pulumi config rm --path '{D}.spf.include[<index>]') or replace them with the "
            "provider's ip4:/ip6: ranges (mailstack:domains.<d>.spf.ip4 / ip6)",
        )
    ]


def test_ten_lookups_are_allowed() -> None:
    includes = [f"spf{i}.provider.example" for i in range(9)]
    raw = {**BASE, "mailstack:domains": domain(spf={"include": includes})}
    settings = load_settings({k: json.dumps(v) if isinstance(v, dict) else v for k, v in raw.items()}, stack="t")
    assert settings.domains[0].spf.include == tuple(includes)


def test_extra_spf_record_counts_too() -> None:
    text = "v=spf1 " + " ".join(f"a:h{i}.example" for i in range(11)) + " -all"
    assert problems(domains=domain(records=[{"name": "news", "type": "TXT", "content": text}]))[0][:1] == (
        f"{D}.records[0].content",
    )


def test_quoted_txt_string_over_255_bytes() -> None:
    content = '"' + "a" * 256 + '"'
    assert problems(domains=domain(records=[{"name": "x", "type": "TXT", "content": content}])) == [
        (
            f"{D}.records[0].content",
            "quoted TXT content cannot be used as given: a quoted string is over 255 bytes (RFC 1035 §3.3); "
            "give the text unquoted and mailstack splits it into 255-byte strings",
            f"pulumi config set --path '{D}.records[0].content' '<text without quotes>'",
        )
    ]


def test_unquoted_long_txt_is_fine() -> None:
    raw = {**BASE, "mailstack:domains": domain(records=[{"name": "x", "type": "TXT", "content": "a" * 600}])}
    load_settings({k: json.dumps(v) if isinstance(v, dict) else v for k, v in raw.items()}, stack="t")


def test_invalid_extra_content() -> None:
    assert problems(
        domains=domain(
            records=[
                {"name": "a", "type": "A", "content": "not-an-ip"},
                {"name": "c", "type": "CAA", "content": "issue letsencrypt.org"},
                {"name": "_s._tcp", "type": "SRV", "content": "0 0 443 sip.example 9", "priority": 1},
            ]
        )
    ) == [
        (
            f"{D}.records[0].content",
            "'not-an-ip' is not valid A content ('not-an-ip' does not appear to be an IPv4 or IPv6 address)",
            f"pulumi config set --path '{D}.records[0].content' <content>",
        ),
        (
            f"{D}.records[1].content",
            "'issue letsencrypt.org' is not valid CAA content (expecting an integer)",
            f"pulumi config set --path '{D}.records[1].content' <content>",
        ),
        (
            f"{D}.records[2].content",
            "'0 0 443 sip.example 9' is not valid SRV content (SRV content '0 0 443 sip.example 9' must be "
            "'<weight> <port> <target>' (priority is separate))",
            f"pulumi config set --path '{D}.records[2].content' <content>",
        ),
    ]


def test_addresses_where_names_are_required() -> None:
    assert problems(
        domains=domain(
            records=[
                {"type": "MX", "content": "192.0.2.1", "priority": 5},
                {"name": "www", "type": "CNAME", "content": "192.0.2.2"},
                {"name": "news", "type": "TXT", "content": "v=spf1 include:192.0.2.3 ip4:mail.example.org -all"},
            ]
        ),
        relay={"host": "smtp.relay.example", "username": "u", "password": "p", "spfInclude": "198.51.100.1"},
    ) == [
        (
            "mailstack:relay.spfInclude",
            "'198.51.100.1' is an IP address; SPF include: takes a domain (put addresses in spf.ip4/ip6)",
            "pulumi config set --path 'mailstack:relay.spfInclude' spf.relay-provider.example",
        ),
        (
            f"{D}.records[0].content",
            "'192.0.2.1' is an IP address; a MX record must name a host",
            f"pulumi config set --path '{D}.records[0].content' <host name>",
        ),
        (
            f"{D}.records[1].content",
            "'192.0.2.2' is an IP address; a CNAME record must name a host",
            f"pulumi config set --path '{D}.records[1].content' <host name>",
        ),
        (
            f"{D}.records[2].content",
            "SPF term 'include:192.0.2.3' names an IP address where a domain is required (RFC 7208); "
            "use ip4:/ip6: for addresses",
            f"pulumi config set --path '{D}.records[2].content' <SPF text>",
        ),
        (
            f"{D}.records[2].content",
            "SPF term 'ip4:mail.example.org' needs an ip4 address or network (RFC 7208 §5.6)",
            f"pulumi config set --path '{D}.records[2].content' <SPF text>",
        ),
    ]


def test_duplicates_and_conflicts() -> None:
    assert problems(
        domains=domain(
            backupMx=[{"host": "mx2.b.example", "priority": 20}, {"host": "MX2.b.example", "priority": 30}],
            records=[
                {"type": "TXT", "content": "v=spf1 -all"},
                {"type": "MX", "content": "mail.example.org", "priority": 10},
                {"name": "mail", "type": "A", "content": "192.0.2.99"},
                {"name": "_dmarc", "type": "CNAME", "content": "dmarc.provider.example"},
                {"name": "_dmarc", "type": "TXT", "content": "v=DMARC1; p=reject"},
            ],
        )
    ) == [
        (
            f"{D}.backupMx[1].host",
            f"publishes MX example.org 'mx2.b.example' a second time (see {D}.backupMx[0].host)",
            f"pulumi config rm --path '{D}.backupMx[1].host'",
        ),
        (
            f"{D}.records[0]",
            "adds a second SPF record at example.org ('v=spf1 -all'), beside 'v=spf1 mx -all' from "
            f"{D}.spf; only one can be published",
            f"pulumi config rm --path '{D}.records[0]'",
        ),
        (
            f"{D}.records[1]",
            f"publishes MX example.org 'mail.example.org' a second time (see {D}.mx.priority)",
            f"pulumi config rm --path '{D}.records[1]'",
        ),
        (
            f"{D}.records[2]",
            "adds a second A record at mail.example.org ('192.0.2.99'), beside '192.0.2.10' from "
            "mailstack:publicIPv4; only one can be published",
            f"pulumi config rm --path '{D}.records[2]'",
        ),
        (
            f"{D}.records[4]",
            "adds a second DMARC record at _dmarc.example.org ('v=DMARC1; p=reject'), beside "
            f"'v=DMARC1; p=quarantine' from {D}.dmarc; only one can be published",
            f"pulumi config rm --path '{D}.records[4]'",
        ),
        (
            f"{D}.records[3]",
            "a CNAME at _dmarc.example.org cannot coexist with the other records there (RFC 1034 §3.6.2)",
            f"pulumi config rm --path '{D}.records[3]'",
        ),
    ]


def test_report_authorisation_name_too_long() -> None:
    long_domain = ("a" * 60 + ".") * 2 + "example"
    dest = ("b" * 60 + ".") * 2 + "example.org"
    problem_list = problems(
        domains={
            "example.org": {},
            long_domain: {"dmarc": {"rua": [f"mailto:d@{dest}"]}},
            dest: {},
        },
        accounts={"me@example.org": {}, f"d@{dest}": {}},
    )
    assert [(k, m.split(" (")[0]) for k, m, _ in problem_list] == [
        (
            f'mailstack:domains["{long_domain}"].dmarc.rua',
            f"the record name {long_domain}._report._dmarc.{dest} is not a valid DNS name",
        )
    ]


def test_one_zone_one_zone_id() -> None:
    assert problems(
        domains={
            "example.org": {"zoneId": "0" * 32},
            "lists.example.org": {"zone": "example.org", "zoneId": "1" * 32},
        }
    ) == [
        (
            'mailstack:domains["lists.example.org"].zoneId',
            f"zone example.org already has zoneId {'0' * 32} (from example.org); one zone has one id",
            f"pulumi config set --path 'mailstack:domains[\"lists.example.org\"].zoneId' {'0' * 32}",
        )
    ]
