"""MailWeb under the mock runtime: the Worker scripts and custom domains, with their exact inputs."""

from __future__ import annotations

import hashlib
from typing import Any

from mailstack.config import load_settings
from mailstack.config.worker import COMPATIBILITY_DATE, MAIN_MODULE, worker_script
from tests.conftest import PROD_SECRET_KEYS, prod_config_values
from tests.harness import MOCK_ACCOUNT_ID, ROOT, RunResult, run_program, with_values

PROGRAM = ROOT / "tests" / "programs" / "mail_web.py"
SCRIPT = "cloudflare:index/workersScript:WorkersScript"
CUSTOM_DOMAIN = "cloudflare:index/workersCustomDomain:WorkersCustomDomain"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"


def run(config: dict[str, Any]) -> RunResult:
    result = run_program(config, PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert result.error is None, result.error
    return result


def zone_id(zone: str) -> str:
    return hashlib.md5(zone.encode()).hexdigest()  # tests/harness.py's getZone mock


def test_one_worker_per_zone_and_a_custom_domain_per_web_host() -> None:
    config = prod_config_values()
    settings = load_settings(config, secret_keys=PROD_SECRET_KEYS, stack="prod")
    result = run(config)
    component = result.one("mailstack:index:MailWeb", "web").urn
    scripts = {r.name: r for r in result.by_type(SCRIPT)}
    assert sorted(scripts) == ["web-another.com", "web-example.com"]
    for zone in ("another.com", "example.com"):
        reg = scripts[f"web-{zone}"]
        assert reg.plain_inputs == {
            "accountId": MOCK_ACCOUNT_ID,
            "scriptName": f"mailstack-prod-{zone.replace('.', '-')}",
            "content": worker_script(settings, [settings.domain(zone)]),
            "mainModule": MAIN_MODULE,
            "compatibilityDate": COMPATIBILITY_DATE,
        }
        assert reg.parent == component
    domains = {r.name: r.plain_inputs for r in result.by_type(CUSTOM_DOMAIN)}
    assert domains == {
        f"web-{prefix}.{zone}": {
            "accountId": MOCK_ACCOUNT_ID,
            "hostname": f"{prefix}.{zone}",
            "service": f"mailstack-prod-{zone.replace('.', '-')}",
            "zoneId": zone_id(zone),
        }
        for zone in ("another.com", "example.com")
        for prefix in ("mta-sts", "autoconfig", "autodiscover")
    }
    # The custom domains bring their own DNS records: MailDns publishes none at these names.
    names = {r.plain_inputs["name"] for r in result.by_type(DNS_RECORD)}
    assert names.isdisjoint(d["hostname"] for d in domains.values())
    assert "_mta-sts.example.com" in names


def test_a_configured_zone_id_is_used_and_the_account_is_looked_up_by_it() -> None:
    zid = "fedcba9876543210fedcba9876543210"
    result = run(with_values(prod_config_values(), **{"domains/example.com/zoneId": zid}))
    hosts = {r.plain_inputs["hostname"]: r.plain_inputs["zoneId"] for r in result.by_type(CUSTOM_DOMAIN)}
    assert hosts["mta-sts.example.com"] == zid
    assert hosts["mta-sts.another.com"] == zone_id("another.com")
    lookups = [c.args for c in result.calls if c.token == "cloudflare:index/getZone:getZone"]
    assert {"zoneId": zid} in [{k: v for k, v in a.items() if k == "zoneId"} for a in lookups]


def test_autoconfig_off_leaves_only_the_policy_host() -> None:
    result = run(with_values(prod_config_values(), autoconfig="false"))
    assert sorted(r.plain_inputs["hostname"] for r in result.by_type(CUSTOM_DOMAIN)) == [
        "mta-sts.another.com",
        "mta-sts.example.com",
    ]


def test_manual_dns_registers_no_worker() -> None:
    """Without Cloudflare nothing can host the documents: `render` writes them instead."""
    manual = with_values(prod_config_values(), **{"dns/provider": "manual", "tls/challenge": "http"})
    result = run(manual)
    assert result.by_type(SCRIPT) == [] and result.by_type(CUSTOM_DOMAIN) == []


def test_a_domain_on_another_dns_host_gets_no_worker() -> None:
    """Per-domain providers: another.com on manual DNS has no policy or documents by default, and no
    custom domain; example.com, on Cloudflare, keeps its three."""
    config = with_values(prod_config_values(), **{"domains/another.com/dns": {"provider": "manual"}})
    settings = load_settings(config, secret_keys=PROD_SECRET_KEYS, stack="prod")
    another = settings.domain("another.com")
    assert (another.hosts_web, another.mta_sts, another.autoconfig) == (False, None, False)
    result = run(config)
    assert sorted(r.plain_inputs["hostname"] for r in result.by_type(CUSTOM_DOMAIN)) == [
        "autoconfig.example.com",
        "autodiscover.example.com",
        "mta-sts.example.com",
    ]
    assert [r.name for r in result.by_type(SCRIPT)] == ["web-example.com"]
