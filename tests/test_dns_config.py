"""DNS backend configuration: per-domain providers, and the credentials each backend needs, all at once."""

from __future__ import annotations

from typing import Any

import pytest

from mailstack.config import ConfigError, load_settings
from tests.conftest import PROD_SECRET_KEYS
from tests.test_mail_dns import prod_config

TSIG = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="


def problems(
    changes: dict[str, Any], extra: dict[str, str] | None = None, secrets: tuple[str, ...] = ()
) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_settings({**prod_config(**changes), **(extra or {})}, secret_keys=PROD_SECRET_KEYS + secrets, stack="prod")
    return [(p.key, p.message, p.fix) for p in info.value.problems]


def test_route53_names_its_three_keys_with_their_commands() -> None:
    assert problems({"dns/provider": "route53", "tls/challenge": "http"}) == [
        (
            "aws:region",
            "is required when dns.provider is route53 (the region pulumi-aws talks to; Route 53 is global, any region works)",
            "pulumi config set aws:region us-east-1",
        ),
        (
            "aws:accessKey",
            "is required when dns.provider is route53 (an IAM access key allowed route53:ChangeResourceRecordSets, "
            "GetChange, ListResourceRecordSets, GetHostedZone and, without zoneId, ListHostedZones (ListHostedZonesByName "
            "for adopt); or set "
            "aws:profile instead)",
            "pulumi config set aws:accessKey <AKIA...>",
        ),
        (
            "aws:secretKey",
            "is required when dns.provider is route53 (the secret of that access key)",
            "pulumi config set --secret aws:secretKey <secret>",
        ),
    ]


def test_a_profile_replaces_the_access_key() -> None:
    config = {**prod_config(**{"dns/provider": "route53", "tls/challenge": "http"}), "aws:region": "eu-west-1"}
    settings = load_settings({**config, "aws:profile": "mail"}, secret_keys=PROD_SECRET_KEYS, stack="prod")
    assert settings.dns_providers == {"route53"}


def test_per_domain_backends_each_need_their_credentials() -> None:
    changes = {
        "domains/another.com/dns": {"provider": "digitalocean"},
        "domains/example.com/dns": {"provider": "hetzner"},
        "dns/provider": "manual",
        "tls/challenge": "http",
    }
    assert problems(changes, {"digitalocean:token": "dop_v1_plain"}) == [
        (
            "digitalocean:token",
            "is stored in plain text; digitalocean's credential must be a secret",
            "pulumi config set --secret digitalocean:token <token>",
        ),
        (
            "hcloud:token",
            'is required when domains["example.com"].dns.provider is hetzner (a Hetzner Cloud project API token '
            "with Read & Write (the project holding the zones))",
            "pulumi config set --secret hcloud:token <token>",
        ),
    ]


def test_rfc2136_needs_server_key_and_a_secret_secret() -> None:
    changes = {
        "dns/provider": "rfc2136",
        "tls/challenge": "http",
        "dns/rfc2136": {"keyName": "bad name!", "keySecret": TSIG},
    }
    assert problems(changes) == [
        (
            "mailstack:dns.rfc2136.server",
            "is required when a domain's DNS is rfc2136: the primary server that accepts updates for the zones",
            "pulumi config set --path 'mailstack:dns.rfc2136.server' ns1.example.net",
        ),
        (
            "mailstack:dns.rfc2136.keyName",
            "'bad name!' is not a DNS name (RFC 8945 §4.2: key names are domain names)",
            "pulumi config set --path 'mailstack:dns.rfc2136.keyName' mailstack.",
        ),
        (
            "mailstack:dns.rfc2136.keySecret",
            "is stored in plain text; a TSIG secret must be set with --secret",
            "pulumi config set --path --secret 'mailstack:dns.rfc2136.keySecret' <base64 secret>",
        ),
    ]
    changes["dns/rfc2136"] = {"server": "ns1.example.net", "keyName": "mailstack", "keySecret": "not base64!"}
    assert problems(changes, secrets=("mailstack:dns",)) == [
        (
            "mailstack:dns.rfc2136.keySecret",
            "is not base64 (copy the `secret:` of the key as the server's config has it)",
            "pulumi config set --path --secret 'mailstack:dns.rfc2136.keySecret' <base64 secret>",
        )
    ]


def test_rfc2136_settings_resolve() -> None:
    changes = {
        "dns/provider": "rfc2136",
        "tls/challenge": "http",
        "dns/rfc2136": {"server": "ns1.example.net", "keyName": "MailStack", "keySecret": TSIG, "port": 5353},
    }
    settings = load_settings(prod_config(**changes), secret_keys=(*PROD_SECRET_KEYS, "mailstack:dns"), stack="prod")
    assert settings.rfc2136 is not None
    assert (
        settings.rfc2136.server,
        settings.rfc2136.port,
        settings.rfc2136.key_name,
        settings.rfc2136.key_algorithm,
    ) == (
        "ns1.example.net",
        5353,
        "mailstack.",
        "hmac-sha256",
    )
    assert settings.rfc2136.key_secret.get_secret_value() == TSIG


def test_a_zone_has_one_dns_host_and_zone_ids_follow_the_host() -> None:
    changes = {
        "domains/lists.example.com": {"zone": "example.com", "dns": {"provider": "hetzner"}},
        "domains/another.com/dns": {"provider": "route53"},
        "domains/another.com/zoneId": "0123456789abcdef0123456789abcdef",
        "dns/rfc2136": {"server": "ns1.example.net"},
    }
    extra = {"hcloud:token": "h", "aws:region": "us-east-1", "aws:profile": "mail"}
    assert problems(changes, extra, secrets=("hcloud:token",)) == [
        (
            "mailstack:dns.rfc2136",
            "only applies when a domain's DNS is rfc2136",
            "pulumi config rm --path 'mailstack:dns.rfc2136'",
        ),
        (
            'mailstack:domains["another.com"].zoneId',
            "is not a Route 53 hosted zone id (Z followed by capitals and digits, e.g. Z0123456789ABCDEFGHIJ)",
            "pulumi config set --path 'mailstack:domains[\"another.com\"].zoneId' <value>",
        ),
        (
            'mailstack:domains["lists.example.com"].dns.provider',
            "zone example.com is already published by cloudflare (domain example.com); a zone has one DNS host",
            "pulumi config set --path 'mailstack:domains[\"lists.example.com\"].dns.provider' cloudflare",
        ),
    ]


def test_zone_providers() -> None:
    changes = {"domains/another.com/dns": {"provider": "hetzner"}}
    settings = load_settings(
        {**prod_config(**changes), "hcloud:token": "h"}, secret_keys=(*PROD_SECRET_KEYS, "hcloud:token"), stack="prod"
    )
    assert settings.zone_providers == {"another.com": "hetzner", "example.com": "cloudflare"}
    assert settings.domain("another.com").dns_provider == "hetzner"


AWS = {"aws:region": "eu-west-1", "aws:profile": "mail"}


def test_tls_challenge_default_follows_the_hostnames_zone() -> None:
    """DNS-01 writes `_acme-challenge.<hostname>`: the hostname's zone decides, not the stack-level provider."""

    def challenge(changes: dict[str, Any], extra: dict[str, str] | None = None) -> str | None:
        config = {**prod_config(**{"tls/challenge": None, **changes}), **(extra or {})}
        return load_settings(config, secret_keys=PROD_SECRET_KEYS, stack="prod").tls.challenge

    # Stack on Cloudflare, the hostname's zone (example.com) on Route 53: http.
    assert challenge({"domains/example.com/dns": {"provider": "route53"}}, AWS) == "http"
    # Only another.com moves: the hostname's zone is still at Cloudflare.
    assert challenge({"domains/another.com/dns": {"provider": "route53"}}, AWS) == "dns-cloudflare"
    # Stack on Route 53, the hostname's zone at Cloudflare: DNS-01 through Cloudflare.
    changes = {"dns/provider": "route53", "domains/example.com/dns": {"provider": "cloudflare"}}
    assert challenge(changes, AWS) == "dns-cloudflare"


def test_dns_cloudflare_challenge_refused_when_the_hostnames_zone_is_elsewhere() -> None:
    assert problems({"domains/example.com/dns": {"provider": "route53"}}, AWS) == [
        (
            "mailstack:tls.challenge",
            "dns-cloudflare needs the hostname's zone at Cloudflare; mail.example.com is in a "
            "domains.example.com.dns.provider route53 zone: use the http challenge (port 80)",
            "pulumi config set --path 'mailstack:tls.challenge' http",
        )
    ]
