"""Record builders: the exact record sets of the dev stack and the production example, and each record rule."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from cryptography.hazmat.primitives import serialization

from mailstack.config import MailSettings, load_settings
from mailstack.config.mta_sts import policy_id
from mailstack.config.records import (
    RecordSpec,
    dkim_key_base64,
    dkim_selectors,
    mail_records,
    owner_name,
    parse_txt,
    quoted_txt,
    spf_lookup_count,
    static_records,
    to_rdata,
    txt_strings,
)
from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, prod_config_values
from tests.harness import rsa_key_pem, stack_config

PUBLIC_PEM = rsa_key_pem(2048, 0)[1]


def spki_base64(pem: str) -> str:
    """The key's DER SubjectPublicKeyInfo in base64, derived with `cryptography` (not by PEM text surgery)."""
    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def keys_for(settings: MailSettings, pem: str = PUBLIC_PEM) -> dict[tuple[str, str], str]:
    return {(d.name, s): pem for d in settings.domains for s in dkim_selectors(d)}


def dev_settings() -> MailSettings:
    return load_settings(stack_config(DEV_STACK), stack="dev", home="/home/u")


def prod_settings() -> MailSettings:
    return load_settings(prod_config_values(), secret_keys=PROD_SECRET_KEYS, stack="prod")


BASE: dict[str, Any] = {
    "mailstack:hostname": "mail.example.org",
    "mailstack:publicIPv4": "192.0.2.10",
    "mailstack:domains": {"example.org": {}},
    "mailstack:accounts": {"me@example.org": {}},
}


def settings_with(**changes: Any) -> MailSettings:
    raw = {**BASE, **{f"mailstack:{k}": v for k, v in changes.items()}}
    raw = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
    return load_settings(raw, secret_keys={"mailstack:relay"}, stack="t")


def rows(records: list[RecordSpec]) -> list[tuple[str, str, str, str, int | None, int]]:
    return [(r.zone, r.name, r.type, r.content, r.priority, r.ttl) for r in records]


NULL_SRV = "0 0 ."


def test_dev_stack_record_set_is_exact() -> None:
    """example.test on manual DNS: MX, A, SPF, DKIM, DMARC with rua, SRV for 465/993 and null SRV for the rest."""
    records = mail_records(dev_settings(), keys_for(dev_settings()))
    z = "example.test"
    assert rows(records) == [
        (z, "_dmarc.example.test", "TXT", "v=DMARC1; p=none; rua=mailto:postmaster@example.test", None, 3600),
        (z, "_imap._tcp.example.test", "SRV", NULL_SRV, 0, 3600),
        (z, "_imaps._tcp.example.test", "SRV", "1 993 mail.example.test", 0, 3600),
        (z, "_pop3._tcp.example.test", "SRV", NULL_SRV, 0, 3600),
        (z, "_pop3s._tcp.example.test", "SRV", NULL_SRV, 0, 3600),
        (z, "_submission._tcp.example.test", "SRV", NULL_SRV, 0, 3600),
        (z, "_submissions._tcp.example.test", "SRV", "1 465 mail.example.test", 0, 3600),
        (z, "example.test", "MX", "mail.example.test", 10, 3600),
        (z, "example.test", "TXT", "v=spf1 mx -all", None, 3600),
        (z, "mail._domainkey.example.test", "TXT", f"v=DKIM1; k=rsa; p={spki_base64(PUBLIC_PEM)}", None, 3600),
        (z, "mail.example.test", "A", "127.0.0.1", None, 3600),
    ]
    assert all(r.purpose for r in records)


def test_prod_example_record_set_is_exact() -> None:
    """Two domains on Cloudflare: backup MX at 20 with its SPF include, Brevo include, DMARC p=none; sp=reject."""
    records = mail_records(prod_settings(), keys_for(prod_settings()))
    dkim = f"v=DKIM1; k=rsa; p={spki_base64(PUBLIC_PEM)}"
    spf = "v=spf1 mx include:spf.brevo.com include:spf.backup-provider.net -all"
    dmarc = "v=DMARC1; p=none; sp=reject; rua=mailto:dmarc@example.com; ruf=mailto:dmarc@example.com; ri=86400"
    sts = "version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmx: mx.backup-provider.net\r\nmax_age: 604800\r\n"
    expected = []
    for z in ("another.com", "example.com"):
        expected += [
            (z, f"_dmarc.{z}", "TXT", dmarc, None, 3600),
            # No null SRV (`_imap`, `_pop3`, `_pop3s`, `_submission`) at Cloudflare: srv_records.
            (z, f"_imaps._tcp.{z}", "SRV", "1 993 mail.example.com", 0, 3600),
            # Cloudflare hosts the policy (a Worker), so MTA-STS is on by default, in testing mode.
            (z, f"_mta-sts.{z}", "TXT", f"v=STSv1; id={policy_id(sts)}", None, 3600),
            (z, f"_submissions._tcp.{z}", "SRV", "1 465 mail.example.com", 0, 3600),
        ]
        if z == "example.com":
            # another.com sends its reports to example.com: RFC 7489 §7.1 authorisation.
            expected.append((z, "another.com._report._dmarc.example.com", "TXT", "v=DMARC1", None, 3600))
        expected += [
            (z, z, "MX", "mail.example.com", 10, 3600),
            (z, z, "MX", "mx.backup-provider.net", 20, 3600),
            (z, z, "TXT", spf, None, 3600),
            (z, f"mail._domainkey.{z}", "TXT", dkim, None, 3600),
        ]
    expected.append(("example.com", "mail.example.com", "A", "93.184.215.14", None, 3600))
    assert rows(records) == expected


def test_records_export_shape() -> None:
    """The dnsRecords contract: {zone, name, type, content, priority, ttl, purpose}."""
    record = static_records(dev_settings())[7]
    assert record.as_dict() == {
        "zone": "example.test",
        "name": "example.test",
        "type": "MX",
        "content": "mail.example.test",
        "priority": 10,
        "ttl": 3600,
        "purpose": "inbound mail for example.test goes to mail.example.test (RFC 5321 §5.1)",
    }


def test_dkim_txt_splits_into_255_byte_strings_that_join_to_the_key() -> None:
    settings = dev_settings()
    dkim = next(r for r in mail_records(settings, keys_for(settings)) if r.name.startswith("mail._domainkey"))
    quoted = quoted_txt(dkim.content)
    parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, quoted)
    strings = list(parsed.strings)  # type: ignore[attr-defined]
    assert [len(s) for s in strings] == [255, len(dkim.content) - 255]
    assert b"".join(strings).decode() == dkim.content
    assert b"".join(strings).decode().split("p=", 1)[1] == spki_base64(PUBLIC_PEM)
    # Cloudflare's stored form: each string quoted, joined by exactly one space.
    assert quoted == '"' + dkim.content[:255] + '" "' + dkim.content[255:] + '"'


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_dkim_key_base64_is_the_spki_body(bits: int) -> None:
    pem = rsa_key_pem(bits, 0)[1]
    text = quoted_txt(f"v=DKIM1; k=rsa; p={dkim_key_base64(pem)}")
    strings = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text).strings  # type: ignore[attr-defined]
    assert all(len(s) <= 255 for s in strings)
    assert b"".join(strings).decode() == f"v=DKIM1; k=rsa; p={spki_base64(pem)}"


def test_txt_quoting_escapes_quotes_and_backslashes() -> None:
    text = 'say "hi" \\ bye'
    assert quoted_txt(text) == '"say \\"hi\\" \\\\ bye"'
    assert parse_txt(quoted_txt(text)) == text


def test_txt_split_counts_bytes_not_characters() -> None:
    text = "é" * 200  # 400 bytes
    assert [len(s) for s in txt_strings(text)] == [255, 145]
    assert parse_txt(quoted_txt(text)) == text


def test_spf_terms_order_and_policy() -> None:
    settings = settings_with(
        domains={
            "example.org": {
                "spf": {
                    "policy": "~all",
                    "include": ["spf.partner.example", "spf.brevo.com"],
                    "ip4": ["198.51.100.7", "198.51.100.0/28"],
                    "ip6": ["2001:db8::1"],
                },
                "backupMx": [{"host": "mx2.backup.example", "priority": 30, "spfInclude": "spf.backup.example"}],
            }
        },
        relay={"preset": "brevo", "username": "u", "password": "p"},
    )
    spf = next(r for r in static_records(settings) if r.content.startswith("v=spf1"))
    # Relay include first; the include the user also listed is not repeated.
    assert spf.content == (
        "v=spf1 mx ip4:198.51.100.7 ip4:198.51.100.0/28 ip6:2001:db8::1 include:spf.brevo.com "
        "include:spf.partner.example include:spf.backup.example ~all"
    )
    assert spf_lookup_count(spf.content) == 4


def test_spf_lookup_count_counts_each_querying_term() -> None:
    text = "v=spf1 a mx:mx.example -ptr ?exists:%{i}.x.example include:a.example ip4:192.0.2.1 redirect=b.example"
    assert spf_lookup_count(text) == 6


def test_dmarc_tags_in_order_and_never_pct() -> None:
    settings = settings_with(
        domains={
            "example.org": {
                "dmarc": {
                    "policy": "reject",
                    "subdomainPolicy": "quarantine",
                    "adkim": "s",
                    "aspf": "r",
                    "rua": ["mailto:a@example.org", "mailto:b@example.org"],
                    "fo": "1",
                }
            }
        },
        aliases={"a@example.org": "me@example.org", "b@example.org": "me@example.org"},
    )
    dmarc = next(r for r in static_records(settings) if r.name == "_dmarc.example.org")
    assert dmarc.content == (
        "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; rua=mailto:a@example.org,mailto:b@example.org; fo=1"
    )
    assert "pct=" not in dmarc.content


def test_default_dmarc_is_quarantine_without_reports() -> None:
    dmarc = next(r for r in static_records(settings_with()) if r.name == "_dmarc.example.org")
    assert dmarc.content == "v=DMARC1; p=quarantine"


def test_tlsrpt_record_when_set() -> None:
    settings = settings_with(
        domains={"example.org": {"tlsrpt": {"rua": ["mailto:tls@example.org", "https://report.example/tls"]}}}
    )
    tlsrpt = [r for r in static_records(settings) if r.name == "_smtp._tls.example.org"]
    assert rows(tlsrpt) == [
        (
            "example.org",
            "_smtp._tls.example.org",
            "TXT",
            "v=TLSRPTv1; rua=mailto:tls@example.org,https://report.example/tls",
            None,
            3600,
        )
    ]


def test_enabled_plaintext_services_get_real_srv_after_implicit_tls() -> None:
    settings = settings_with(ports={"submission": True, "imap": True, "pop3": True})
    srv = [r for r in static_records(settings) if r.type == "SRV"]
    assert rows(srv) == [
        ("example.org", "_imap._tcp.example.org", "SRV", "1 143 mail.example.org", 10, 3600),
        ("example.org", "_imaps._tcp.example.org", "SRV", "1 993 mail.example.org", 0, 3600),
        ("example.org", "_pop3._tcp.example.org", "SRV", "1 110 mail.example.org", 10, 3600),
        ("example.org", "_pop3s._tcp.example.org", "SRV", "1 995 mail.example.org", 0, 3600),
        ("example.org", "_submission._tcp.example.org", "SRV", "1 587 mail.example.org", 10, 3600),
        ("example.org", "_submissions._tcp.example.org", "SRV", "1 465 mail.example.org", 0, 3600),
    ]


def test_no_address_records_when_the_hostname_zone_is_not_managed() -> None:
    settings = replace(settings_with(hostname="mx1.provider.example"), public_ipv6="2001:db8::25")
    assert [r for r in static_records(settings) if r.type in ("A", "AAAA")] == []


def test_address_records_for_a_hostname_in_a_managed_zone() -> None:
    # publicIPv6 is refused by the configuration checks for now (config/checks.py: the Docker provider
    # cannot publish both address families); the record builder still makes the AAAA for it.
    settings = replace(settings_with(), public_ipv6="2001:db8::25")
    assert rows([r for r in static_records(settings) if r.type in ("A", "AAAA")]) == [
        ("example.org", "mail.example.org", "A", "192.0.2.10", None, 3600),
        ("example.org", "mail.example.org", "AAAA", "2001:db8::25", None, 3600),
    ]


def test_report_authorisation_only_for_other_managed_domains() -> None:
    settings = settings_with(
        domains={
            "example.org": {"dmarc": {"rua": ["mailto:d@example.org"]}},
            "sub.example.org": {"dmarc": {"rua": ["mailto:d@example.org"]}},
            "other.example": {
                "dmarc": {
                    "rua": ["mailto:d@example.org", "mailto:x@unmanaged.example"],
                    "ruf": ["mailto:d@example.org"],
                }
            },
        },
        accounts={"me@example.org": {}, "d@example.org": {}},
    )
    auth = [r for r in static_records(settings) if "._report._dmarc." in r.name]
    # Same domain and parent domain need none (RFC 9990 §4); rua and ruf to one place give one record.
    assert rows(auth) == [("example.org", "other.example._report._dmarc.example.org", "TXT", "v=DMARC1", None, 3600)]


def test_extra_records_are_normalised() -> None:
    settings = settings_with(
        domains={
            "example.org": {
                "records": [
                    {"type": "TXT", "content": "google-site-verification=abc"},
                    {"name": "_acme-challenge", "type": "TXT", "content": '"part one " "part two"', "ttl": 300},
                    {"name": "WWW.Example.org.", "type": "CNAME", "content": "Host.Provider.Example."},
                    {"name": "_sip._tls", "type": "SRV", "content": "5 443 sip.provider.example", "priority": 100},
                    {"name": "@", "type": "CAA", "content": '0 issue "letsencrypt.org"'},
                    {"name": "v6", "type": "AAAA", "content": "2001:DB8::0:1"},
                ]
            }
        }
    )
    extras = [r for r in static_records(settings) if r.purpose == "extra record from config"]
    assert rows(extras) == [
        ("example.org", "_acme-challenge.example.org", "TXT", "part one part two", None, 300),
        ("example.org", "_sip._tls.example.org", "SRV", "5 443 sip.provider.example", 100, 3600),
        ("example.org", "example.org", "CAA", '0 issue "letsencrypt.org"', None, 3600),
        ("example.org", "example.org", "TXT", "google-site-verification=abc", None, 3600),
        ("example.org", "v6.example.org", "AAAA", "2001:db8::1", None, 3600),
        ("example.org", "www.example.org", "CNAME", "host.provider.example", None, 3600),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("@", "example.org"),
        ("", "example.org"),
        ("www", "www.example.org"),
        ("www.example.org", "www.example.org"),
        ("www.example.org.", "www.example.org"),
        ("_dmarc", "_dmarc.example.org"),
        ("bücher", "xn--bcher-kva.example.org"),
    ],
)
def test_owner_name(name: str, expected: str) -> None:
    assert owner_name(name, "example.org") == expected


def test_rdata_goes_through_dnspython() -> None:
    mx = RecordSpec("example.org", "example.org", "MX", "mail.example.org", 10, 3600, "")
    null_srv = RecordSpec("example.org", "_imap._tcp.example.org", "SRV", "0 0 .", 0, 3600, "")
    srv = RecordSpec("example.org", "_imaps._tcp.example.org", "SRV", "1 993 mail.example.org", 0, 3600, "")
    assert to_rdata(mx).to_text() == "10 mail.example.org."
    assert to_rdata(null_srv).to_text() == "0 0 0 ."
    assert to_rdata(srv).to_text() == "0 1 993 mail.example.org."


def test_resource_keys_are_the_record_identity() -> None:
    """Type and name; the exchange for MX; the `v=` tag (or a digest) for TXT."""
    settings = prod_settings()
    keys = sorted(r.key for r in mail_records(settings, keys_for(settings)) if r.zone == "example.com")
    assert keys == [
        "a-mail.example.com",
        "mx-example.com-mail.example.com",
        "mx-example.com-mx.backup-provider.net",
        "srv-_imaps._tcp.example.com",
        "srv-_submissions._tcp.example.com",
        "txt-_dmarc.example.com-dmarc1",
        "txt-_mta-sts.example.com-stsv1",
        "txt-another.com._report._dmarc.example.com-dmarc1",
        "txt-example.com-spf1",
        "txt-mail._domainkey.example.com-dkim1",
    ]
    other = RecordSpec("example.org", "example.org", "TXT", "google-site-verification=abc", None, 1, "")
    assert other.key == "txt-example.org-500f5e4b"


def test_config_order_does_not_change_records_or_keys() -> None:
    """Reordering domains or backup MX in the stack file must not rename (and so replace) any record."""
    backups = [{"host": "mx2.b.example", "priority": 20}, {"host": "mx3.c.example", "priority": 30}]
    a = settings_with(domains={"example.org": {"backupMx": backups}, "example.net": {}})
    b = settings_with(domains={"example.net": {}, "example.org": {"backupMx": list(reversed(backups))}})
    records_a = mail_records(a, keys_for(a))
    records_b = mail_records(b, keys_for(b))
    assert [r.key for r in records_a] == [r.key for r in records_b]
    # MX priorities travel with their host, so the records are equal too.
    assert records_a == records_b
