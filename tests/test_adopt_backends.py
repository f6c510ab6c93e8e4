"""mailstack.adopt for DigitalOcean, Hetzner and Route 53 zones, against a loopback server that answers like each API.

Answer shapes:
- DigitalOcean: API reference, Domain Records `domains_list_records` (`domain_records`, `links.pages.next`,
  errors `{"id": "Unauthorized", "message": "Unable to authenticate you"}`).
- Hetzner: hcloud-go hcloud/schema/zone_rrset.go, hcloud/schema/meta.go and the fixtures of
  hcloud/zone_rrset_test.go (`rrsets`, `meta.pagination.next_page`); errors hcloud/schema/error.go
  (`{"error": {"code": "unauthorized", "message": ...}}`).
- Route 53: API reference 2013-04-01, ListHostedZonesByName and ListResourceRecordSets (XML in the
  `https://route53.amazonaws.com/doc/2013-04-01/` namespace, `IsTruncated`/`NextRecordName`/
  `NextRecordType`), errors as `ErrorResponse/Error/Code`.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailstack import adopt, sigv4
from tests.conftest import PROD_EXAMPLE
from tests.harness import ROOT

URN = "urn:pulumi:prod::mailstack::mailstack:index:MailDns::dns"
SECURE = {"secure": "v1:bm9uY2U=:Y2lwaGVydGV4dA=="}

Answer = tuple[int, str, bytes]
"""Status, content type, body."""


@dataclass
class FakeApi:
    """A loopback HTTP server: `answer(path with query, headers)` decides each reply; requests are kept."""

    answer: Callable[[str, dict[str, str]], Answer]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    def __enter__(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                api.requests.append((self.path, headers))
                status, ctype, body = api.answer(self.path, headers)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def make_project(tmp_path: Path, provider: str, credentials: dict[str, Any]) -> Path:
    """The production example on one DNS backend, its secrets closed (adopt needs none of them here)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    doc = yaml.safe_load(PROD_EXAMPLE.read_text())
    config = doc["config"]
    config.update(credentials)
    config["mailstack:relay"]["password"] = SECURE
    for account in config["mailstack:accounts"].values():
        account["password"] = SECURE
    config["mailstack:dns"]["provider"] = provider
    config["mailstack:tls"]["challenge"] = "http"
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def run(project: Path, env: dict[str, str], endpoints: dict[str, str], *extra: str) -> int:
    return adopt.main(["--stack", "prod", "--project-dir", str(project), *extra], environ=env, endpoints=endpoints)


def json_answer(status: int, doc: object) -> Answer:
    return status, "application/json", json.dumps(doc).encode()


# -- DigitalOcean --------------------------------------------------------------------------------


def do_record(record_id: int, rtype: str, name: str, data: str, **extra: Any) -> dict[str, Any]:
    fields = {"priority": None, "port": None, "ttl": 1800, "weight": None, "flags": None, "tag": None}
    return {"id": record_id, "type": rtype, "name": name, "data": data, **fields, **extra}


def digitalocean_pages(base: str) -> dict[str, object]:
    first = "/v2/domains/example.com/records?per_page=100"
    second = "/v2/domains/example.com/records?page=2&per_page=100"
    return {
        "/v2/domains/another.com/records?per_page=100": {
            "domain_records": [
                do_record(201, "NS", "@", "ns1.digitalocean.com"),
                do_record(202, "SRV", "_imaps._tcp", "mail.example.com", priority=0, port=993, weight=1),
                do_record(203, "TXT", "mail._domainkey", "v=DKIM1; k=rsa; p=MIIBAQAB"),
            ],
            "links": {},
            "meta": {"total": 3},
        },
        first: {
            "domain_records": [
                do_record(101, "NS", "@", "ns1.digitalocean.com"),
                # The old setup's MX to the same host at another preference: import, `pulumi up` fixes it.
                do_record(102, "MX", "@", "mail.example.com", priority=5),
                # The old provider's MX: stale.
                do_record(103, "MX", "@", "aspmx.l.google.com", priority=1),
                # An SPF record: import, `pulumi up` replaces its text.
                do_record(104, "TXT", "@", "v=spf1 include:_spf.google.com ~all"),
                # Unrelated: left alone.
                do_record(105, "TXT", "@", "google-site-verification=abc"),
            ],
            "links": {"pages": {"last": base + second, "next": base + second}},
            "meta": {"total": 7},
        },
        second: {
            "domain_records": [
                # A CNAME where the mail host's A record goes: DigitalOcean refuses the A beside it.
                do_record(106, "CNAME", "mail", "ghs.googlehosted.com"),
                do_record(107, "TXT", "_dmarc", "v=DMARC1; p=none"),
            ],
            "links": {"pages": {"first": base + first, "prev": base + first}},
            "meta": {"total": 7},
        },
    }


@pytest.fixture
def digitalocean(tmp_path: Path) -> Iterator[tuple[Path, FakeApi]]:
    project = make_project(tmp_path, "digitalocean", {"digitalocean:token": SECURE})
    pages: dict[str, object] = {}

    def answer(path: str, headers: dict[str, str]) -> Answer:
        if headers.get("authorization") != "Bearer do-token":
            return json_answer(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
        if path not in pages:
            return json_answer(404, {"id": "not_found", "message": "The resource you requested could not be found."})
        return json_answer(200, pages[path])

    with FakeApi(answer) as api:
        pages.update(digitalocean_pages(api.base))
        yield project, api


DO_EXPECTED = f"""\
# 5 live record(s) at DigitalOcean have the identity of a record stack prod creates;
# import them so the stack owns them (the next `pulumi up` then updates them in place):
#   SRV _imaps._tcp.another.com 0 1 993 mail.example.com  (id 202)  ->  SRV _imaps._tcp.another.com: mail clients find IMAP over implicit TLS on mail.example.com:993 (RFC 6186)
#   TXT mail._domainkey.another.com v=DKIM1; k=rsa; p=MIIBAQAB  (id 203)  ->  TXT mail._domainkey.another.com: DKIM public key for selector mail: verifiers check another.com's signatures (RFC 6376)
#   TXT _dmarc.example.com v=DMARC1; p=none  (id 107)  ->  TXT _dmarc.example.com: DMARC: what receivers do with mail from example.com failing SPF/DKIM alignment, and where reports go (RFC 9989)
#   MX example.com 5 mail.example.com  (id 102)  ->  MX example.com: inbound mail for example.com goes to mail.example.com (RFC 5321 §5.1)
#   TXT example.com v=spf1 include:_spf.google.com ~all  (id 104)  ->  TXT example.com: SPF: the hosts allowed to send mail from example.com (RFC 7208)
# (--parent needs the MailDns component in the state: it is there once `pulumi up` has
#  run, even a failed one; before the first `pulumi up`, use --import-file instead)
pulumi import --stack prod digitalocean:index/dnsRecord:DnsRecord dns-srv-_imaps._tcp.another.com another.com,202 --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod digitalocean:index/dnsRecord:DnsRecord dns-txt-mail._domainkey.another.com-dkim1 another.com,203 --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod digitalocean:index/dnsRecord:DnsRecord dns-txt-_dmarc.example.com-dmarc1 example.com,107 --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod digitalocean:index/dnsRecord:DnsRecord dns-mx-example.com-mail.example.com example.com,102 --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod digitalocean:index/dnsRecord:DnsRecord dns-txt-example.com-spf1 example.com,104 --parent dns={URN} --protect=false --generate-code=false
# These live records must be removed before the stack can create its own:
#   CNAME mail.example.com ghs.googlehosted.com: a CNAME cannot coexist with the mail records at this name (RFC 1034 §3.6.2)
curl -fsS -X DELETE -H "Authorization: Bearer $DIGITALOCEAN_TOKEN" https://api.digitalocean.com/v2/domains/example.com/records/106
# Live MX records the stack does not publish (an old mail provider?); mail delivered there
# never reaches this server. Remove them unless they are a backup MX you forgot to configure:
#   MX example.com 1 aspmx.l.google.com
# curl -fsS -X DELETE -H "Authorization: Bearer $DIGITALOCEAN_TOKEN" https://api.digitalocean.com/v2/domains/example.com/records/103
# Then: pulumi up --stack prod
"""


def test_digitalocean_conflicts_over_two_pages(
    digitalocean: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]
) -> None:
    project, api = digitalocean
    assert run(project, {"DIGITALOCEAN_TOKEN": "do-token"}, {"digitalocean": api.base + "/v2"}) == 1
    assert capsys.readouterr().out == DO_EXPECTED
    # Each zone, every page (the second from `links.pages.next`), with the bearer token.
    assert [(path, headers["authorization"]) for path, headers in api.requests] == [
        ("/v2/domains/another.com/records?per_page=100", "Bearer do-token"),
        ("/v2/domains/example.com/records?per_page=100", "Bearer do-token"),
        ("/v2/domains/example.com/records?page=2&per_page=100", "Bearer do-token"),
    ]


def test_digitalocean_import_file(
    digitalocean: tuple[Path, FakeApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, api = digitalocean
    out_file = tmp_path / "import.json"
    env = {"DIGITALOCEAN_ACCESS_TOKEN": "do-token"}  # pulumi-digitalocean's other variable
    assert run(project, env, {"digitalocean": api.base + "/v2"}, "--import-file", str(out_file)) == 1
    resources = json.loads(out_file.read_text())["resources"]
    assert resources[0] == {"type": "mailstack:index:MailDns", "name": "dns", "component": True}
    assert [(r["name"], r["id"]) for r in resources[1:]] == [
        ("dns-srv-_imaps._tcp.another.com", "another.com,202"),
        ("dns-txt-mail._domainkey.another.com-dkim1", "another.com,203"),
        ("dns-txt-_dmarc.example.com-dmarc1", "example.com,107"),
        ("dns-mx-example.com-mail.example.com", "example.com,102"),
        ("dns-txt-example.com-spf1", "example.com,104"),
    ]
    assert {r["type"] for r in resources[1:]} == {"digitalocean:index/dnsRecord:DnsRecord"}
    assert (
        f"pulumi import --stack prod --file {out_file} --protect=false --generate-code=false" in capsys.readouterr().out
    )


def test_digitalocean_wrong_token_exits_2(
    digitalocean: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]
) -> None:
    project, api = digitalocean
    assert run(project, {"DIGITALOCEAN_TOKEN": "wrong"}, {"digitalocean": api.base + "/v2"}) == 2
    assert capsys.readouterr().err == (
        f"mailstack adopt: error: DigitalOcean API 401 for {api.base}/v2/domains/another.com/records?per_page=100: "
        "Unable to authenticate you (the token needs the domain:read scope)\n"
    )


def test_digitalocean_token_missing_or_closed(
    digitalocean: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]
) -> None:
    """No variable: the stack's `digitalocean:token` is used, which needs the passphrase to open."""
    project, api = digitalocean
    assert run(project, {}, {"digitalocean": api.base + "/v2"}) == 2
    assert capsys.readouterr().err == (
        "mailstack adopt: error: digitalocean:token is a secret: set PULUMI_CONFIG_PASSPHRASE (or "
        "PULUMI_CONFIG_PASSPHRASE_FILE) so adopt can open it, or put the credential in the environment\n"
    )
    assert api.requests == []


# -- Hetzner -------------------------------------------------------------------------------------


def rrset(name: str, rtype: str, *values: str, ttl: int = 3600) -> dict[str, Any]:
    return {
        "id": f"{name}/{rtype}",
        "name": name,
        "type": rtype,
        "ttl": ttl,
        "labels": {},
        "protection": {"change": False},
        "records": [{"value": v, "comment": ""} for v in values],
        "zone": 42,
    }


HETZNER_PAGES: dict[str, object] = {
    "/v1/zones/12345/rrsets?page=1&per_page=100": {
        "rrsets": [rrset("mail._domainkey", "TXT", '"v=DKIM1; k=rsa; p=MIIB" "AQAB"')],
        "meta": {"pagination": {"page": 1, "per_page": 100, "previous_page": None, "next_page": None, "last_page": 1}},
    },
    "/v1/zones/example.com/rrsets?page=1&per_page=100": {
        "rrsets": [
            rrset("@", "SOA", "hydrogen.ns.hetzner.com. dns.hetzner.com. 2024010100 86400 10800 3600000 3600"),
            rrset("@", "NS", "hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com."),
            # The old setup: the same host at another preference, and the old provider's MX.
            rrset("@", "MX", "5 mail.example.com.", "1 aspmx.l.google.com."),
            # The apex TXT RRset holds the old SPF and a verification token the stack does not publish.
            rrset("@", "TXT", '"v=spf1 include:_spf.google.com ~all"', '"google-site-verification=abc"'),
        ],
        "meta": {"pagination": {"page": 1, "per_page": 100, "previous_page": None, "next_page": 2, "last_page": 2}},
    },
    "/v1/zones/example.com/rrsets?page=2&per_page=100": {
        "rrsets": [rrset("mail", "CNAME", "ghs.googlehosted.com."), rrset("www", "A", "198.51.100.1")],
        "meta": {"pagination": {"page": 2, "per_page": 100, "previous_page": 1, "next_page": None, "last_page": 2}},
    },
}


@pytest.fixture
def hetzner(tmp_path: Path) -> Iterator[tuple[Path, FakeApi]]:
    project = make_project(tmp_path, "hetzner", {"hcloud:token": SECURE})
    stack_file = project / "Pulumi.prod.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"]["mailstack:domains"]["another.com"]["zoneId"] = "12345"  # the program passes it as `zone`
    stack_file.write_text(yaml.safe_dump(doc))

    def answer(path: str, headers: dict[str, str]) -> Answer:
        if headers.get("authorization") != "Bearer hcloud-token":
            return json_answer(
                401, {"error": {"code": "unauthorized", "message": "unable to authenticate", "details": None}}
            )
        if path not in HETZNER_PAGES:
            return json_answer(404, {"error": {"code": "not_found", "message": "zone not found", "details": None}})
        return json_answer(200, HETZNER_PAGES[path])

    with FakeApi(answer) as api:
        yield project, api


HETZNER_EXPECTED = f"""\
# 3 live record set(s) at Hetzner have the name and type of one stack prod
# creates; import them so the stack owns them (the next `pulumi up` then sets their values):
#   TXT mail._domainkey.another.com v=DKIM1; k=rsa; p=MIIBAQAB  ->  TXT mail._domainkey.another.com: DKIM public key for selector mail: verifiers check another.com's signatures (RFC 6376)
#   MX example.com 5 mail.example.com, 1 aspmx.l.google.com  ->  MX example.com: inbound mail for example.com goes to mail.example.com (RFC 5321 §5.1)
#     `pulumi up` then removes MX 1 aspmx.l.google.com: an MX the stack does not publish (an old mail provider?)
#   TXT example.com v=spf1 include:_spf.google.com ~all, google-site-verification=abc  ->  TXT example.com: SPF: the hosts allowed to send mail from example.com (RFC 7208)
#     `pulumi up` then removes TXT google-site-verification=abc: keep it by adding it to the domain's `records` in the stack config
# (--parent needs the MailDns component in the state: it is there once `pulumi up` has
#  run, even a failed one; before the first `pulumi up`, use --import-file instead)
pulumi import --stack prod hcloud:index/zoneRrset:ZoneRrset dns-txt-mail._domainkey.another.com 12345/mail._domainkey/TXT --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod hcloud:index/zoneRrset:ZoneRrset dns-mx-example.com example.com/@/MX --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod hcloud:index/zoneRrset:ZoneRrset dns-txt-example.com example.com/@/TXT --parent dns={URN} --protect=false --generate-code=false
# These live record sets must be removed before the stack can create its own:
#   CNAME mail.example.com ghs.googlehosted.com: a CNAME cannot coexist with the mail records at this name (RFC 1034 §3.6.2)
curl -fsS -X DELETE -H "Authorization: Bearer $HCLOUD_TOKEN" https://api.hetzner.cloud/v1/zones/example.com/rrsets/mail/CNAME
# Then: pulumi up --stack prod
"""


def test_hetzner_conflicts_over_two_pages(hetzner: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]) -> None:
    project, api = hetzner
    assert run(project, {"HCLOUD_TOKEN": "hcloud-token"}, {"hetzner": api.base + "/v1"}) == 1
    assert capsys.readouterr().out == HETZNER_EXPECTED
    assert [path for path, _ in api.requests] == list(HETZNER_PAGES)


def test_hetzner_wrong_token_exits_2(hetzner: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]) -> None:
    project, api = hetzner
    assert run(project, {"HCLOUD_TOKEN": "wrong"}, {"hetzner": api.base + "/v1"}) == 2
    assert capsys.readouterr().err == (
        f"mailstack adopt: error: Hetzner API 401 for {api.base}/v1/zones/12345/rrsets?page=1&per_page=100: "
        "unauthorized: unable to authenticate (a project API token of the project holding the zone)\n"
    )


def test_hetzner_nothing_in_the_way(hetzner: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]) -> None:
    project, api = hetzner
    saved = dict(HETZNER_PAGES)
    try:
        for path in HETZNER_PAGES:
            HETZNER_PAGES[path] = {"rrsets": [rrset("www", "A", "198.51.100.1")], "meta": {"pagination": {"page": 1}}}
        assert run(project, {"HCLOUD_TOKEN": "hcloud-token"}, {"hetzner": api.base + "/v1"}) == 0
    finally:
        HETZNER_PAGES.update(saved)
    assert capsys.readouterr().out == (
        "# stack prod: no live record set at Hetzner conflicts with the stack's records; run `pulumi up`.\n"
    )


# -- Route 53 ------------------------------------------------------------------------------------

R53 = "https://route53.amazonaws.com/doc/2013-04-01/"
AWS_KEY_ID, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def r53_set(name: str, rtype: str, *values: str, ttl: int = 300, extra: str = "") -> str:
    records = "".join(f"<ResourceRecord><Value>{v}</Value></ResourceRecord>" for v in values)
    body = f"<TTL>{ttl}</TTL><ResourceRecords>{records}</ResourceRecords>" if values else ""
    return f"<ResourceRecordSet><Name>{name}</Name><Type>{rtype}</Type>{extra}{body}</ResourceRecordSet>"


def r53_list(sets: list[str], next_name: str | None = None, next_type: str | None = None) -> str:
    more = (
        f"<IsTruncated>true</IsTruncated><NextRecordName>{next_name}</NextRecordName>"
        f"<NextRecordType>{next_type}</NextRecordType>"
        if next_name
        else "<IsTruncated>false</IsTruncated>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListResourceRecordSetsResponse xmlns="{R53}">'
        f"<ResourceRecordSets>{''.join(sets)}</ResourceRecordSets>{more}<MaxItems>100</MaxItems>"
        "</ListResourceRecordSetsResponse>"
    )


SOA = "ns-2048.awsdns-64.net. hostmaster.example.com. 1 7200 900 1209600 86400"
ROUTE53_PAGES = {
    "/2013-04-01/hostedzonesbyname?dnsname=another.com&maxitems=10": (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListHostedZonesByNameResponse xmlns="{R53}"><HostedZones>'
        # A private zone of the same name comes first: not the one the program's lookup takes.
        "<HostedZone><Id>/hostedzone/Z9PRIVATE</Id><Name>another.com.</Name><CallerReference>a</CallerReference>"
        "<Config><PrivateZone>true</PrivateZone></Config><ResourceRecordSetCount>2</ResourceRecordSetCount></HostedZone>"
        "<HostedZone><Id>/hostedzone/Z2ANOTHER</Id><Name>another.com.</Name><CallerReference>b</CallerReference>"
        "<Config><PrivateZone>false</PrivateZone></Config><ResourceRecordSetCount>3</ResourceRecordSetCount></HostedZone>"
        "</HostedZones><DNSName>another.com</DNSName><IsTruncated>false</IsTruncated><MaxItems>10</MaxItems>"
        "</ListHostedZonesByNameResponse>"
    ),
    "/2013-04-01/hostedzone/Z2ANOTHER/rrset?maxitems=100": r53_list(
        [
            r53_set("another.com.", "SOA", SOA, ttl=900),
            r53_set("another.com.", "NS", "ns-2048.awsdns-64.net.", ttl=172800),
            # Exactly what the stack publishes there, created by hand: still in the way of CREATE.
            r53_set("another.com.", "MX", "10 mail.example.com.", "20 mx.backup-provider.net.", ttl=3600),
        ]
    ),
    "/2013-04-01/hostedzone/Z1EXAMPLE/rrset?maxitems=100": r53_list(
        [
            r53_set("example.com.", "SOA", SOA, ttl=900),
            r53_set("example.com.", "NS", "ns-2048.awsdns-64.net.", ttl=172800),
            r53_set("example.com.", "MX", "5 mail.example.com", "1 aspmx.l.google.com"),
            r53_set("example.com.", "TXT", '"v=spf1 include:_spf.google.com ~all"', '"google-site-verification=abc"'),
        ],
        next_name="_dmarc.example.com.",
        next_type="TXT",
    ),
    "/2013-04-01/hostedzone/Z1EXAMPLE/rrset?maxitems=100&name=_dmarc.example.com.&type=TXT": r53_list(
        [
            r53_set("_dmarc.example.com.", "TXT", '"v=DMARC1; p=none"'),
            # An alias where the mail host's A record goes: the stack's plain A cannot replace it by import.
            r53_set(
                "mail.example.com.",
                "A",
                extra="<AliasTarget><HostedZoneId>Z35SXDOTRQ7X7K</HostedZoneId>"
                "<DNSName>dualstack.old-lb-1234.us-east-1.elb.amazonaws.com.</DNSName>"
                "<EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget>",
            ),
        ]
    ),
}


def r53_error(status: int, code: str, message: str) -> Answer:
    body = (
        f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{R53}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>1b2c3d4e</RequestId></ErrorResponse>"
    )
    return status, "text/xml", body.encode()


@pytest.fixture
def route53(tmp_path: Path) -> Iterator[tuple[Path, FakeApi]]:
    project = make_project(tmp_path, "route53", {"aws:region": "eu-central-1", "aws:profile": "mail"})
    stack_file = project / "Pulumi.prod.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"]["mailstack:domains"]["example.com"]["zoneId"] = "Z1EXAMPLE"
    stack_file.write_text(yaml.safe_dump(doc))

    def answer(path: str, headers: dict[str, str]) -> Answer:
        # The server checks the signature the way Route 53 does: recomputed from the request with the
        # secret of the key id it names (sigv4 itself is pinned to AWS's test vectors in test_sigv4.py).
        authorization = headers.get("authorization", "")
        if f"Credential={AWS_KEY_ID}/" not in authorization:
            return r53_error(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        url = f"http://{headers['host']}{path}"
        expected = sigv4.sign(
            "GET",
            url,
            sigv4.Credentials(AWS_KEY_ID, AWS_SECRET),
            region="us-east-1",
            service="route53",
            amz_date=headers["x-amz-date"],
        )
        if expected["Authorization"] != authorization:
            return r53_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        if path not in ROUTE53_PAGES:
            return r53_error(404, "NoSuchHostedZone", "No hosted zone found")
        return 200, "text/xml", ROUTE53_PAGES[path].encode()

    with FakeApi(answer) as api:
        yield project, api


ALIAS_DELETE = json.dumps(
    {
        "Changes": [
            {
                "Action": "DELETE",
                "ResourceRecordSet": {
                    "Name": "mail.example.com.",
                    "Type": "A",
                    "AliasTarget": {
                        "HostedZoneId": "Z35SXDOTRQ7X7K",
                        "DNSName": "dualstack.old-lb-1234.us-east-1.elb.amazonaws.com.",
                        "EvaluateTargetHealth": False,
                    },
                },
            }
        ]
    },
    separators=(",", ":"),
)
ROUTE53_EXPECTED = f"""\
# 4 live record set(s) at Route 53 have the name and type of one stack prod
# creates; import them so the stack owns them (the next `pulumi up` then sets their values):
#   MX another.com 10 mail.example.com, 20 mx.backup-provider.net  ->  MX another.com: inbound mail for another.com goes to mail.example.com (RFC 5321 §5.1)
#   TXT _dmarc.example.com v=DMARC1; p=none  ->  TXT _dmarc.example.com: DMARC: what receivers do with mail from example.com failing SPF/DKIM alignment, and where reports go (RFC 9989)
#   MX example.com 5 mail.example.com, 1 aspmx.l.google.com  ->  MX example.com: inbound mail for example.com goes to mail.example.com (RFC 5321 §5.1)
#     `pulumi up` then removes MX 1 aspmx.l.google.com: an MX the stack does not publish (an old mail provider?)
#   TXT example.com v=spf1 include:_spf.google.com ~all, google-site-verification=abc  ->  TXT example.com: SPF: the hosts allowed to send mail from example.com (RFC 7208)
#     `pulumi up` then removes TXT google-site-verification=abc: keep it by adding it to the domain's `records` in the stack config
# (--parent needs the MailDns component in the state: it is there once `pulumi up` has
#  run, even a failed one; before the first `pulumi up`, use --import-file instead)
pulumi import --stack prod aws:route53/record:Record dns-mx-another.com Z2ANOTHER_another.com_MX --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod aws:route53/record:Record dns-txt-_dmarc.example.com Z1EXAMPLE__dmarc.example.com_TXT --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod aws:route53/record:Record dns-mx-example.com Z1EXAMPLE_example.com_MX --parent dns={URN} --protect=false --generate-code=false
pulumi import --stack prod aws:route53/record:Record dns-txt-example.com Z1EXAMPLE_example.com_TXT --parent dns={URN} --protect=false --generate-code=false
# These live record sets must be removed before the stack can create its own:
#   A mail.example.com alias dualstack.old-lb-1234.us-east-1.elb.amazonaws.com: an alias to dualstack.old-lb-1234.us-east-1.elb.amazonaws.com: the stack publishes a plain record set here
aws route53 change-resource-record-sets --hosted-zone-id Z1EXAMPLE --change-batch '{ALIAS_DELETE}'
# Then: pulumi up --stack prod
"""


def credentials_file(tmp_path: Path, key_id: str) -> dict[str, str]:
    path = tmp_path / "credentials"
    path.write_text(
        f"[default]\naws_access_key_id = other\naws_secret_access_key = other\n\n[mail]\n"
        f"aws_access_key_id = {key_id}\naws_secret_access_key = {AWS_SECRET}\n"
    )
    return {"AWS_SHARED_CREDENTIALS_FILE": str(path)}


def test_route53_conflicts_over_two_pages(
    route53: tuple[Path, FakeApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys from the stack's `aws:profile` in the shared credentials file; zone ids from config or the lookup."""
    project, api = route53
    assert run(project, credentials_file(tmp_path, AWS_KEY_ID), {"route53": api.base + "/2013-04-01"}) == 1
    assert capsys.readouterr().out == ROUTE53_EXPECTED
    assert [path for path, _ in api.requests] == list(ROUTE53_PAGES)


def test_route53_environment_keys(route53: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]) -> None:
    project, api = route53
    env = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    assert run(project, env, {"route53": api.base + "/2013-04-01"}) == 1
    assert capsys.readouterr().out == ROUTE53_EXPECTED


def test_route53_wrong_key_exits_2(
    route53: tuple[Path, FakeApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, api = route53
    assert run(project, credentials_file(tmp_path, "AKIAWRONG"), {"route53": api.base + "/2013-04-01"}) == 2
    assert capsys.readouterr().err == (
        f"mailstack adopt: error: Route 53 API 403 for {api.base}/2013-04-01/hostedzonesbyname?dnsname=another.com"
        "&maxitems=10: InvalidClientTokenId: The security token included in the request is invalid.\n"
    )


def test_route53_wrong_secret_exits_2(route53: tuple[Path, FakeApi], capsys: pytest.CaptureFixture[str]) -> None:
    project, api = route53
    env = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    assert run(project, env, {"route53": api.base + "/2013-04-01"}) == 2
    assert capsys.readouterr().err.endswith(
        "SignatureDoesNotMatch: The request signature we calculated does not match.\n"
    )
