"""MailDns under Pulumi's mocks: what reaches Cloudflare, what the stack exports, and that re-runs change nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype

from mailstack.config import load_settings
from mailstack.config.records import RecordSpec, dkim_selectors, mail_records, static_records
from mailstack.config.zonefile import render_zone_files
from tests import harness
from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, prod_config_values
from tests.harness import ROOT, Registration, RunResult, run_program, stack_config, with_values

DNS_PROGRAM = ROOT / "tests" / "programs" / "mail_dns.py"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
EXAMPLE_COM_ZONE_ID = "0123456789abcdef0123456789abcdef"


def prod_config(**changes: Any) -> dict[str, Any]:
    # The DNS-only program needs no SSH key file, unlike the full program on the prod example.
    return with_values(prod_config_values(), **changes)


def run(config: dict[str, Any], *, stack: str, preview: bool = False) -> RunResult:
    result = run_program(config, PROD_SECRET_KEYS, stack=stack, program=DNS_PROGRAM, preview=preview)
    assert result.error is None, result.error
    return result


def public_keys(result: RunResult) -> dict[tuple[str, str], str]:
    """The public key each DKIM PrivateKey returned, by (domain, selector) from its name `dkim-<sel>-<domain>`."""
    keys = {}
    for reg in result.by_type("tls:index/privateKey:PrivateKey"):
        if not reg.parent.endswith("mailstack:index:DkimKeys::dkim"):
            continue  # e.g. the self-signed TLS key of the full program
        _, selector, domain = reg.name.split("-", 2)
        keys[(domain, selector)] = reg.state["publicKeyPem"]
    return keys


def expected_records(config: dict[str, Any], stack: str, result: RunResult) -> list[RecordSpec]:
    settings = load_settings(config, secret_keys=PROD_SECRET_KEYS, stack=stack)
    keys = public_keys(result)
    assert sorted(keys) == sorted((d.name, s) for d in settings.domains for s in dkim_selectors(d))
    return mail_records(settings, keys)


def quoted(text: str) -> str:
    """Cloudflare's TXT storage form, spelled out: 255-byte strings, quoted, one space between."""
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))


def cloudflare_inputs(record: RecordSpec, zone_id: str, stack: str) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "zoneId": zone_id,
        "name": record.name,
        "type": record.type,
        "ttl": float(record.ttl),
        "proxied": False,
        "comment": f"managed by mailstack (stack {stack})",
    }
    if record.type == "TXT":
        inputs["content"] = quoted(record.content)
    elif record.type == "MX":
        inputs.update(content=record.content, priority=float(record.priority or 0))
    elif record.type == "SRV":
        weight, port, target = record.content.split()
        priority = float(record.priority or 0)
        inputs.update(
            priority=priority,
            data={"priority": priority, "weight": float(weight), "port": float(port), "target": target},
        )
    else:
        inputs["content"] = record.content
    return inputs


def lookup_id(zone: str) -> str:
    """The id tests/harness.py's getZone mock answers for a zone name."""
    return hashlib.md5(zone.encode()).hexdigest()


def dns_records(result: RunResult) -> dict[str, Registration]:
    return {r.name: r for r in result.by_type(DNS_RECORD)}


def test_prod_publishes_every_record_at_cloudflare_exactly() -> None:
    config = prod_config()
    result = run(config, stack="prod")
    records = expected_records(config, "prod", result)
    registered = dns_records(result)
    component = result.one("mailstack:index:MailDns", "dns").urn
    assert sorted(registered) == sorted(f"dns-{r.key}" for r in records)
    assert len(registered) == 18
    for record in records:
        reg = registered[f"dns-{record.key}"]
        assert reg.plain_inputs == cloudflare_inputs(record, lookup_id(record.zone), "prod"), record.key
        assert reg.parent == component
        assert reg.custom


def test_no_null_srv_at_cloudflare() -> None:
    """A `.` SRV target does not come back from Cloudflare as `.` (config.records.srv_records cites the
    provider source): only the SRVs that point at the host are published, with these exact inputs."""
    result = run(prod_config(), stack="prod")
    srv = {name: reg.plain_inputs for name, reg in dns_records(result).items() if reg.plain_inputs["type"] == "SRV"}
    expected = {}
    for domain in ("another.com", "example.com"):
        for label, port in (("_imaps._tcp", 993), ("_submissions._tcp", 465)):
            expected[f"dns-srv-{label}.{domain}"] = {
                "zoneId": lookup_id(domain),
                "name": f"{label}.{domain}",
                "type": "SRV",
                "ttl": 3600.0,
                "priority": 0.0,
                "data": {"priority": 0.0, "weight": 1.0, "port": float(port), "target": "mail.example.com"},
                "proxied": False,
                "comment": "managed by mailstack (stack prod)",
            }
    assert srv == expected
    # Nor in what the stack exports for Cloudflare (records, zone files): `verify` expects what is published.
    outputs = result.plain_outputs
    assert [r["name"] for r in outputs["dnsRecords"] if r["type"] == "SRV"] == [
        "_imaps._tcp.another.com",
        "_submissions._tcp.another.com",
        "_imaps._tcp.example.com",
        "_submissions._tcp.example.com",
    ]
    assert not any(" SRV 0 0 0 ." in text for text in outputs["zoneFile"].values())


def test_manual_dns_keeps_null_srv() -> None:
    """With `dns.provider: manual` the zone files carry the null SRVs (RFC 6186 §3.4)."""
    settings = load_settings(stack_config(DEV_STACK), stack="dev")
    assert [(r.name, r.priority, r.content) for r in static_records(settings) if r.type == "SRV"] == [
        ("_imap._tcp.example.test", 0, "0 0 ."),
        ("_imaps._tcp.example.test", 0, "1 993 mail.example.test"),
        ("_pop3._tcp.example.test", 0, "0 0 ."),
        ("_pop3s._tcp.example.test", 0, "0 0 ."),
        ("_submission._tcp.example.test", 0, "0 0 ."),
        ("_submissions._tcp.example.test", 0, "1 465 mail.example.test"),
    ]
    zone = render_zone_files(static_records(settings), stack="dev", provider="manual")["example.test"]
    assert "_pop3._tcp.example.test. 3600 IN SRV 0 0 0 ." in zone


def test_null_srv_follows_each_domains_own_backend() -> None:
    """`domains.<d>.dns.provider: manual` keeps the null SRVs of that domain only."""
    config = prod_config(**{"domains/another.com/dns": {"provider": "manual"}})
    settings = load_settings(config, secret_keys=PROD_SECRET_KEYS, stack="prod")
    assert [(r.name, r.content) for r in static_records(settings) if r.type == "SRV"] == [
        ("_imap._tcp.another.com", "0 0 ."),
        ("_imaps._tcp.another.com", "1 993 mail.example.com"),
        ("_pop3._tcp.another.com", "0 0 ."),
        ("_pop3s._tcp.another.com", "0 0 ."),
        ("_submission._tcp.another.com", "0 0 ."),
        ("_submissions._tcp.another.com", "1 465 mail.example.com"),
        ("_imaps._tcp.example.com", "1 993 mail.example.com"),
        ("_submissions._tcp.example.com", "1 465 mail.example.com"),
    ]


def test_every_cloudflare_record_is_unproxied_full_name_and_txt_is_split() -> None:
    result = run(prod_config(), stack="prod")
    for reg in result.by_type(DNS_RECORD):
        inputs = reg.plain_inputs
        assert inputs["proxied"] is False
        name = inputs["name"]
        assert not name.endswith(".")
        assert any(name == zone or name.endswith("." + zone) for zone in ("example.com", "another.com"))
        if inputs["type"] == "TXT":
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, inputs["content"])
            strings = rdata.strings  # type: ignore[attr-defined]
            assert all(len(s) <= 255 for s in strings)
            # Re-rendering the parsed strings gives back exactly what was sent: no perpetual diff.
            assert rdata.to_text() == inputs["content"]
    dkim = dns_records(result)["dns-txt-mail._domainkey.example.com-dkim1"].plain_inputs["content"]
    assert dkim.count('" "') == 1 and len(dkim.split('" "')[0]) == 256  # the opening quote + 255 bytes


def test_zone_lookup_only_for_zones_without_zone_id() -> None:
    config = prod_config(**{"domains/example.com/zoneId": EXAMPLE_COM_ZONE_ID})
    result = run(config, stack="prod")
    assert [(c.token, harness.plain(c.args)) for c in result.calls] == [
        ("cloudflare:index/getZone:getZone", {"filter": {"match": "all", "name": "another.com"}})
    ]
    zone_ids = {r.plain_inputs["name"]: r.plain_inputs["zoneId"] for r in result.by_type(DNS_RECORD)}
    assert zone_ids["mail.example.com"] == EXAMPLE_COM_ZONE_ID
    assert zone_ids["another.com._report._dmarc.example.com"] == EXAMPLE_COM_ZONE_ID
    assert zone_ids["another.com"] == lookup_id("another.com")


def test_both_zones_looked_up_when_no_zone_id() -> None:
    result = run(prod_config(), stack="prod")
    assert sorted(harness.plain(c.args)["filter"]["name"] for c in result.calls) == ["another.com", "example.com"]
    assert {c.token for c in result.calls} == {"cloudflare:index/getZone:getZone"}


def test_manual_backend_registers_no_record_and_calls_nothing() -> None:
    config = stack_config(DEV_STACK)
    result = run(config, stack="dev")
    assert result.by_type(DNS_RECORD) == []
    assert result.calls == []
    assert sorted(r.type for r in result.resources) == [
        "mailstack:index:DkimKeys",
        "mailstack:index:MailDns",
        "tls:index/privateKey:PrivateKey",
    ]


def test_exports_follow_the_contract() -> None:
    config = stack_config(DEV_STACK)
    result = run(config, stack="dev")
    records = expected_records(config, "dev", result)
    outputs = result.plain_outputs
    assert outputs["dnsRecords"] == [r.as_dict() for r in records]
    assert outputs["zoneFile"] == render_zone_files(records, stack="dev", provider="manual")
    dkim = next(r for r in records if r.name == "mail._domainkey.example.test")
    assert outputs["dkimRecords"] == [
        {"domain": "example.test", "selector": "mail", "name": "mail._domainkey.example.test", "content": dkim.content}
    ]
    mx = next(r for r in outputs["dnsRecords"] if r["type"] == "MX")
    assert mx == {
        "zone": "example.test",
        "name": "example.test",
        "type": "MX",
        "content": "mail.example.test",
        "priority": 10,
        "ttl": 3600,
        "purpose": "inbound mail for example.test goes to mail.example.test (RFC 5321 §5.1)",
    }
    # The component registers exactly its public outputs.
    component = next(u for u in result.component_outputs if u.endswith("mailstack:index:MailDns::dns"))
    assert sorted(result.component_outputs[component]) == ["dkim_records", "records", "zone_files"]


def test_retired_selectors_are_published_too() -> None:
    config = prod_config(**{"domains/example.com/dkim": {"selector": "s2025", "retired": ["mail"]}})
    result = run(config, stack="prod")
    names = sorted(n for n in dns_records(result) if "_domainkey" in n)
    assert names == [
        "dns-txt-mail._domainkey.another.com-dkim1",
        "dns-txt-mail._domainkey.example.com-dkim1",
        "dns-txt-s2025._domainkey.example.com-dkim1",
    ]
    assert [(d["domain"], d["selector"]) for d in result.plain_outputs["dkimRecords"]] == [
        ("another.com", "mail"),
        ("example.com", "mail"),
        ("example.com", "s2025"),
    ]


def _snapshot(result: RunResult) -> list[tuple[str, str, str, str]]:
    return sorted(
        (r.type, r.name, r.parent, json.dumps(r.plain_inputs, sort_keys=True)) for r in result.by_type(DNS_RECORD)
    )


def test_rerun_registers_the_same_records() -> None:
    """A no-change `pulumi up`: the same names and inputs, so the engine sees no diff."""
    first = run(prod_config(), stack="prod")
    second = run(prod_config(), stack="prod")
    assert _snapshot(first) == _snapshot(second)
    assert first.plain_outputs == second.plain_outputs


def test_reordered_config_keeps_every_record() -> None:
    config = prod_config()
    domains = json.loads(config["mailstack:domains"])
    reordered = dict(config, **{"mailstack:domains": json.dumps(dict(reversed(list(domains.items()))))})
    assert list(json.loads(reordered["mailstack:domains"])) == ["another.com", "example.com"]
    # The pooled mock keys are handed out in creation order; compare everything but the DKIM key text.
    strip = [(t, n, p, i) for t, n, p, i in _snapshot(run(config, stack="prod")) if "_domainkey" not in n]
    strip_reordered = [(t, n, p, i) for t, n, p, i in _snapshot(run(reordered, stack="prod")) if "_domainkey" not in n]
    assert strip == strip_reordered


def test_preview_registers_the_records_too() -> None:
    """Records are created in the constructor, not inside apply(): preview shows every one of them."""
    assert len(run(prod_config(), stack="prod", preview=True).by_type(DNS_RECORD)) == 18


def test_full_program_exports_the_dns_outputs() -> None:
    """The real __main__.py (dev stack) wires MailDns to the DKIM keys and exports its outputs."""
    config = stack_config(DEV_STACK)
    result = run_program(config)
    assert result.error is None, result.error
    records = expected_records(config, "dev", result)
    assert result.plain_outputs["dnsRecords"] == [r.as_dict() for r in records]
    assert result.plain_outputs["zoneFile"] == render_zone_files(records, stack="dev", provider="manual")
    assert result.by_type(DNS_RECORD) == []
