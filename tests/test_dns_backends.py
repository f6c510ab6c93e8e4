"""The Route 53, DigitalOcean, Hetzner and rfc2136 backends under Pulumi's mocks: exact resource inputs.

The spelling rules each provider needs are in config/dns_formats.py (with the provider source they
come from); these tests pin what reaches each provider for the production example's records.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from mailstack.config import load_settings
from mailstack.config.dns_formats import rrsets
from mailstack.config.records import RecordSpec, dkim_selectors, mail_records
from tests.harness import Registration, RunResult, is_secret, run_program
from tests.test_mail_dns import DNS_PROGRAM, prod_config, public_keys

ROUTE53 = "aws:route53/record:Record"
DIGITALOCEAN = "digitalocean:index/dnsRecord:DnsRecord"
HETZNER = "hcloud:index/zoneRrset:ZoneRrset"
RFC2136 = "pulumi-python:dynamic/mailstack:Rfc2136Record"
CLOUDFLARE = "cloudflare:index/dnsRecord:DnsRecord"
TSIG_SECRET = base64.b64encode(hashlib.sha256(b"tsig").digest()).decode()

AWS = {"aws:region": "us-east-1", "aws:accessKey": "AKIAEXAMPLE", "aws:secretKey": "aws-secret"}
SECRETS = ("mailstack:accounts", "mailstack:relay", "cloudflare:apiToken", "aws:secretKey", "digitalocean:token")
SECRETS += ("hcloud:token", "mailstack:dns")


def run(changes: dict[str, Any], extra: dict[str, str] | None = None) -> tuple[RunResult, list[RecordSpec]]:
    config = {**prod_config(**changes), **(extra or {})}
    result = run_program(config, SECRETS, stack="prod", program=DNS_PROGRAM)
    assert result.error is None, result.error
    settings = load_settings(config, secret_keys=SECRETS, stack="prod")
    keys = public_keys(result)
    assert sorted(keys) == sorted((d.name, s) for d in settings.domains for s in dkim_selectors(d))
    return result, mail_records(settings, keys)


def by_name(result: RunResult, rtype: str) -> dict[str, Registration]:
    return {r.name: r for r in result.by_type(rtype)}


def zone_id(zone: str) -> str:
    """What tests/harness.py's Route 53 getZone mock answers."""
    return "Z" + hashlib.md5(zone.encode()).hexdigest()[:20].upper()


def test_route53_publishes_one_record_set_per_name_and_type() -> None:
    result, records = run({"dns/provider": "route53", "tls/challenge": "http"}, AWS)
    registered = by_name(result, ROUTE53)
    sets = rrsets(records)
    assert sorted(registered) == sorted(f"dns-{s.key}" for s in sets)
    assert len(registered) == 22  # 24 records, of which each apex holds two MX in one set
    assert result.by_type(CLOUDFLARE) == []
    mx = registered["dns-mx-example.com"].plain_inputs
    assert mx == {
        "zoneId": zone_id("example.com"),
        "name": "example.com",
        "type": "MX",
        "ttl": 3600.0,
        "records": ["10 mail.example.com.", "20 mx.backup-provider.net."],
    }
    spf = registered["dns-txt-example.com"].plain_inputs
    assert spf["records"] == ["v=spf1 mx include:spf.brevo.com include:spf.backup-provider.net -all"]
    srv = registered["dns-srv-_imaps._tcp.example.com"].plain_inputs
    assert srv["records"] == ["0 1 993 mail.example.com."]
    null_srv = registered["dns-srv-_pop3._tcp.example.com"].plain_inputs
    assert null_srv["records"] == ["0 0 0 ."]
    assert registered["dns-a-mail.example.com"].plain_inputs["records"] == ["93.184.215.14"]
    # A DKIM key is longer than one TXT string: pulumi-aws wants the boundaries as `""` inside the value.
    dkim_spec = next(r for r in records if r.name == "mail._domainkey.example.com")
    [dkim] = registered["dns-txt-mail._domainkey.example.com"].plain_inputs["records"]
    text = dkim_spec.content
    assert dkim == '""'.join(text[i : i + 255] for i in range(0, len(text), 255))
    assert dkim.count('""') == 1
    assert sorted(c.token for c in result.calls) == ["aws:route53/getZone:getZone"] * 2


def test_route53_zone_id_skips_the_lookup() -> None:
    result, _ = run(
        {"dns/provider": "route53", "tls/challenge": "http", "domains/example.com/zoneId": "Z0123456789ABCDEFGHIJ"}, AWS
    )
    assert [c.args["name"] for c in result.calls] == ["another.com"]
    ids = {r.plain_inputs["name"]: r.plain_inputs["zoneId"] for r in result.by_type(ROUTE53)}
    assert ids["example.com"] == "Z0123456789ABCDEFGHIJ"
    assert ids["another.com"] == zone_id("another.com")


def test_digitalocean_publishes_each_record_with_relative_names_and_dotted_targets() -> None:
    result, records = run({"dns/provider": "digitalocean", "tls/challenge": "http"}, {"digitalocean:token": "do"})
    registered = by_name(result, DIGITALOCEAN)
    assert sorted(registered) == sorted(f"dns-{r.key}" for r in records)
    assert registered["dns-mx-example.com-mx.backup-provider.net"].plain_inputs == {
        "domain": "example.com",
        "type": "MX",
        "name": "@",
        "value": "mx.backup-provider.net.",
        "priority": 20.0,
        "ttl": 3600.0,
    }
    assert registered["dns-srv-_submissions._tcp.another.com"].plain_inputs == {
        "domain": "another.com",
        "type": "SRV",
        "name": "_submissions._tcp",
        "value": "mail.example.com.",
        "priority": 0.0,
        "weight": 1.0,
        "port": 465.0,
        "ttl": 3600.0,
    }
    assert registered["dns-txt-_dmarc.example.com-dmarc1"].plain_inputs["name"] == "_dmarc"
    dkim_spec = next(r for r in records if r.name == "mail._domainkey.another.com")
    dkim = registered["dns-txt-mail._domainkey.another.com-dkim1"].plain_inputs
    assert (dkim["name"], dkim["value"]) == ("mail._domainkey", dkim_spec.content)
    assert registered["dns-a-mail.example.com"].plain_inputs == {
        "domain": "example.com",
        "type": "A",
        "name": "mail",
        "value": "93.184.215.14",
        "ttl": 3600.0,
    }


def test_hetzner_publishes_record_sets_with_quoted_txt() -> None:
    result, records = run({"dns/provider": "hetzner", "tls/challenge": "http"}, {"hcloud:token": "hc"})
    registered = by_name(result, HETZNER)
    assert sorted(registered) == sorted(f"dns-{s.key}" for s in rrsets(records))
    assert registered["dns-mx-another.com"].plain_inputs == {
        "zone": "another.com",
        "name": "@",
        "type": "MX",
        "ttl": 3600.0,
        "records": [{"value": "10 mail.example.com."}, {"value": "20 mx.backup-provider.net."}],
    }
    dkim_spec = next(r for r in records if r.name == "mail._domainkey.example.com")
    [dkim] = registered["dns-txt-mail._domainkey.example.com"].plain_inputs["records"]
    text = dkim_spec.content
    assert dkim == {"value": f'"{text[:255]}" "{text[255:]}"'}
    spf = registered["dns-txt-another.com"].plain_inputs
    assert spf["records"] == [{"value": '"v=spf1 mx include:spf.brevo.com include:spf.backup-provider.net -all"'}]


def test_rfc2136_registers_one_dynamic_record_per_record_with_the_key_secret() -> None:
    rfc = {"server": "ns1.example.net", "keyName": "mailstack", "keySecret": TSIG_SECRET}
    result, records = run({"dns/provider": "rfc2136", "dns/rfc2136": rfc, "tls/challenge": "http"})
    registered = by_name(result, RFC2136)
    assert sorted(registered) == sorted(f"dns-{r.key}" for r in records)
    for record in records:
        reg = registered[f"dns-{record.key}"]
        inputs = {k: v for k, v in reg.plain_inputs.items() if k != "__provider"}
        assert inputs == {
            "server": "ns1.example.net",
            "port": 53.0,
            "keyName": "mailstack.",
            "keyAlgorithm": "hmac-sha256",
            "keySecret": TSIG_SECRET,
            "zone": record.zone,
            "name": record.name,
            "type": record.type,
            "content": record.content,
            "ttl": float(record.ttl),
            **({"priority": float(record.priority)} if record.priority is not None else {}),
        }, record.key
        # The TSIG secret and the serialised provider stay secret in the state.
        assert is_secret(reg.inputs["keySecret"]) and is_secret(reg.inputs["__provider"])
        assert reg.options["additional_secret_outputs"] == ["keySecret"]


def test_one_stack_spans_two_dns_hosts() -> None:
    rfc = {"server": "ns1.example.net", "keyName": "mailstack", "keySecret": TSIG_SECRET}
    result, records = run({"domains/another.com/dns": {"provider": "rfc2136"}, "dns/rfc2136": rfc})
    cloudflare = sorted(r.plain_inputs["name"] for r in result.by_type(CLOUDFLARE))
    dynamic = sorted(r.plain_inputs["name"] for r in result.by_type(RFC2136))
    assert cloudflare == sorted(r.name for r in records if r.zone == "example.com")
    assert dynamic == sorted(r.name for r in records if r.zone == "another.com")
    # Cloudflare holds no null SRV (config/records.py, srv_records): example.com has 4 fewer records.
    assert (len(cloudflare), len(dynamic)) == (10, 11)
    assert not any(
        r.plain_inputs["type"] == "SRV" and "_pop3" in r.plain_inputs["name"] for r in result.by_type(CLOUDFLARE)
    )
