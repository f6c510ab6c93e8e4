"""Mail reaches the right mailbox and passes receivers' checks: the rules of config/delivery_checks.py,
the DMARC builder (RFC 9989) and the warnings a valid configuration carries."""

from __future__ import annotations

import json
from typing import Any

import checkdmarc.dmarc
import checkdmarc.utils
import dns.resolver
import pytest

from mailstack.config import ConfigError, MailSettings, containers, dms_files, load_settings
from mailstack.config.dms_env import dms_env
from mailstack.config.records import dmarc_text, mail_records, report_authorization_records, static_records
from mailstack.config.zonefile import render_zone_files
from tests.conftest import DEV_STACK, require_tool
from tests.dnsserver import KnotServer
from tests.harness import rsa_key_pem, stack_config

BASE: dict[str, Any] = {
    "mailstack:hostname": "mail.example.org",
    "mailstack:domains": {"example.org": {}},
    "mailstack:accounts": {"me@example.org": {}},
}
CF = {"mailstack:dns": {"provider": "cloudflare"}, "cloudflare:apiToken": "t"}
SECRETS = ("cloudflare:apiToken", "mailstack:relay")
RELAY = {"host": "smtp.relay.example", "username": "u", "password": "p"}

# publicIPv6 is refused until the Docker provider can publish both address families (config/checks.py).
IPV6_REFUSED = (
    "mailstack:publicIPv6",
    "cannot be served: the mail ports are published on 0.0.0.0 (IPv4 only), so an AAAA record would send IPv6 "
    "mail to a closed port, and publishing them on :: as well would make the Docker provider replace the mail "
    "container on every pulumi up (terraform-provider-docker#909); publish no AAAA record (docs/host.md, IPv6)",
    "pulumi config rm 'mailstack:publicIPv6'",
)


def load(changes: dict[str, Any]) -> MailSettings:
    raw = {**BASE, **changes}
    raw = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
    return load_settings(raw, secret_keys=set(SECRETS), stack="test", home="/home/u")


INVALID = [
    pytest.param(
        {
            "mailstack:domains": {
                "example.org": {"dmarc": {"rua": ["dmarc@example.org"], "ruf": ["mailto:f@example.org"]}}
            }
        },
        [
            (
                'mailstack:domains["example.org"].dmarc.rua[0]',
                "'dmarc@example.org' is in the stack's domain example.org but is neither an account nor an alias: "
                "every DMARC report sent to it would bounce",
                "pulumi config set --path 'mailstack:aliases[\"dmarc@example.org\"]' me@example.org (deliver the "
                "reports to an existing mailbox), or pulumi config set --path --secret "
                "'mailstack:accounts[\"dmarc@example.org\"].password' <password> (a mailbox of its own)",
            ),
            (
                'mailstack:domains["example.org"].dmarc.ruf[0]',
                "'f@example.org' is in the stack's domain example.org but is neither an account nor an alias: "
                "every DMARC report sent to it would bounce",
                "pulumi config set --path 'mailstack:aliases[\"f@example.org\"]' me@example.org (deliver the "
                "reports to an existing mailbox), or pulumi config set --path --secret "
                "'mailstack:accounts[\"f@example.org\"].password' <password> (a mailbox of its own)",
            ),
        ],
        id="report-address-without-mailbox",
    ),
    pytest.param(
        {"mailstack:relay": RELAY},
        [
            (
                "mailstack:relay.spfInclude",
                "the custom relay smtp.relay.example sends all outgoing mail, but the SPF record of example.org "
                "('v=spf1 mx -all') does not authorize it: receivers would see an SPF fail for every message",
                "pulumi config set --path 'mailstack:relay.spfInclude' <the SPF domain your relay provider documents> "
                "(or list the relay's sending addresses: pulumi config set --path "
                "'mailstack:domains[\"example.org\"].spf.ip4[0]' <relay address>)",
            )
        ],
        id="custom-relay-without-spf",
    ),
    pytest.param(
        {"mailstack:publicIPv4": "192.168.1.20", **CF},
        [
            (
                "mailstack:publicIPv4",
                "192.168.1.20 is a private address (192.168.0.0/16, RFC 1918): cloudflare would publish it as the "
                "address of mail.example.org, where no other mail server can reach it",
                "pulumi config set 'mailstack:publicIPv4' <the server's public address>",
            )
        ],
        id="private-ipv4-at-cloudflare",
    ),
    pytest.param(
        {
            "mailstack:publicIPv4": "100.72.0.9",
            "mailstack:publicIPv6": "2001:db8::25",
            "mailstack:target": {"dockerIPv6": True},
            **CF,
        },
        [
            IPV6_REFUSED,
            (
                "mailstack:publicIPv4",
                "100.72.0.9 is a carrier-grade NAT (shared) address (100.64.0.0/10, RFC 6598): cloudflare would "
                "publish it as the address of mail.example.org, where no other mail server can reach it",
                "pulumi config set 'mailstack:publicIPv4' <the server's public address>",
            ),
            (
                "mailstack:publicIPv6",
                "2001:db8::25 is a documentation address (2001:db8::/32, RFC 3849): cloudflare would publish it as "
                "the address of mail.example.org, where no other mail server can reach it",
                "pulumi config set 'mailstack:publicIPv6' <the server's public address>",
            ),
        ],
        id="cgnat-and-documentation-at-cloudflare",
    ),
    pytest.param(
        {"mailstack:publicIPv4": "198.18.0.1", **CF},
        [
            (
                "mailstack:publicIPv4",
                "198.18.0.1 is not a globally routable address (IANA special-purpose registry, RFC 6890): cloudflare "
                "would publish it as the address of mail.example.org, where no other mail server can reach it",
                "pulumi config set 'mailstack:publicIPv4' <the server's public address>",
            )
        ],
        id="benchmarking-ipv4-at-cloudflare",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"pct": 50, "rf": "afrf"}}}},
        [
            (
                'mailstack:domains["example.org"].dmarc.pct',
                "pct was removed by RFC 9989 and receivers ignore it; to try a policy first, use t: y (receivers "
                "then apply one level below p)",
                "pulumi config rm --path 'mailstack:domains[\"example.org\"].dmarc.pct', then pulumi config set "
                "--path 'mailstack:domains[\"example.org\"].dmarc.t' y",
            ),
            (
                'mailstack:domains["example.org"].dmarc.rf',
                "rf was removed by RFC 9989 and receivers ignore it (failure reports have a single format)",
                "pulumi config rm --path 'mailstack:domains[\"example.org\"].dmarc.rf'",
            ),
        ],
        id="dmarc-removed-tags",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"np": "drop", "t": "yes"}}}},
        [
            (
                'mailstack:domains["example.org"].dmarc.np',
                "must be one of: none, quarantine, reject",
                "pulumi config set --path 'mailstack:domains[\"example.org\"].dmarc.np' <none|quarantine|reject>",
            ),
            (
                'mailstack:domains["example.org"].dmarc.t',
                "must be one of: y, n",
                "pulumi config set --path 'mailstack:domains[\"example.org\"].dmarc.t' <y|n>",
            ),
        ],
        id="dmarc-np-t-values",
    ),
    pytest.param(
        {"mailstack:inbound": {"spfFail": "quarantine"}},
        [
            (
                "mailstack:inbound.spfFail",
                "must be one of: reject, junk",
                "pulumi config set --path 'mailstack:inbound.spfFail' <reject|junk>",
            )
        ],
        id="spf-fail-value",
    ),
    pytest.param(
        {
            "mailstack:inbound": {"spfFail": "junk"},
            "mailstack:profile": "standard",
            "mailstack:env": {"MOVE_SPAM_TO_JUNK": 0},
        },
        [
            (
                "mailstack:env.MOVE_SPAM_TO_JUNK",
                "is 0, but inbound.spfFail junk on the standard profile files mail into Junk through DMS's "
                "MOVE_SPAM_TO_JUNK; mail failing SPF would land in the inbox",
                "pulumi config rm --path 'mailstack:env.MOVE_SPAM_TO_JUNK'",
            )
        ],
        id="spf-junk-without-spam-folder",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), INVALID)
def test_invalid_config_lists_exactly_these_problems(
    changes: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    with pytest.raises(ConfigError) as info:
        load(changes)
    assert [(p.key, p.message, p.fix) for p in info.value.problems] == expected


VALID = [
    pytest.param({"mailstack:relay": {**RELAY, "spfInclude": "spf.relay.example"}}, id="relay-with-include"),
    pytest.param(
        {"mailstack:relay": RELAY, "mailstack:domains": {"example.org": {"spf": {"ip4": ["198.51.100.7"]}}}},
        id="relay-authorized-by-ip4",
    ),
    pytest.param({"mailstack:relay": {**RELAY, "preset": "ses", "region": "eu-west-1"}}, id="ses-needs-no-include"),
    pytest.param(
        {
            "mailstack:domains": {"example.org": {"dmarc": {"rua": ["dmarc@example.org"]}}},
            "mailstack:aliases": {"@example.org": "me@example.org"},
        },
        id="report-address-caught-by-catch-all",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"rua": ["reports@vendor.example"]}}}},
        id="report-address-outside-the-stack",
    ),
    pytest.param({"mailstack:publicIPv4": "93.184.215.14", **CF}, id="public-ipv4-at-cloudflare"),
    pytest.param(
        {"mailstack:publicIPv4": "10.0.0.5", "mailstack:hostname": "mail.elsewhere.example", **CF},
        id="private-ip-not-published",
    ),
]


@pytest.mark.parametrize("changes", VALID)
def test_valid_configs_pass(changes: dict[str, Any]) -> None:
    assert load(changes).warnings == ()


WARNINGS = [
    pytest.param(
        {"mailstack:publicIPv4": "127.0.0.1"},
        [
            (
                "mailstack:publicIPv4",
                "127.0.0.1 is a loopback address (127.0.0.0/8, RFC 1122): fine for a test stack, but the zone file "
                "publishes it as the address of mail.example.org, where no other mail server can reach it",
                "pulumi config set 'mailstack:publicIPv4' <the server's public address>",
            )
        ],
        id="loopback-with-manual-dns",
    ),
    pytest.param(
        # (An IPv6 address is refused outright: IPV6_REFUSED.)
        {"mailstack:publicIPv4": "169.254.7.1"},
        [
            (
                "mailstack:publicIPv4",
                "169.254.7.1 is a link-local address (169.254.0.0/16, RFC 3927): fine for a test stack, but the zone "
                "file publishes it as the address of mail.example.org, where no other mail server can reach it",
                "pulumi config set 'mailstack:publicIPv4' <the server's public address>",
            )
        ],
        id="link-local-ipv4-with-manual-dns",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"ri": 86400}}}},
        [
            (
                'mailstack:domains["example.org"].dmarc.ri',
                "ri was removed by RFC 9989: receivers send aggregate reports once a day whatever it says (it is "
                "still published, for receivers that follow RFC 7489)",
                "pulumi config rm --path 'mailstack:domains[\"example.org\"].dmarc.ri'",
            )
        ],
        id="ri-is-ignored",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), WARNINGS)
def test_warnings_are_exactly_these(changes: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    assert [(w.key, w.message, w.fix) for w in load(changes).warnings] == expected


def test_dev_stack_loads_with_a_loopback_note() -> None:
    """The dev stack publishes 127.0.0.1 with manual DNS: allowed, with the note."""
    dev = load_settings(stack_config(DEV_STACK), stack="dev", home="/home/u")
    assert [w.key for w in dev.warnings] == ["mailstack:publicIPv4"]


def test_bare_report_addresses_are_published_as_mailto_uris() -> None:
    settings = load(
        {
            "mailstack:domains": {
                "example.org": {"dmarc": {"rua": ["Dmarc@Example.ORG"], "ruf": ["mailto:f@bücher.example"]}},
                "bücher.example": {"dmarc": {"rua": ["dmarc@example.org"]}},
            },
            "mailstack:aliases": {"dmarc@example.org": "me@example.org", "f@bücher.example": "me@example.org"},
        }
    )
    org = settings.domain("example.org")
    assert (org.dmarc.rua, org.dmarc.ruf) == (("mailto:Dmarc@example.org",), ("mailto:f@xn--bcher-kva.example",))
    assert dmarc_text(org) == "v=DMARC1; p=quarantine; rua=mailto:Dmarc@example.org; ruf=mailto:f@xn--bcher-kva.example"
    # The authorization records follow from the bare address too (RFC 9990 §4).
    assert [(r.zone, r.name, r.content) for r in report_authorization_records(settings)] == [
        ("xn--bcher-kva.example", "example.org._report._dmarc.xn--bcher-kva.example", "v=DMARC1"),
        ("example.org", "xn--bcher-kva.example._report._dmarc.example.org", "v=DMARC1"),
    ]


def test_dmarc_np_and_t_tags() -> None:
    settings = load(
        {
            "mailstack:domains": {
                "example.org": {
                    "dmarc": {
                        "policy": "reject",
                        "subdomainPolicy": "quarantine",
                        "np": "reject",
                        "t": "y",
                        "rua": ["dmarc@example.org"],
                    }
                }
            },
            "mailstack:aliases": {"dmarc@example.org": "me@example.org"},
        }
    )
    text = dmarc_text(settings.domain("example.org"))
    assert text == "v=DMARC1; p=reject; sp=quarantine; np=reject; t=y; rua=mailto:dmarc@example.org"
    # checkdmarc (an RFC 9989 reader) finds the record through a real server serving the rendered
    # zone (it also checks the report domain's MX there), and reads the new tags.
    require_tool("knotd")
    keys = {("example.org", "mail"): rsa_key_pem(2048, 0)[1]}
    zones = render_zone_files(mail_records(settings, keys), stack="test")
    checkdmarc.utils.DNS_CACHE.clear()
    with KnotServer(zones, address="127.0.0.1") as server:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [server.address]
        resolver.port = server.port
        record = checkdmarc.dmarc.get_dmarc_record("example.org", resolver=resolver)
    assert record["record"] == text
    parsed = record["parsed"]
    assert {k: v["value"] for k, v in parsed["tags"].items() if v.get("explicit")} == {
        "v": "DMARC1",
        "p": "reject",
        "sp": "quarantine",
        "np": "reject",
        "t": "y",
        "rua": [{"scheme": "mailto", "address": "dmarc@example.org", "size_limit": None}],
    }
    assert parsed["warnings"] == []


def test_sibling_subdomains_under_a_stack_domain_share_an_organization() -> None:
    """RFC 9989 §4.10.2 over the stack's own DMARC records: example.org publishes one, so
    a.example.org and b.example.org share the Organizational Domain and need no authorization;
    with example.org outside the stack nothing proves it, and the (harmless) record is published."""
    domains = {
        "a.example.org": {"dmarc": {"rua": ["d@b.example.org"]}},
        "b.example.org": {},
    }
    accounts = {"me@example.org": {}, "d@b.example.org": {}}
    with_apex = load({"mailstack:domains": {"example.org": {}, **domains}, "mailstack:accounts": accounts})
    assert report_authorization_records(with_apex) == []
    without_apex = load(
        {
            "mailstack:domains": domains,
            "mailstack:accounts": {"d@b.example.org": {}},
            "mailstack:hostname": "mail.a.example.org",
        }
    )
    assert [r.name for r in report_authorization_records(without_apex)] == [
        "a.example.org._report._dmarc.b.example.org"
    ]
    assert "a.example.org._report._dmarc.b.example.org" in [r.name for r in static_records(without_apex)]


def test_the_pulumi_program_logs_each_warning(dev_config: dict[str, str]) -> None:
    """Under the mock runtime: the dev stack deploys, and `pulumi up` shows the loopback note as a warning."""
    from tests.harness import run_program

    result = run_program(dev_config)
    assert result.error is None, result.error
    assert [m for m in result.logs if m.startswith("mailstack: mailstack:publicIPv4")] == [
        "mailstack: mailstack:publicIPv4: 127.0.0.1 is a loopback address (127.0.0.0/8, RFC 1122): fine for a test "
        "stack, but the zone file publishes it as the address of mail.example.test, where no other mail server can "
        "reach it\n    fix: pulumi config set 'mailstack:publicIPv4' <the server's public address>"
    ]


# -- builders: virtual file, SRS, inbound.spfFail ------------------------------------------------


def test_virtual_file_gives_each_account_of_a_catch_all_domain_an_identity_line() -> None:
    settings = load(
        {
            "mailstack:domains": {"example.org": {}, "another.org": {}},
            "mailstack:accounts": {"me@example.org": {}, "bob@example.org": {}, "me@another.org": {}},
            "mailstack:aliases": {"@example.org": "me@example.org", "sales@example.org": "bob@example.org"},
        }
    )
    assert dms_files.virtual_file(settings.aliases, settings.accounts) == dms_files.HEADER + (
        "sales@example.org bob@example.org\n"
        "# accounts of catch-all domains keep their own mail (listed before the catch-all)\n"
        "bob@example.org bob@example.org\n"
        "me@example.org me@example.org\n"
        "@example.org me@example.org\n"
    )
    # No catch-all: no identity lines.
    assert dms_files.virtual_file(settings.aliases[:1], settings.accounts) == (
        dms_files.HEADER + "sales@example.org bob@example.org\n"
    )


SRS_CASES = [
    pytest.param({}, (), id="no-alias-no-srs"),
    pytest.param({"mailstack:aliases": {"postmaster@example.org": "me@example.org"}}, (), id="local-alias-no-srs"),
    pytest.param(
        {"mailstack:aliases": {"fwd@example.org": ["me@example.org", "Friend@Elsewhere.example"]}},
        (("ENABLE_SRS", "1"), ("SRS_DOMAINNAME", "example.org")),
        id="external-forward",
    ),
    pytest.param(
        {
            "mailstack:hostname": "mail.host.example",
            "mailstack:domains": {"example.org": {}, "another.org": {}},
            "mailstack:aliases": {"@another.org": "someone@elsewhere.example"},
        },
        (("ENABLE_SRS", "1"), ("SRS_DOMAINNAME", "another.org"), ("SRS_EXCLUDE_DOMAINS", "example.org")),
        id="hostname-outside-the-mail-domains",
    ),
    pytest.param(
        {
            "mailstack:hostname": "mx.mail.example.org",
            "mailstack:domains": {"example.org": {}, "mail.example.org": {}, "another.org": {}},
            "mailstack:aliases": {"x@another.org": "someone@elsewhere.example"},
        },
        (
            ("ENABLE_SRS", "1"),
            ("SRS_DOMAINNAME", "mail.example.org"),
            ("SRS_EXCLUDE_DOMAINS", "another.org,example.org"),
        ),
        id="longest-domain-holding-the-hostname",
    ),
    pytest.param(
        {
            "mailstack:aliases": {"fwd@example.org": "friend@elsewhere.example"},
            "mailstack:env": {"SRS_DOMAINNAME": "srs.example.org", "SRS_SECRET": "c2VjcmV0"},
        },
        (("ENABLE_SRS", "1"), ("SRS_DOMAINNAME", "srs.example.org"), ("SRS_SECRET", "c2VjcmV0")),
        id="user-env-overrides",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), SRS_CASES)
def test_srs_is_on_exactly_when_an_alias_forwards_outside_the_stack(
    changes: dict[str, Any], expected: tuple[tuple[str, str], ...]
) -> None:
    env = dms_env(load(changes))
    assert tuple((k, v) for k, v in env if k.startswith("SRS_") or k == "ENABLE_SRS") == expected


def test_srs_off_by_hand_is_refused_while_aliases_forward_outside() -> None:
    with pytest.raises(ConfigError) as info:
        load(
            {
                "mailstack:aliases": {"fwd@example.org": "friend@elsewhere.example"},
                "mailstack:env": {"ENABLE_SRS": False},
            }
        )
    assert [(p.key, p.message, p.fix) for p in info.value.problems] == [
        (
            "mailstack:env.ENABLE_SRS",
            "is 0, but aliases forward to friend@elsewhere.example outside the stack's domains: without SRS the "
            "forwarded mail keeps its sender's envelope address and fails SPF at the destination",
            "pulumi config rm --path 'mailstack:env.ENABLE_SRS'",
        )
    ]


POLICYD_JUNK = dms_files.HEADER + (
    "# policyd-spf.conf(5); mounted at /etc/postfix-policyd-spf-python/policyd-spf.conf\n"
    "debugLevel = 1\n"
    "TestOnly = 1\n"
    "\n"
    "HELO_reject = False\n"
    "Mail_From_reject = False\n"
    "\n"
    "PermError_reject = False\n"
    "TempError_Defer = False\n"
    "\n"
    "skip_addresses = 127.0.0.0/8,::ffff:127.0.0.0/104,::1\n"
    "Reason_Message = Message {rejectdefer} due to: {spf}.\n"
)
SIEVE = dms_files.HEADER + (
    'require ["fileinto", "mailbox"];\n'
    "\n"
    "# inbound.spfFail junk: mail failing SPF is delivered, to Junk (RFC 7208 §8.4 leaves the choice to the receiver).\n"
    'if header :matches "Received-SPF" "Fail *" {\n'
    '    fileinto :create "Junk";\n'
    "    stop;\n"
    "}\n"
)
RSPAMD_REJECT = dms_files.HEADER + (
    "# https://rspamd.com/doc/modules/force_actions.html\n"
    "rules {\n"
    "    SPF_FAIL_REJECT {\n"
    '        expression = "R_SPF_FAIL";\n'
    '        action = "reject";\n'
    '        message = "SPF check failed (inbound.spfFail reject)";\n'
    "    }\n"
    "}\n"
)
RSPAMD_JUNK = dms_files.HEADER + (
    "# https://rspamd.com/doc/modules/force_actions.html\n"
    "rules {\n"
    "    SPF_FAIL_JUNK {\n"
    '        expression = "R_SPF_FAIL";\n'
    '        action = "add header";\n'
    '        honor_action = ["reject"];\n'
    "    }\n"
    "}\n"
)


@pytest.mark.parametrize(
    ("profile", "spf_fail", "files"),
    [
        ("minimal", "reject", {}),
        ("minimal", "junk", {"postfix-policyd-spf.conf": POLICYD_JUNK, "before.dovecot.sieve": SIEVE}),
        ("standard", "reject", {"rspamd/override.d/force_actions.conf": RSPAMD_REJECT}),
        ("standard", "junk", {"rspamd/override.d/force_actions.conf": RSPAMD_JUNK}),
    ],
)
def test_inbound_files_per_profile(profile: Any, spf_fail: Any, files: dict[str, str]) -> None:
    assert dms_files.inbound_files(profile, spf_fail) == files


def test_junk_on_minimal_mounts_policyd_config_and_labels_the_unwatched_files() -> None:
    reject = containers.mail_container(load({}), signer_fingerprint="x")
    junk = containers.mail_container(load({"mailstack:inbound": {"spfFail": "junk"}}), signer_fingerprint="x")
    standard = containers.mail_container(
        load({"mailstack:inbound": {"spfFail": "junk"}, "mailstack:profile": "standard"}), signer_fingerprint="x"
    )
    assert set(junk.mounts) - set(reject.mounts) == {
        containers.Mount(
            "/etc/postfix-policyd-spf-python/policyd-spf.conf",
            host_path="/home/u/.mailstack/test/config/postfix-policyd-spf.conf",
            read_only=True,
        )
    }
    labels = dict(junk.labels)
    assert labels[containers.INBOUND_LABEL] == dms_files.unwatched_fingerprint(
        {"postfix-policyd-spf.conf": POLICYD_JUNK, "before.dovecot.sieve": SIEVE}
    )
    # Nothing unwatched with reject (DMS's default) or on the standard profile (Rspamd's files are watched).
    assert containers.INBOUND_LABEL not in dict(reject.labels)
    assert containers.INBOUND_LABEL not in dict(standard.labels) and standard.mounts == reject.mounts
    # The label changes exactly when an unwatched file does.
    assert dms_files.unwatched_fingerprint({"before.dovecot.sieve": SIEVE}) != labels[containers.INBOUND_LABEL]
