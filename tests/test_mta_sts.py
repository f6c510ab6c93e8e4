"""MTA-STS (config/mta_sts.py): the exact policy text, the TXT id that follows it, defaults and limits."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from mailstack.config import ConfigError, MailSettings, load_settings
from mailstack.config.mta_sts import policy_id, policy_text, txt_text
from mailstack.config.records import mta_sts_record
from tests.conftest import PROD_SECRET_KEYS, prod_config_values

CF = {"mailstack:dns": {"provider": "cloudflare"}, "cloudflare:apiToken": "t"}
BASE: dict[str, Any] = {
    "mailstack:hostname": "mail.example.org",
    "mailstack:domains": {"example.org": {}},
    "mailstack:accounts": {"me@example.org": {}},
}


def settings(domain: dict[str, Any] | None = None, **extra: Any) -> MailSettings:
    raw: dict[str, Any] = {**BASE, **extra}
    if domain is not None:
        raw["mailstack:domains"] = {"example.org": domain}
    raw = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
    return load_settings(raw, secret_keys={"cloudflare:apiToken"}, stack="t")


def test_prod_example_policy_lists_the_server_and_the_backup_mx() -> None:
    """Cloudflare DNS: `testing` by default, one week, both MX hosts in MX order, CRLF lines."""
    s = load_settings(prod_config_values(), secret_keys=PROD_SECRET_KEYS, stack="prod")
    text = policy_text(s, s.domain("example.com"))
    assert text == (
        "version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmx: mx.backup-provider.net\r\nmax_age: 604800\r\n"
    )
    record = mta_sts_record(s, s.domain("example.com"))
    assert record is not None
    assert (record.zone, record.name, record.type, record.ttl) == ("example.com", "_mta-sts.example.com", "TXT", 3600)
    assert record.content == f"v=STSv1; id={hashlib.sha256(text.encode()).hexdigest()[:32]}"


def test_id_is_a_digest_of_the_policy_text() -> None:
    assert policy_id("version: STSv1\r\n") == hashlib.sha256(b"version: STSv1\r\n").hexdigest()[:32]
    assert policy_id("a").isalnum() and len(policy_id("a")) == 32  # RFC 8461 §3.1: 1*32 ALPHA/DIGIT


def test_manual_dns_publishes_no_policy_by_default() -> None:
    s = settings()
    assert s.domain("example.org").mta_sts is None
    assert policy_text(s, s.domain("example.org")) is None
    assert mta_sts_record(s, s.domain("example.org")) is None


def test_manual_dns_publishes_an_explicit_policy() -> None:
    s = settings({"mtaSts": {"mode": "enforce", "maxAge": 1209600}})
    assert policy_text(s, s.domain("example.org")) == (
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 1209600\r\n"
    )


def test_mode_none_is_published_to_withdraw_a_policy() -> None:
    """RFC 8461 §8.3: a domain leaves MTA-STS by serving `mode: none` under a new id."""
    s = settings({"mtaSts": {"mode": "none"}}, **CF)
    assert policy_text(s, s.domain("example.org")) == (
        "version: STSv1\r\nmode: none\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"mtaSts": {"mode": "enforce"}},
        {"mtaSts": {"maxAge": 86400}},
        {"backupMx": [{"host": "mx.backup.example.net", "priority": 20}]},
    ],
    ids=["mode", "maxAge", "backup MX"],
)
def test_id_changes_exactly_when_the_policy_changes(change: dict[str, Any]) -> None:
    before = settings({}, **CF)
    after = settings(change, **CF)
    same = settings({"dmarc": {"policy": "reject"}, "mx": {"priority": 5}}, **CF)  # not in the policy
    ids = [txt_text(s, s.domain("example.org")) for s in (before, after, same)]
    assert ids[0] != ids[1]
    assert ids[0] == ids[2]


def test_max_age_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        settings({"mtaSts": {"maxAge": 31557601, "mode": "strict"}})
    assert [(p.key, p.message) for p in err.value.problems] == [
        ('mailstack:domains["example.org"].mtaSts.mode', "must be one of: none, testing, enforce"),
        ('mailstack:domains["example.org"].mtaSts.maxAge', "input should be less than or equal to 31557600"),
    ]
