"""Pure logic of `verify` (mailstack.verify and the flag parsers): no sockets, no servers.

The SPF walk takes a lookup function; here it is a dict of DNS data, which is the input the
RFC 7208 rules are about. The same walk runs against knotd in tests/test_verify.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from mailstack.verify import build_parser, options_from_args, parse_port_map
from mailstack.verify.blocklist import blocklist_meaning, zen_name
from mailstack.verify.dkim import dkim_key
from mailstack.verify.dmarc import organizational_domain, parse_dmarc, tree_walk_targets
from mailstack.verify.dnsclient import Endpoint, parse_endpoint
from mailstack.verify.findings import Finding, Status, exit_code
from mailstack.verify.hosts import is_cloudflare
from mailstack.verify.outputs import ExpectedRecord, OutputsError, parse_outputs
from mailstack.verify.probes import cert_summary
from mailstack.verify.records import ServerAnswer, judge_record, unexpected_values
from mailstack.verify.spf import Answer, SpfError, SpfTerm, parse_spf, spf_budget, spf_result, walk_spf
from mailstack.verify.values import Value, canonical, txt_kind

# -- SPF parsing ---------------------------------------------------------------------------------


def test_parse_spf_terms() -> None:
    assert parse_spf("v=spf1 mx a:relay.example.net/24//64 ip4:192.0.2.0/24 ~include:_spf.x.test redirect=r.test") == [
        SpfTerm("mx"),
        SpfTerm("a", "relay.example.net/24//64"),
        SpfTerm("ip4", "192.0.2.0/24"),
        SpfTerm("include", "_spf.x.test", "~"),
        SpfTerm("redirect", "r.test", modifier=True),
    ]
    assert SpfTerm("a", "relay.example.net/24//64").cidr == (24, 64)
    assert SpfTerm("a", "relay.example.net/24//64").target == "relay.example.net"
    assert (SpfTerm("mx", "//64").cidr, SpfTerm("mx", "/28").cidr, SpfTerm("mx").cidr) == (
        (None, 64),
        (28, None),
        (None, None),
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("v=spf2 mx", "does not start with v=spf1"),
        ("v=spf1 mx foo:bar", "unknown mechanism `foo:bar`"),
        ("v=spf1 ip4:2001:db8::/32", "`ip4:2001:db8::/32` has an IPv6 address"),
        ("v=spf1 ip6:not-an-ip", "`ip6:not-an-ip` is not a valid ip6 network"),
        ("v=spf1 include:", "`include:` needs a domain"),
        ("v=spf1 redirect=a.test redirect=b.test", "modifier redirect= appears twice"),
        ("v=spf1 all:x", "`all:x`: all takes no argument"),
    ],
)
def test_parse_spf_errors(text: str, error: str) -> None:
    with pytest.raises(SpfError) as caught:
        parse_spf(text)
    assert str(caught.value) == error


# -- SPF walk, budget and result -----------------------------------------------------------------


def dict_lookup(data: Mapping[tuple[str, str], tuple[str, ...]]) -> Any:
    """A lookup over fixed DNS data: missing names are NXDOMAIN (void)."""

    async def lookup(name: str, rdtype: str) -> Answer:
        if (name, rdtype) in data:
            return Answer(data[(name, rdtype)])
        exists = any(n == name for n, _ in data)
        return Answer(nxdomain=not exists)

    return lookup


def walk(domain: str, data: Mapping[tuple[str, str], tuple[str, ...]]) -> Any:
    return asyncio.run(walk_spf(domain, dict_lookup(data)))


BASE = {
    ("example.com", "MX"): ("10 mail.example.com",),
    ("mail.example.com", "A"): ("203.0.113.25",),
    ("mail.example.com", "AAAA"): ("2001:db8::25",),
}


def test_budget_counts_every_dns_querying_term_through_includes() -> None:
    """RFC 7208 §4.6.4: include, a, mx, ptr, exists and redirect count; ip4/ip6/all do not."""
    data = {
        **BASE,
        ("example.com", "TXT"): ("v=spf1 mx include:a.test ip4:192.0.2.1 -all", "site-verification=x"),
        ("a.test", "TXT"): ("v=spf1 a:h.a.test exists:e.a.test include:b.test ~all",),
        ("b.test", "TXT"): ("v=spf1 ip6:2001:db8::/32 -all",),
        ("h.a.test", "A"): ("192.0.2.9",),
        ("e.a.test", "A"): ("127.0.0.2",),
    }
    budget = spf_budget(walk("example.com", data))
    assert (budget.lookups, budget.voids, budget.problems) == (5, 0, ())


def test_budget_counts_void_lookups() -> None:
    """RFC 7208 §4.6.4: a/mx/exists targets with no answer are void lookups (limit 2)."""
    data = {
        **BASE,
        ("example.com", "TXT"): ("v=spf1 mx a:gone1.test a:gone2.test exists:gone3.test -all",),
    }
    budget = spf_budget(walk("example.com", data))
    assert (budget.lookups, budget.voids) == (4, 3)


def test_a_failed_address_lookup_is_not_a_void_lookup() -> None:
    """A timed-out A next to an empty AAAA is unknown, not void: no false RFC 7208 §4.6.4 permerror."""

    async def lookup(name: str, rdtype: str) -> Answer:
        if name == "example.com":
            return Answer(("v=spf1 a:flaky.test -all",))
        return Answer(error="timeout after 1 s") if rdtype == "A" else Answer()

    budget = spf_budget(asyncio.run(walk_spf("example.com", lookup)))
    assert (budget.lookups, budget.voids) == (1, 0)


def test_budget_reports_missing_include_target_and_ptr() -> None:
    data = {**BASE, ("example.com", "TXT"): ("v=spf1 ptr include:nospf.test -all",), ("nospf.test", "TXT"): ("x",)}
    budget = spf_budget(walk("example.com", data))
    assert budget.lookups == 2
    assert budget.problems == (
        "example.com: `ptr` is deprecated (RFC 7208 §5.5) and slow for receivers",
        "example.com → nospf.test: no SPF record",
    )


def test_redirect_counts_only_without_all() -> None:
    """RFC 7208 §6.1: redirect is ignored when the record has an `all` mechanism."""
    data = {
        **BASE,
        ("example.com", "TXT"): ("v=spf1 mx redirect=r.test",),
        ("r.test", "TXT"): ("v=spf1 ip4:198.51.100.0/24 -all",),
    }
    assert spf_budget(walk("example.com", data)).lookups == 2
    assert spf_result(walk("example.com", data), "198.51.100.7") == "pass"
    assert spf_result(walk("example.com", data), "192.0.2.1") == "fail"
    ignored = {**data, ("example.com", "TXT"): ("v=spf1 mx redirect=r.test ?all",)}
    assert spf_budget(walk("example.com", ignored)).lookups == 1
    assert spf_result(walk("example.com", ignored), "198.51.100.7") == "neutral"


def test_include_loop_stops() -> None:
    data = {("a.test", "TXT"): ("v=spf1 include:b.test -all",), ("b.test", "TXT"): ("v=spf1 include:a.test -all",)}
    node = walk("a.test", data)
    budget = spf_budget(node)
    assert budget.problems == ("a.test → b.test → a.test: include loop or chain too deep",)
    assert spf_result(node, "192.0.2.1") == "permerror"


@pytest.mark.parametrize(
    ("record", "ip", "result"),
    [
        ("v=spf1 mx -all", "203.0.113.25", "pass"),
        ("v=spf1 mx -all", "2001:db8::25", "pass"),
        ("v=spf1 mx -all", "198.51.100.7", "fail"),
        ("v=spf1 mx ~all", "198.51.100.7", "softfail"),
        ("v=spf1 a:mail.example.com/24 -all", "203.0.113.99", "pass"),
        ("v=spf1 ip4:198.51.100.0/24 -all", "203.0.113.25", "fail"),
        ("v=spf1 -ip4:203.0.113.25 mx", "203.0.113.25", "fail"),
        ("v=spf1 include:nothing.test -all", "203.0.113.25", "permerror"),
        ("v=spf1 mx", "198.51.100.7", "neutral"),
    ],
)
def test_spf_result(record: str, ip: str, result: str) -> None:
    data = {**BASE, ("example.com", "TXT"): (record,)}
    assert spf_result(walk("example.com", data), ip) == result


def test_two_spf_records_are_a_permerror() -> None:
    data = {**BASE, ("example.com", "TXT"): ("v=spf1 mx -all", "v=spf1 a -all")}
    node = walk("example.com", data)
    assert node.records == ("v=spf1 mx -all", "v=spf1 a -all")
    assert spf_result(node, "203.0.113.25") == "permerror"
    assert spf_budget(node).problems == ("example.com: 2 SPF records (RFC 7208 §3.2 allows one)",)


# -- DMARC, DKIM, TXT kinds ----------------------------------------------------------------------


def test_parse_dmarc_good() -> None:
    record, problems = parse_dmarc(
        "v=DMARC1; p=none; rua=mailto:a@example.com,mailto:b@reports.test!10m; ruf=mailto:f@x.test; sp=reject; ri=86400"
    )
    assert problems == []
    assert record is not None
    assert (record.rua, record.ruf, record.tags["sp"]) == (("a@example.com", "b@reports.test"), ("f@x.test",), "reject")


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("p=none; v=DMARC1", ["must start with v=DMARC1"]),
        ("v=DMARC1; rua=mailto:a@x.test", ["p= is required"]),
        (
            "v=DMARC1; p=block; sp=maybe; adkim=x; pct=200; ri=daily; fo=2",
            [
                "p=block is not none, quarantine or reject",
                "sp=maybe is not none, quarantine or reject",
                "adkim=x is not r or s",
                "pct=200 is not 0-100",
                "ri=daily is not a number of seconds",
                "fo=2 is not a colon list of 0, 1, d, s",
            ],
        ),
        ("v=DMARC1; p=none; rua=https://x.test/r", ["rua: `https://x.test/r` is not a mailto: URI"]),
        ("v=DMARC1; p=none; p=reject", ["tag `p` appears twice"]),
    ],
)
def test_parse_dmarc_problems(text: str, problems: list[str]) -> None:
    assert parse_dmarc(text)[1] == problems


def test_tree_walk_targets_follow_rfc_9989() -> None:
    """RFC 9989 §4.10: one label less per step; from 8 labels on, a shortcut to the 7 rightmost labels."""
    assert tree_walk_targets("a.mail.example.com") == ["a.mail.example.com", "mail.example.com", "example.com", "com"]
    assert tree_walk_targets("a.b.c.d.e.f.g.h.i.j.mail.example.com") == [
        "a.b.c.d.e.f.g.h.i.j.mail.example.com",
        "g.h.i.j.mail.example.com",
        "h.i.j.mail.example.com",
        "i.j.mail.example.com",
        "j.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    ]
    assert len(tree_walk_targets("1.2.3.4.5.6.7.8")) == 8


@pytest.mark.parametrize(
    ("start", "found", "org"),
    [
        # The examples of RFC 9989 §4.10.2, in order.
        ("a.mail.example.com", [("mail.example.com", None), ("example.com", None)], "example.com"),
        ("a.mail.example.com", [("mail.example.com", "n")], "mail.example.com"),
        ("a.mail.example.com", [("com", "y")], "example.com"),
        # psd=y at the start itself does not count; nothing found: the start is its own.
        ("example.com", [("example.com", "y")], "example.com"),
        ("b.example.com", [], "b.example.com"),
        ("b.example.com", [("b.example.com", None), ("example.com", None)], "example.com"),
    ],
)
def test_organizational_domain_selection(start: str, found: list[tuple[str, str | None]], org: str) -> None:
    assert organizational_domain(start, found) == org


def test_dkim_key_ignores_whitespace_and_detects_revocation() -> None:
    assert dkim_key("v=DKIM1; k=rsa; p=MIIB AQAB\t CD") == "MIIBAQABCD"
    assert dkim_key("v=DKIM1; p=") == ""
    with pytest.raises(ValueError, match="no p= tag"):
        dkim_key("v=DKIM1; k=rsa")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("v=spf1 mx -all", "spf"),
        ("v=spf1", "spf"),
        ("v=spf10 mx", None),
        ("v=DKIM1; k=rsa; p=AAA", "dkim"),
        ("k=rsa; p=AAA", "dkim"),
        ("v=DMARC1; p=none", "dmarc"),
        ("v=TLSRPTv1; rua=mailto:t@x.test", "tlsrpt"),
        ("google-site-verification=abc", None),
    ],
)
def test_txt_kind(text: str, kind: str | None) -> None:
    assert txt_kind(text) == kind


# -- record values and verdicts ------------------------------------------------------------------


def expected(rtype: str, content: str, priority: int | None = None, name: str = "example.com") -> ExpectedRecord:
    return ExpectedRecord("example.com", name, rtype, content, priority)


def test_expected_record_rdata_and_zone_line() -> None:
    assert expected("MX", "Mail.Example.com", 10).zone_line() == "example.com. 3600 IN MX 10 Mail.Example.com."
    assert expected("SRV", "0 0 .", 0, "_imap._tcp.example.com").zone_line() == (
        "_imap._tcp.example.com. 3600 IN SRV 0 0 0 ."
    )
    long = "v=DKIM1; k=rsa; p=" + "A" * 300
    assert expected("TXT", long).zone_line() == f'example.com. 3600 IN TXT "{long[:255]}" "{long[255:]}"'
    assert expected("MX", "mail.example.com", 10).key == "MX 10 mail.example.com"
    assert expected("AAAA", "2001:DB8:0::25").display == "2001:db8::25"


def test_canonical_treats_receivers_view_as_equal() -> None:
    """Split strings, name case, tag order and key whitespace do not change what a receiver reads."""
    split = expected("TXT", "v=DKIM1; k=rsa; p=ABCD").rdata
    assert canonical("TXT", split) == canonical("TXT", expected("TXT", "v=DKIM1;p=AB CD;k=rsa").rdata)
    assert canonical("TXT", expected("TXT", "v=spf1 MX -all").rdata) == "TXT v=spf1 mx -all"
    assert canonical("MX", expected("MX", "MAIL.example.com.", 10).rdata) == "MX 10 mail.example.com"


def answer(server: str, *values: ExpectedRecord, error: str | None = None) -> ServerAnswer:
    return ServerAnswer(server, tuple(Value(v.key, v.display) for v in values), error)


SPF = expected("TXT", "v=spf1 mx -all")
OLD_SPF = expected("TXT", "v=spf1 a -all")
OTHER_TXT = expected("TXT", "site-verification=abc")


@pytest.mark.parametrize(
    ("auth", "resolver", "status", "detail"),
    [
        ([answer("ns1", SPF, OTHER_TXT), answer("ns2", SPF)], answer("r", SPF), Status.OK, "at 2 nameserver(s)"),
        ([answer("ns1", OTHER_TXT)], answer("r"), Status.MISSING, "not published at any nameserver"),
        ([answer("ns1", OLD_SPF)], answer("r", OLD_SPF), Status.DIFFERENT, "nameservers publish v=spf1 a -all"),
        (
            [answer("ns1", SPF), answer("ns2", OLD_SPF)],
            answer("r", SPF),
            Status.PROPAGATING,
            "served by ns1; not yet by ns2 (different: v=spf1 a -all)",
        ),
        (
            [answer("ns1", SPF)],
            answer("r", OLD_SPF),
            Status.PROPAGATING,
            "all nameservers serve it; resolver r still answers v=spf1 a -all"
            " (cached for up to the old record's TTL; this record's TTL is 3600 s)",
        ),
        (
            [answer("ns1", error="timeout after 1 s")],
            answer("r", SPF),
            Status.ERROR,
            "no nameserver of example.com answered (ns1: timeout after 1 s)",
        ),
        (
            [answer("ns1", SPF), answer("ns2", error="timeout after 1 s")],
            answer("r", error="timeout after 1 s"),
            Status.OK,
            "at 1 nameserver(s) (resolver r did not answer: timeout after 1 s)",
        ),
    ],
)
def test_judge_record(auth: list[ServerAnswer], resolver: ServerAnswer, status: Status, detail: str) -> None:
    finding = judge_record(SPF, [SPF], auth, resolver, "example.com")
    assert (finding.status, finding.detail) == (status, detail)


def test_judge_record_fix_is_the_exact_record() -> None:
    finding = judge_record(SPF, [SPF], [answer("ns1", OLD_SPF)], None, "example.com")
    assert finding.fix == 'publish example.com. 3600 IN TXT "v=spf1 mx -all" (replacing v=spf1 a -all)'
    assert finding.found == ("v=spf1 a -all",)


def test_unexpected_values_only_for_owned_record_sets() -> None:
    """An extra MX is reported; an unrelated TXT next to SPF is not."""
    mx = expected("MX", "mail.example.com", 10)
    old_mx = expected("MX", "old.example.net", 20)
    assert [v.text for v in unexpected_values([mx], answer("ns1", mx, old_mx))] == ["20 old.example.net"]
    assert unexpected_values([SPF], answer("ns1", SPF, OTHER_TXT)) == ()
    assert unexpected_values([mx], answer("ns1", old_mx)) == ()  # reported as `different` instead


def test_exit_code() -> None:
    def finding(status: Status) -> Finding:
        return Finding("example.com", "records", "x", status)

    assert exit_code([finding(Status.OK), finding(Status.WARN)]) == 0
    assert exit_code([finding(Status.OK), finding(Status.ERROR)]) == 2
    assert exit_code([finding(Status.ERROR), finding(Status.PROPAGATING)]) == 1
    assert exit_code([]) == 0


# -- the outputs contract ------------------------------------------------------------------------


def test_parse_outputs() -> None:
    data = {
        "hostname": "Mail.Example.com.",
        "publicIPv4": "203.0.113.25",
        "publicIPv6": None,
        "dnsRecords": [
            {"zone": "example.com", "name": "example.com", "type": "MX", "content": "mail.example.com", "priority": 10},
            {"zone": "example.com", "name": "example.com", "type": "txt", "content": "v=spf1 mx -all", "ttl": 300},
        ],
    }
    parsed = parse_outputs(data)
    assert (parsed.hostname, parsed.ips, parsed.mail_domains) == (
        "mail.example.com",
        ("203.0.113.25",),
        ("example.com",),
    )
    assert [(r.type, r.ttl, r.priority) for r in parsed.records] == [("MX", 3600, 10), ("TXT", 300, None)]


def test_parse_outputs_reports_every_problem() -> None:
    data = {
        "hostname": "mail.example.com",
        "publicIPv4": "not-an-ip",
        "dnsRecords": [
            "x",
            {"zone": "example.com", "name": "example.com", "type": "MX", "content": "mail.example.com"},
            {"zone": "example.com", "name": "other.org", "type": "A", "content": "192.0.2.1"},
            {"zone": "example.com", "name": "example.com", "type": "NS", "content": "ns1.example.com"},
            {"zone": "example.com", "name": "example.com", "type": "A", "content": "999.1.1.1"},
            {"zone": "example.com", "name": "example.com"},
        ],
    }
    with pytest.raises(OutputsError) as caught:
        parse_outputs(data)
    assert caught.value.reasons == [
        "`publicIPv4` is not an IP address: 'not-an-ip'",
        "dnsRecords[0] must be an object",
        "dnsRecords[1]: MX needs an integer `priority`",
        "dnsRecords[2]: other.org is not inside zone example.com",
        "dnsRecords[3]: type NS is not one of MX, TXT, A, AAAA, SRV, CNAME, CAA, TLSA",
        "dnsRecords[4]: A content '999.1.1.1' is not valid: Text input is malformed.",
        "dnsRecords[5] needs string fields type, content",
    ]


# -- hosts, blocklists, flags --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "proxied"),
    [("104.16.132.229", True), ("172.67.1.1", True), ("2606:4700::6810:84e5", True), ("203.0.113.25", False)],
)
def test_is_cloudflare(address: str, proxied: bool) -> None:
    assert is_cloudflare(address) is proxied


def test_spamhaus_names_and_codes() -> None:
    assert zen_name("203.0.113.25") == "25.113.0.203.zen.spamhaus.org"
    assert zen_name("2001:db8::25").startswith("5.2.0.0.0.0.0.0.")
    assert zen_name("2001:db8::25").endswith(".8.b.d.0.1.0.0.2.zen.spamhaus.org")
    assert blocklist_meaning(["127.0.0.4", "127.0.0.10"], dbl=False) == (
        ["XBL (exploited/infected host)", "PBL (ISP: dynamic/residential range that should not send mail directly)"],
        [],
    )
    assert blocklist_meaning(["127.255.255.254"], dbl=False) == (
        [],
        ["query came through a public/open resolver, which Spamhaus refuses"],
    )
    assert blocklist_meaning(["127.0.1.103"], dbl=True) == (["DBL abused legitimate domain"], [])


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("127.0.0.2", Endpoint("127.0.0.2", 53)),
        ("127.0.0.2:5353", Endpoint("127.0.0.2", 5353)),
        ("::1", Endpoint("::1", 53)),
        ("[::1]:5353", Endpoint("::1", 5353)),
    ],
)
def test_parse_endpoint(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize("text", ["resolver.example", "127.0.0.1:0", "[::1]5353"])
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_parse_port_map() -> None:
    assert parse_port_map("25=2525, 465=4465,993=9993") == {25: 2525, 465: 4465, 993: 9993}
    with pytest.raises(ValueError, match="only 25, 465, 993 are checked"):
        parse_port_map("587=2587")
    with pytest.raises(ValueError, match="is not PORT=PORT"):
        parse_port_map("25:2525")


@pytest.mark.parametrize("text", ["25=0", "465=65536", "993=70000"])
def test_parse_port_map_rejects_ports_out_of_range(text: str) -> None:
    """Caught at the command line, not as an OverflowError from the socket layer halfway through a run."""
    with pytest.raises(ValueError, match="bad port"):
        parse_port_map(text)


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--timeout", "inf"], "--timeout must be a positive number of seconds"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds"),
        (["--timeout", "0"], "--timeout must be a positive number of seconds"),
        (["--smtp-port", "0"], "bad port in '--smtp-port 0'"),
        (["--ns-port", "65536"], "bad port in '--ns-port 65536'"),
    ],
)
def test_flags_that_would_hang_or_crash_are_refused(flags: list[str], error: str) -> None:
    """Zero DNS slots or an endless timeout would make verify wait forever; a bad port would crash it."""
    args = build_parser().parse_args(["--outputs", "o.json", "--resolver", "127.0.0.1", *flags])
    with pytest.raises(ValueError) as caught:
        options_from_args(args)
    assert str(caught.value) == error


def test_cert_summary_of_a_certificate_that_does_not_parse() -> None:
    """OpenSSL may accept what cryptography refuses; the summary says so instead of crashing the run."""
    assert cert_summary(b"not a certificate").startswith("presents a certificate that does not parse: ")


def test_mta_sts_policy_rules() -> None:
    """RFC 8461 §3.2 fields and §4.1 MX matching, as verify applies them to a fetched policy."""
    from mailstack.verify.mta_sts import mx_matches, parse_policy

    policy, problems = parse_policy(
        "version: STSv1\nmode: enforce\nmx: *.example.net\nmx: mail.example.com\nmax_age: 86400\n"
    )
    assert problems == []
    assert policy is not None and policy.mx == ("*.example.net", "mail.example.com")
    assert mx_matches("mx1.example.net", "*.example.net")
    assert not mx_matches("a.mx1.example.net", "*.example.net")  # one label only
    assert not mx_matches("example.net", "*.example.net")
    assert mx_matches("mail.example.com", "mail.example.com")
    _, problems = parse_policy("version: STSv1\r\nmode: enforce\r\nmax_age: 99999999999\r\n")
    assert problems == [
        "max_age `99999999999` is not 0..31557600 seconds",
        "mode enforce without any mx line: no MX host would be valid",
    ]
    assert parse_policy("garbage") == (None, ["line `garbage` is not `key: value`"])
