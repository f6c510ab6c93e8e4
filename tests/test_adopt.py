"""mailstack.adopt: conflicts between live Cloudflare records and the stack's records, and the exact commands.

Live records come from JSON files or an injected fetch function: the network is never used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailstack import adopt
from tests.conftest import PROD_EXAMPLE
from tests.harness import ROOT

ZONE_COM = "0123456789abcdef0123456789abcdef"
ZONE_ANOTHER = "fedcba9876543210fedcba9876543210"
URN = "urn:pulumi:prod::mailstack::mailstack:index:MailDns::dns"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The production example as a stack file with its secrets set (encrypted values stay closed)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    doc = yaml.safe_load(PROD_EXAMPLE.read_text())
    config = doc["config"]
    secure = {"secure": "v1:bm9uY2U=:Y2lwaGVydGV4dA=="}
    config["cloudflare:apiToken"] = secure
    config["mailstack:relay"]["password"] = secure
    for account in config["mailstack:accounts"].values():
        account["password"] = secure
    config["mailstack:domains"]["example.com"]["zoneId"] = ZONE_COM
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def api_record(record_id: str, name: str, rtype: str, content: str, **extra: Any) -> dict[str, Any]:
    zone = "another.com" if name.endswith("another.com") else "example.com"
    zone_id = ZONE_ANOTHER if zone == "another.com" else ZONE_COM
    return {
        "id": record_id,
        "zone_id": zone_id,
        "zone_name": zone,
        "name": name,
        "type": rtype,
        "content": content,
        **extra,
    }


LIVE = {
    "success": True,
    "result": [
        # The old setup's MX to the same host, at another priority: import, `pulumi up` fixes the priority.
        api_record("r1", "example.com", "MX", "mail.example.com", priority=5),
        # An SPF record: import, `pulumi up` replaces its text.
        api_record("r2", "example.com", "TXT", '"v=spf1 include:_spf.google.com ~all"'),
        # The old provider's MX: not ours, reported as stale.
        api_record("r3", "example.com", "MX", "aspmx.l.google.com", priority=1),
        # An unrelated verification TXT at the apex: left alone.
        api_record("r4", "example.com", "TXT", '"google-site-verification=abc"'),
        # A CNAME where the A record of the mail host goes: must be deleted (81053).
        api_record("r5", "mail.example.com", "CNAME", "ghs.googlehosted.com"),
        # Created by this stack in an earlier (failed) `pulumi up`: already in the state, left alone.
        api_record(
            "r6", "_dmarc.example.com", "TXT", '"v=DMARC1; p=none"', comment="managed by mailstack (stack prod)"
        ),
        # An SRV record as the API lists it (data + tab-separated content).
        api_record(
            "r7",
            "_imaps._tcp.another.com",
            "SRV",
            "0\t993\tmail.another.com",
            priority=0,
            data={"priority": 0, "weight": 0, "port": 993, "target": "mail.another.com"},
        ),
        # An old DKIM key under the selector the stack uses.
        api_record("r8", "mail._domainkey.another.com", "TXT", '"v=DKIM1; k=rsa; p=MIIB" "AQAB"'),
        # A second SPF record: only one can be imported, the other must go.
        api_record("r9", "example.com", "TXT", '"v=spf1 -all"'),
        # Outside the stack's zones.
        {
            "id": "x1",
            "zone_name": "unrelated.org",
            "name": "unrelated.org",
            "type": "MX",
            "content": "mx.unrelated.org",
        },
    ],
    "result_info": {"page": 1, "total_pages": 1},
}

EXPECTED = f"""\
# 4 live record(s) have the identity of a record stack prod creates;
# import them so the stack owns them (the next `pulumi up` then updates them in place):
#   SRV _imaps._tcp.another.com 0 0 993 mail.another.com  (id r7)  ->  SRV _imaps._tcp.another.com: mail clients find IMAP over implicit TLS on mail.example.com:993 (RFC 6186)
#   TXT mail._domainkey.another.com v=DKIM1; k=rsa; p=MIIBAQAB  (id r8)  ->  TXT mail._domainkey.another.com: DKIM public key for selector mail: verifiers check another.com's signatures (RFC 6376)
#   MX example.com 5 mail.example.com  (id r1)  ->  MX example.com: inbound mail for example.com goes to mail.example.com (RFC 5321 §5.1)
#   TXT example.com v=spf1 -all  (id r9)  ->  TXT example.com: SPF: the hosts allowed to send mail from example.com (RFC 7208)
# (--parent needs the MailDns component in the state: it is there once `pulumi up` has
#  run, even a failed one; before the first `pulumi up`, use --import-file instead)
pulumi import --stack prod cloudflare:index/dnsRecord:DnsRecord dns-srv-_imaps._tcp.another.com {ZONE_ANOTHER}/r7 --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod cloudflare:index/dnsRecord:DnsRecord dns-txt-mail._domainkey.another.com-dkim1 {ZONE_ANOTHER}/r8 --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod cloudflare:index/dnsRecord:DnsRecord dns-mx-example.com-mail.example.com {ZONE_COM}/r1 --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod cloudflare:index/dnsRecord:DnsRecord dns-txt-example.com-spf1 {ZONE_COM}/r9 --parent dns={URN} --protect=false --generate-code=false
# These live records must be removed before the stack can create its own:
#   TXT example.com v=spf1 include:_spf.google.com ~all: a second TXT with the identity of example.com's record
curl -fsS -X DELETE -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" https://api.cloudflare.com/client/v4/zones/{ZONE_COM}/dns_records/r2
#   CNAME mail.example.com ghs.googlehosted.com: a CNAME cannot coexist with the mail records at this name (RFC 1034 §3.6.2)
curl -fsS -X DELETE -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" https://api.cloudflare.com/client/v4/zones/{ZONE_COM}/dns_records/r5
# Live MX records the stack does not publish (an old mail provider?); mail delivered there
# never reaches this server. Remove them unless they are a backup MX you forgot to configure:
#   MX example.com 1 aspmx.l.google.com
# curl -fsS -X DELETE -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" https://api.cloudflare.com/client/v4/zones/{ZONE_COM}/dns_records/r3
# Then: pulumi up --stack prod
"""


def test_conflicts_from_a_json_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = tmp_path / "live.json"
    live.write_text(json.dumps(LIVE))
    # Exit 1 while records still block `pulumi up`: a script can tell "done" from "more to do".
    assert adopt.main(["--stack", "prod", "--project-dir", str(project), "--live", str(live)], environ={}) == 1
    assert capsys.readouterr().out == EXPECTED


def test_import_file_for_a_stack_that_never_ran(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"example.com": [r for r in LIVE["result"] if r["id"] == "r1"]}))
    out_file = tmp_path / "import.json"
    argv = ["--stack", "prod", "--project-dir", str(project), "--live", str(live), "--import-file", str(out_file)]
    assert adopt.main(argv, environ={}) == 1
    assert json.loads(out_file.read_text()) == {
        "resources": [
            {"type": "mailstack:index:MailDns", "name": "dns", "component": True},
            {
                "type": "cloudflare:index/dnsRecord:DnsRecord",
                "name": "dns-mx-example.com-mail.example.com",
                "id": f"{ZONE_COM}/r1",
                "parent": "dns",
            },
        ]
    }
    assert (
        f"pulumi import --stack prod --file {out_file} --protect=false --generate-code=false" in capsys.readouterr().out
    )


def test_no_conflicts(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = tmp_path / "live.json"
    live.write_text(json.dumps([LIVE["result"][3]]))
    assert adopt.main(["--stack", "prod", "--project-dir", str(project), "--live", str(live)], environ={}) == 0
    assert capsys.readouterr().out == (
        "# stack prod: no live record conflicts with the records the stack creates; run `pulumi up`.\n"
    )


def test_api_lookup_and_pagination_without_network(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Zone ids come from config (example.com) or a lookup by name (another.com); pages are followed."""
    asked: list[tuple[str, str]] = []
    pages = {
        f"{adopt.API}/zones?name=another.com": {"result": [{"id": ZONE_ANOTHER, "name": "another.com"}]},
        f"{adopt.API}/zones/{ZONE_ANOTHER}/dns_records?per_page=100&page=1": {
            "result": [
                {"id": "a1", "name": "another.com", "type": "MX", "content": "mail.example.com", "priority": 10}
            ],
            "result_info": {"total_pages": 1},
        },
        f"{adopt.API}/zones/{ZONE_COM}/dns_records?per_page=100&page=1": {
            "result": [{"id": "c1", "name": "example.com", "type": "TXT", "content": '"v=spf1 mx -all"'}],
            "result_info": {"total_pages": 2},
        },
        f"{adopt.API}/zones/{ZONE_COM}/dns_records?per_page=100&page=2": {
            "result": [{"id": "c2", "name": "mail.example.com", "type": "A", "content": "198.51.100.1"}],
            "result_info": {"total_pages": 2},
        },
    }

    def fetch(url: str, token: str) -> Any:
        asked.append((url, token))
        return pages[url]

    argv = ["--stack", "prod", "--project-dir", str(project)]
    assert adopt.main(argv, environ={"CLOUDFLARE_API_TOKEN": "tok"}, fetch=fetch) == 1
    assert asked == [(url, "tok") for url in pages]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("pulumi import")]
    assert [line.split()[5:7] for line in lines] == [
        ["dns-mx-another.com-mail.example.com", f"{ZONE_ANOTHER}/a1"],
        ["dns-txt-example.com-spf1", f"{ZONE_COM}/c1"],
        ["dns-a-mail.example.com", f"{ZONE_COM}/c2"],
    ]


def test_missing_token_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert adopt.main(["--stack", "prod", "--project-dir", str(project)], environ={}) == 2
    assert capsys.readouterr().err == (
        "mailstack adopt: error: set CLOUDFLARE_API_TOKEN (Zone:DNS:Read and Zone:Zone:Read), or pass --live FILE\n"
    )


def test_only_stale_mx_exits_0(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A live MX the stack does not publish is listed as advice; it does not block `pulumi up`."""
    live = tmp_path / "live.json"
    live.write_text(json.dumps([r for r in LIVE["result"] if r["id"] == "r3"]))
    assert adopt.main(["--stack", "prod", "--project-dir", str(project), "--live", str(live)], environ={}) == 0
    assert "#   MX example.com 1 aspmx.l.google.com\n" in capsys.readouterr().out


def test_configuration_problems_exit_1_in_the_common_style(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The stack's own name, every problem with its fix, one line each: never wrapped, whatever the width."""
    stack_file = project / "Pulumi.prod.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"]["mailstack:hostname"] = "bad"
    stack_file.write_text(yaml.safe_dump(doc))
    assert adopt.main(["--stack", "prod", "--project-dir", str(project), "--live", "unused.json"], environ={}) == 1
    assert capsys.readouterr().err == (
        "mailstack adopt: error: the configuration of stack 'prod' has 1 problem (nothing was created):\n"
        "- mailstack:hostname: 'bad' has fewer than 3 labels; use a host name under a mail domain, e.g. mail.bad\n"
        "    fix: pulumi config set 'mailstack:hostname' mail.bad\n"
    )


def test_manual_dns_has_nothing_to_adopt(capsys: pytest.CaptureFixture[str]) -> None:
    assert adopt.main(["--stack", "dev", "--project-dir", str(ROOT)], environ={}) == 0
    assert capsys.readouterr().out == (
        "# stack dev uses manual DNS: nothing to adopt (publish the zoneFile output yourself).\n"
    )
