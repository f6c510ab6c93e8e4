"""Configuration contract: defaults, normalisation, and the exact problem list for invalid configs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailstack.config import ConfigError, MailSettings, load_settings
from tests.harness import run_program, stack_config, with_values

BASE: dict[str, Any] = {
    "mailstack:hostname": "mail.example.org",
    "mailstack:domains": {"example.org": {}},
    "mailstack:accounts": {"me@example.org": {}},
}


def _raw(changes: dict[str, Any]) -> dict[str, Any]:
    raw = dict(BASE)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    # Pulumi hands object values to the program as JSON text.
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}


def load(changes: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> MailSettings:
    return load_settings(_raw(changes), secret_keys=set(secret_keys), stack="test", home="/home/u")


INVALID = [
    pytest.param(
        {"mailstack:hostname": None},
        (),
        [("mailstack:hostname", "is required")],
        id="hostname-missing",
    ),
    pytest.param(
        {"mailstack:hostname": "example.org"},
        (),
        [
            (
                "mailstack:hostname",
                "'example.org' has fewer than 3 labels; use a host name under a mail domain, e.g. mail.example.org",
            ),
            (
                "mailstack:hostname",
                "'example.org' is also a mail domain; DMS would list it in both mydestination and virtual_mailbox_domains",
            ),
        ],
        id="hostname-two-labels",
    ),
    pytest.param(
        {"mailstack:hostname": "mail.example.org", "mailstack:domains": {"example.org": {}, "mail.example.org": {}}},
        (),
        [
            (
                "mailstack:hostname",
                "'mail.example.org' is also a mail domain; DMS would list it in both mydestination and virtual_mailbox_domains",
            )
        ],
        id="hostname-is-mail-domain",
    ),
    pytest.param(
        {"mailstack:hostname": "mail.exa_mple.org"},
        (),
        [
            (
                "mailstack:hostname",
                "'mail.exa_mple.org' is not a valid domain name (Codepoint U+005F at position 4 of 'exa_mple' not allowed)",
            )
        ],
        id="hostname-not-idna",
    ),
    pytest.param(
        {"mailstack:hostname": "192.0.2.1"},
        (),
        [("mailstack:hostname", "'192.0.2.1' is an IP address; a host name is required here")],
        id="hostname-ip",
    ),
    pytest.param(
        {"mailstack:hostname": "mail..example.org"},
        (),
        [("mailstack:hostname", "'mail..example.org' is not a valid domain name (Empty Label)")],
        id="hostname-empty-label",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {}, "bad_domain.org": {}}},
        (),
        [
            (
                'mailstack:domains["bad_domain.org"]',
                "'bad_domain.org' is not a valid domain name (Codepoint U+005F at position 4 of 'bad_domain' not allowed)",
            )
        ],
        id="domain-bad-idna",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {}, "localdomain": {}}},
        (),
        [("mailstack:domains.localdomain", "'localdomain' is not a registrable mail domain (it has a single label)")],
        id="domain-single-label",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {}, "Example.ORG": {}}},
        (),
        [('mailstack:domains["Example.ORG"]', "duplicates 'example.org' (the names differ only in case or IDN form)")],
        id="domain-duplicate-case",
    ),
    pytest.param(
        {"mailstack:domains": {}},
        (),
        [("mailstack:domains", "at least one mail domain is required")],
        id="no-domains",
    ),
    pytest.param(
        {"mailstack:accounts": {}},
        (),
        [("mailstack:accounts", "at least one account is required (DMS shuts down after ~2 minutes without one)")],
        id="no-accounts",
    ),
    pytest.param(
        {"mailstack:accounts": {"me@example.org": {}, "you@other.org": {}}},
        (),
        [('mailstack:accounts["you@other.org"]', "domain 'other.org' is not a declared mail domain")],
        id="account-outside-domains",
    ),
    pytest.param(
        {"mailstack:accounts": {"me@example.org": {}, "ME@Example.org": {}}},
        (),
        [
            (
                'mailstack:accounts["ME@Example.org"]',
                "duplicates account 'me@example.org' (addresses differ only in case)",
            )
        ],
        id="account-duplicate-case",
    ),
    pytest.param(
        {"mailstack:accounts": {"me@example.org": {}, "not-an-address": {}}},
        (),
        [('mailstack:accounts["not-an-address"]', "'not-an-address' is not an email address (local@domain)")],
        id="account-not-address",
    ),
    pytest.param(
        {"mailstack:accounts": {"me@example.org": {"quota": "5 gigs"}}},
        (),
        [('mailstack:accounts["me@example.org"].quota', "'5 gigs' is not a quota (a size such as 500M, 5G or 1T)")],
        id="account-bad-quota",
    ),
    pytest.param(
        {"mailstack:accounts": {"me@example.org": {"quota": "0G"}}},
        (),
        [('mailstack:accounts["me@example.org"].quota', "'0G' is not a quota (a size such as 500M, 5G or 1T)")],
        id="account-zero-quota",
    ),
    pytest.param(
        {"mailstack:accounts": {"me@example.org": {"password": "hunter2hunter2"}}},
        (),
        [
            (
                'mailstack:accounts["me@example.org"].password',
                "is stored in plain text; passwords must be set with --secret",
            )
        ],
        id="account-plaintext-password",
    ),
    pytest.param(
        {"mailstack:accounts": {"me@example.org": {"quotta": "5G"}}},
        (),
        [('mailstack:accounts["me@example.org"].quotta', "unknown key 'quotta'; did you mean 'quota'?")],
        id="account-unknown-key",
    ),
    pytest.param(
        {
            "mailstack:accounts": {"me@example.org": {}},
            "mailstack:aliases": {
                "a@example.org": "b@example.org",
                "b@example.org": "c@example.org",
                "c@example.org": "a@example.org",
            },
        },
        (),
        [
            (
                'mailstack:aliases["a@example.org"]',
                "forms a loop: a@example.org -> b@example.org -> c@example.org -> a@example.org",
            )
        ],
        id="alias-loop",
    ),
    pytest.param(
        {"mailstack:aliases": {"a@example.org": ["me@example.org", "a@example.org"]}},
        (),
        [('mailstack:aliases["a@example.org"]', "forms a loop: a@example.org -> a@example.org")],
        id="alias-self-loop",
    ),
    pytest.param(
        {"mailstack:aliases": {"me@example.org": "other@example.net"}},
        (),
        [
            (
                'mailstack:aliases["me@example.org"]',
                "shadows the account of the same address; mail would never reach its mailbox",
            )
        ],
        id="alias-shadows-account",
    ),
    pytest.param(
        {"mailstack:aliases": {"@other.org": "me@example.org"}},
        (),
        [('mailstack:aliases["@other.org"]', "catch-all for 'other.org', which is not a declared mail domain")],
        id="catch-all-undeclared",
    ),
    pytest.param(
        {"mailstack:aliases": {"info@other.org": "me@example.org"}},
        (),
        [('mailstack:aliases["info@other.org"]', "alias for 'other.org', which is not a declared mail domain")],
        id="alias-undeclared-domain",
    ),
    pytest.param(
        {"mailstack:aliases": {"root@example.org": "root@mail.example.org"}},
        (),
        [
            (
                'mailstack:aliases["root@example.org"]',
                "target 'root@mail.example.org' is in the undeclared local domain 'mail.example.org'; use an address in a declared mail domain",
            )
        ],
        id="alias-target-hostname-domain",
    ),
    pytest.param(
        {"mailstack:aliases": {"root@example.org": "root@localhost"}},
        (),
        [
            (
                'mailstack:aliases["root@example.org"]',
                "target 'root@localhost' is in the undeclared local domain 'localhost'; use an address in a declared mail domain",
            )
        ],
        id="alias-target-localhost",
    ),
    pytest.param(
        {"mailstack:aliases": {"info@example.org": "nobody@example.org"}},
        (),
        [
            (
                'mailstack:aliases["info@example.org"]',
                "target 'nobody@example.org' is neither an account nor an alias; the mail would bounce",
            )
        ],
        id="alias-target-no-mailbox",
    ),
    pytest.param(
        {"mailstack:aliases": {"info@example.org": "me@example.org", "INFO@example.org": "me@example.org"}},
        (),
        [
            (
                'mailstack:aliases["INFO@example.org"]',
                "duplicates alias 'info@example.org' (addresses differ only in case)",
            )
        ],
        id="alias-duplicate-case",
    ),
    pytest.param(
        {"mailstack:relay": {"username": "u", "password": "p"}},
        ("mailstack:relay",),
        [
            (
                "mailstack:relay.host",
                "is required for a custom relay (or choose a preset: brevo, mailgun, mailgun-eu, sendgrid, ses, postmark, smtp2go)",
            )
        ],
        id="relay-custom-without-host",
    ),
    pytest.param(
        {"mailstack:relay": {"preset": "brevo", "username": "u"}},
        (),
        [("mailstack:relay.password", "is required (the relay's SMTP key or password)")],
        id="relay-without-password",
    ),
    pytest.param(
        {"mailstack:relay": {"preset": "sendinblue", "username": "u", "password": "p"}},
        ("mailstack:relay",),
        [
            (
                "mailstack:relay.preset",
                "must be one of: brevo, mailgun, mailgun-eu, sendgrid, ses, postmark, smtp2go, custom",
            )
        ],
        id="relay-unknown-preset",
    ),
    pytest.param(
        {"mailstack:relay": {"preset": "brevo", "username": "u", "password": "p"}},
        (),
        [("mailstack:relay.password", "is stored in plain text; the relay password must be set with --secret")],
        id="relay-plaintext-password",
    ),
    pytest.param(
        {"mailstack:relay": {"preset": "ses", "username": "AKIA", "password": "p"}},
        ("mailstack:relay",),
        [("mailstack:relay.region", "is required for the ses preset (an AWS region such as eu-west-1)")],
        id="relay-ses-without-region",
    ),
    pytest.param(
        {"mailstack:relay": {"preset": "mailgun", "port": 465, "username": "u", "password": "p"}},
        ("mailstack:relay",),
        [("mailstack:relay.port", "465 (implicit TLS) is not supported by DMS's relay setup; use 587 (STARTTLS)")],
        id="relay-port-465",
    ),
    pytest.param(
        {"mailstack:acounts": {"me@example.org": {}}},
        (),
        [("mailstack:acounts", "unknown key 'acounts'; did you mean 'accounts'?")],
        id="unknown-top-level-key",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"polcy": "reject"}}}},
        (),
        [('mailstack:domains["example.org"].dmarc.polcy', "unknown key 'polcy'; did you mean 'policy'?")],
        id="unknown-nested-key",
    ),
    pytest.param(
        {"mailstack:target": {"kind": "ssh", "host": "pi.lan", "hots": "x"}},
        (),
        [("mailstack:target.hots", "unknown key 'hots'; did you mean 'host'?")],
        id="unknown-target-key",
    ),
    pytest.param(
        {"mailstack:env": {"SSL_TYPE": "letsencrypt", "TZ": "Europe/Berlin"}},
        (),
        [("mailstack:env.SSL_TYPE", "SSL_TYPE is managed by mailstack; set it through its mailstack key instead")],
        id="env-managed-key",
    ),
    pytest.param(
        {"mailstack:env": {"RELAY_PASSWORD": "x"}},
        (),
        [
            (
                "mailstack:env.RELAY_PASSWORD",
                "RELAY_PASSWORD is managed by mailstack; set it through its mailstack key instead",
            )
        ],
        id="env-relay-password",
    ),
    pytest.param(
        {"mailstack:env": {"POSTMASTER_ADDRESS__FILE": "/run/x"}},
        (),
        [
            (
                "mailstack:env.POSTMASTER_ADDRESS__FILE",
                "POSTMASTER_ADDRESS__FILE is managed by mailstack; set it through its mailstack key instead",
            )
        ],
        id="env-file-indirection",
    ),
    pytest.param(
        {"mailstack:env": {"log-level": "debug"}},
        (),
        [('mailstack:env["log-level"]', "'log-level' is not an environment variable name (A-Z, 0-9, _)")],
        id="env-bad-name",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"policy": "block"}}}},
        (),
        [('mailstack:domains["example.org"].dmarc.policy', "must be one of: none, quarantine, reject")],
        id="dmarc-bad-policy",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"adkim": "strict"}}}},
        (),
        [('mailstack:domains["example.org"].dmarc.adkim', "must be one of: r, s")],
        id="dmarc-bad-alignment",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"rua": ["https://reports.example.org/"]}}}},
        (),
        [
            (
                'mailstack:domains["example.org"].dmarc.rua[0]',
                "'https://reports.example.org/' is not a mailto: report address; DMARC reports are only delivered by mail (RFC 7489 §6.2)",
            )
        ],
        id="dmarc-https-rua",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"ruf": ["mailto:not-an-address"]}}}},
        (),
        [
            (
                'mailstack:domains["example.org"].dmarc.ruf[0]',
                "'mailto:not-an-address' is not a mailto: report address; DMARC reports are only delivered by mail (RFC 7489 §6.2)",
            )
        ],
        id="dmarc-bad-ruf-address",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dmarc": {"fo": "2"}}}},
        (),
        [('mailstack:domains["example.org"].dmarc.fo', "'2' is not a DMARC fo value (colon-separated 0, 1, d, s)")],
        id="dmarc-bad-fo",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"backupMx": [{"host": "mail.example.org", "priority": 20}]}}},
        (),
        [
            (
                'mailstack:domains["example.org"].backupMx[0].host',
                "is this server's own hostname; a backup MX must be another provider's host",
            )
        ],
        id="backup-mx-is-hostname",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"backupMx": [{"host": "192.0.2.7", "priority": 20}]}}},
        (),
        [
            (
                'mailstack:domains["example.org"].backupMx[0].host',
                "'192.0.2.7' is an IP address; an MX must name a host (RFC 5321 §5.1)",
            )
        ],
        id="backup-mx-ip",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"backupMx": [{"host": "mx.backup.net", "priority": 5}]}}},
        (),
        [
            (
                'mailstack:domains["example.org"].backupMx[0].priority',
                "5 is not above the primary MX priority 10; senders would prefer the backup",
            )
        ],
        id="backup-mx-priority-not-above",
    ),
    pytest.param(
        {"mailstack:dns": {"ttl": 30}},
        (),
        [("mailstack:dns.ttl", "30 is out of range: use 1 (automatic, Cloudflare) or 60-86400 seconds")],
        id="ttl-too-low",
    ),
    pytest.param(
        {"mailstack:dns": {"ttl": 100000}},
        (),
        [("mailstack:dns.ttl", "100000 is out of range: use 1 (automatic, Cloudflare) or 60-86400 seconds")],
        id="ttl-too-high",
    ),
    pytest.param(
        {"mailstack:dns": {"ttl": 1}},
        (),
        [("mailstack:dns.ttl", "1 means 'automatic' only at Cloudflare; a zone file needs 60-86400 seconds")],
        id="ttl-auto-with-manual",
    ),
    pytest.param(
        {"mailstack:tls": {"mode": "letsencrypt", "challenge": "dns-cloudflare"}},
        (),
        [
            (
                "mailstack:tls.challenge",
                "dns-cloudflare needs dns.provider cloudflare; with manual DNS use the http challenge (port 80)",
            )
        ],
        id="letsencrypt-dns-cloudflare-manual",
    ),
    pytest.param(
        {"mailstack:tls": {"mode": "existing"}},
        (),
        [("mailstack:tls.path", "is required for tls.mode existing (a host directory laid out like /etc/letsencrypt)")],
        id="existing-tls-without-path",
    ),
    pytest.param(
        {"mailstack:tls": {"mode": "acme"}},
        (),
        [("mailstack:tls.mode", "must be one of: self-signed, letsencrypt, existing")],
        id="tls-bad-mode",
    ),
    pytest.param(
        {"mailstack:target": {"kind": "ssh"}},
        (),
        [("mailstack:target.host", "is required for an ssh target")],
        id="ssh-without-host",
    ),
    pytest.param(
        {"mailstack:target": {"kind": "ssh", "host": "pi.lan", "hostKey": "AAAA-not-a-key"}},
        (),
        [
            (
                "mailstack:target.hostKey",
                "is not an SSH public key in authorized_keys form ('ssh-ed25519 AAAA…'); read it with ssh-keyscan",
            )
        ],
        id="ssh-bad-host-key",
    ),
    pytest.param(
        {"mailstack:target": {"kind": "ssh", "host": "pi.lan", "port": 2222, "hostKey": "ssh-rsa AAAAB3NzaC1yc2E="}},
        (),
        [
            (
                "mailstack:target.hostKey",
                "is an ssh-rsa key: pulumi-command can verify it only with SHA-1 signatures, which OpenSSH 8.8+ and "
                "current Dropbear refuse; pin the host's ed25519 (or ECDSA) key instead",
            )
        ],
        id="ssh-rsa-host-key",
    ),
    pytest.param(
        {"mailstack:target": {"kind": "ssh", "host": "pi.lan", "hostKey": "ssh-dss AAAAB3NzaC1kc3M="}},
        (),
        [
            (
                "mailstack:target.hostKey",
                "is an ssh-dss key: pulumi-command can verify it only with SHA-1 signatures, which OpenSSH 8.8+ and "
                "current Dropbear refuse; pin the host's ed25519 (or ECDSA) key instead",
            )
        ],
        id="ssh-dss-host-key",
    ),
    pytest.param(
        {"mailstack:target": {"kind": "ssh", "host": "pi.lan", "dataDir": "~/mailstack"}},
        (),
        [
            (
                "mailstack:target.dataDir",
                "'~/mailstack' would expand to this machine's home directory, not one on pi.lan; "
                "give the absolute path on the host",
            )
        ],
        id="ssh-data-dir-in-local-home",
    ),
    pytest.param(
        {"mailstack:target": {"kind": "ssh", "host": "pi.lan", "dataDir": "mailstack"}},
        (),
        [("mailstack:target.dataDir", "'mailstack' must be an absolute path")],
        id="relative-data-dir",
    ),
    pytest.param(
        {"mailstack:dns": {"provider": "cloudflare"}},
        (),
        [
            (
                "cloudflare:apiToken",
                "is required when dns.provider is cloudflare (Zone:DNS:Edit + Zone:Zone:Read, limited to the mail zones)",
            )
        ],
        id="cloudflare-without-token",
    ),
    pytest.param(
        {"mailstack:dns": {"provider": "cloudflare"}, "cloudflare:apiToken": "tok"},
        (),
        [("cloudflare:apiToken", "is stored in plain text; an API token must be a secret")],
        id="cloudflare-plaintext-token",
    ),
    pytest.param(
        {"mailstack:publicIPv6": "2001:db8::25"},
        (),
        [
            (
                "mailstack:publicIPv6",
                "cannot be served: the mail ports are published on 0.0.0.0 (IPv4 only), so an AAAA record would send "
                "IPv6 mail to a closed port, and publishing them on :: as well would make the Docker provider replace "
                "the mail container on every pulumi up (terraform-provider-docker#909); publish no AAAA record "
                "(docs/host.md, IPv6); without target.dockerIPv6 IPv6 clients would also reach DMS as the Docker "
                "gateway",
            )
        ],
        id="ipv6-without-docker-ipv6",
    ),
    pytest.param(
        {"mailstack:publicIPv6": "2001:db8::25", "mailstack:target": {"dockerIPv6": True}},
        (),
        [
            (
                "mailstack:publicIPv6",
                "cannot be served: the mail ports are published on 0.0.0.0 (IPv4 only), so an AAAA record would send "
                "IPv6 mail to a closed port, and publishing them on :: as well would make the Docker provider replace "
                "the mail container on every pulumi up (terraform-provider-docker#909); publish no AAAA record "
                "(docs/host.md, IPv6)",
            )
        ],
        id="ipv6-refused-even-with-docker-ipv6",
    ),
    pytest.param(
        {"mailstack:publicIPv4": "203.0.113.300"},
        (),
        [("mailstack:publicIPv4", "input is not a valid IPv4 address")],
        id="bad-ipv4",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dkim": {"selector": "Mail_2026"}}}},
        (),
        [
            (
                'mailstack:domains["example.org"].dkim.selector',
                "'Mail_2026' is not a valid DKIM selector (RFC 6376 §3.1: lowercase DNS labels)",
            )
        ],
        id="dkim-bad-selector",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dkim": {"selector": "mail", "retired": ["mail"]}}}},
        (),
        [
            (
                'mailstack:domains["example.org"].dkim.retired',
                "lists the active selector 'mail'; a retired selector no longer signs",
            )
        ],
        id="dkim-retired-is-active",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"dkim": {"bits": 512}}}},
        (),
        [('mailstack:domains["example.org"].dkim.bits', "must be one of: 1024, 2048, 3072, 4096")],
        id="dkim-bad-bits",
    ),
    pytest.param(
        {"mailstack:profile": "full"},
        (),
        [("mailstack:profile", "must be one of: minimal, standard")],
        id="bad-profile",
    ),
    pytest.param(
        {"mailstack:memoryLimitMB": "128"},
        (),
        [("mailstack:memoryLimitMB", "input should be greater than or equal to 256")],
        id="memory-too-small",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"zone": "example.net"}}},
        (),
        [('mailstack:domains["example.org"].zone', "'example.org' is not inside zone 'example.net'")],
        id="zone-does-not-contain-domain",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"zoneId": "not-an-id"}}},
        (),
        [('mailstack:domains["example.org"].zoneId', "is not a Cloudflare zone id (32 lowercase hex digits)")],
        id="bad-zone-id",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"spf": {"include": ["192.0.2.1"]}}}},
        (),
        [
            (
                'mailstack:domains["example.org"].spf.include[0]',
                "'192.0.2.1' is an IP address; SPF include: takes a domain (use ip4:/ip6:)",
            )
        ],
        id="spf-include-ip",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"spf": {"policy": "+all"}}}},
        (),
        [('mailstack:domains["example.org"].spf.policy', "must be one of: -all, ~all")],
        id="spf-bad-policy",
    ),
    pytest.param(
        {"mailstack:domains": {"example.org": {"tlsrpt": {"rua": ["reports@example.org"]}}}},
        (),
        [
            (
                'mailstack:domains["example.org"].tlsrpt.rua[0]',
                "'reports@example.org' must be a mailto: or https: URI (RFC 8460 §3)",
            )
        ],
        id="tlsrpt-bad-uri",
    ),
    pytest.param(
        {"mailstack:ports": {"bindAddress": "localhost"}},
        (),
        [("mailstack:ports.bindAddress", "'localhost' does not appear to be an IPv4 or IPv6 address")],
        id="bad-port-bind-address",
    ),
    pytest.param(
        {"mailstack:tls": {"mode": "self-signed", "challenge": "http"}},
        (),
        [("mailstack:tls.challenge", "only applies to tls.mode letsencrypt (mode is self-signed)")],
        id="challenge-without-letsencrypt",
    ),
    pytest.param(
        {
            "mailstack:hostname": "example.org",
            "mailstack:acounts": {},
            "mailstack:dns": {"ttl": 5},
            "mailstack:env": {"SSL_TYPE": "x"},
            "mailstack:accounts": {"me@example.org": {"quota": "lots"}, "x@nowhere.org": {}},
        },
        (),
        [
            ("mailstack:acounts", "unknown key 'acounts'; did you mean 'accounts'?"),
            (
                "mailstack:hostname",
                "'example.org' has fewer than 3 labels; use a host name under a mail domain, e.g. mail.example.org",
            ),
            (
                "mailstack:hostname",
                "'example.org' is also a mail domain; DMS would list it in both mydestination and virtual_mailbox_domains",
            ),
            ("mailstack:dns.ttl", "5 is out of range: use 1 (automatic, Cloudflare) or 60-86400 seconds"),
            ('mailstack:accounts["me@example.org"].quota', "'lots' is not a quota (a size such as 500M, 5G or 1T)"),
            ('mailstack:accounts["x@nowhere.org"]', "domain 'nowhere.org' is not a declared mail domain"),
            ("mailstack:env.SSL_TYPE", "SSL_TYPE is managed by mailstack; set it through its mailstack key instead"),
        ],
        id="many-problems-at-once",
    ),
]


@pytest.mark.parametrize(("changes", "secret_keys", "expected"), INVALID)
def test_invalid_config_lists_exactly_these_problems(
    changes: dict[str, Any], secret_keys: tuple[str, ...], expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(ConfigError) as info:
        load(changes, secret_keys)
    assert [(p.key, p.message) for p in info.value.problems] == expected


def test_there_are_at_least_40_invalid_cases() -> None:
    assert len(INVALID) >= 40


def test_every_problem_names_a_fixing_command() -> None:
    """Each problem's fix is a pulumi config command (or the cloudflare token command)."""
    for param in INVALID:
        changes, secret_keys, _ = param.values
        with pytest.raises(ConfigError) as info:
            load(changes, secret_keys)
        for p in info.value.problems:
            assert p.fix.startswith(("pulumi config set ", "pulumi config rm ")), (param.id, p)


def test_error_message_lists_every_problem_with_key_and_fix() -> None:
    with pytest.raises(ConfigError) as info:
        load({"mailstack:dns": {"ttl": 5}, "mailstack:env": {"SSL_TYPE": "x"}})
    assert str(info.value) == (
        "mailstack: the configuration of stack 'test' has 2 problems (nothing was created):\n"
        "- mailstack:dns.ttl: 5 is out of range: use 1 (automatic, Cloudflare) or 60-86400 seconds\n"
        "    fix: pulumi config set --path 'mailstack:dns.ttl' 3600\n"
        "- mailstack:env.SSL_TYPE: SSL_TYPE is managed by mailstack; set it through its mailstack key instead\n"
        "    fix: pulumi config rm --path 'mailstack:env.SSL_TYPE'"
    )


def test_rsa_host_key_fix_reads_the_ed25519_key() -> None:
    with pytest.raises(ConfigError) as info:
        load(
            {"mailstack:target": {"kind": "ssh", "host": "pi.lan", "port": 2222, "hostKey": "ssh-rsa AAAAB3NzaC1yc2E="}}
        )
    assert [p.fix for p in info.value.problems] == [
        "pulumi config set --path 'mailstack:target.hostKey' \"$(ssh-keyscan -t ed25519 -p 2222 pi.lan | cut -d' ' -f2-)\""
    ]


def test_ecdsa_host_key_and_local_home_data_dir_are_accepted() -> None:
    ssh = load({"mailstack:target": {"kind": "ssh", "host": "pi.lan", "hostKey": "ecdsa-sha2-nistp256 AAAAE2VjZHNh"}})
    assert ssh.target.host_key == "ecdsa-sha2-nistp256 AAAAE2VjZHNh"
    # On the local target `~` is this machine's home, which is where the engine runs.
    local = load({"mailstack:target": {"kind": "local", "dataDir": "~/mail"}})
    assert local.target.data_dir == "/home/u/mail"


def test_plaintext_password_fix_uses_secret_path_command() -> None:
    with pytest.raises(ConfigError) as info:
        load({"mailstack:accounts": {"me@example.org": {"password": "hunter2hunter2"}}})
    assert [p.fix for p in info.value.problems] == [
        "pulumi config set --path --secret 'mailstack:accounts[\"me@example.org\"].password' <password>"
    ]


def test_defaults_follow_the_contract() -> None:
    s = load({})
    assert s.hostname == "mail.example.org"
    assert s.target.kind == "local"
    assert s.target.data_dir == "/home/u/.mailstack/test"
    assert s.image == "ghcr.io/docker-mailserver/docker-mailserver:15.1.0"
    assert s.profile == "minimal"
    assert s.memory_mb == 768
    assert (s.ports.submission, s.ports.imap, s.ports.pop3, s.ports.bind_address) == (False, False, False, None)
    assert s.tls.mode == "self-signed"
    assert (s.dns_provider, s.ttl) == ("manual", 3600)
    (domain,) = s.domains
    assert (domain.name, domain.zone, domain.mx_priority) == ("example.org", "example.org", 10)
    assert (domain.spf.policy, domain.dkim.selector, domain.dkim.bits, domain.dmarc.policy) == (
        "-all",
        "mail",
        2048,
        "quarantine",
    )
    assert s.relay is None
    assert s.watchtower is False


def test_ssh_target_defaults_to_dietpi_user_data() -> None:
    s = load({"mailstack:target": {"kind": "ssh", "host": "dietpi.lan"}})
    assert (s.target.host, s.target.port, s.target.user, s.target.data_dir, s.target.bootstrap) == (
        "dietpi.lan",
        22,
        "root",
        "/mnt/dietpi_userdata/mailstack",
        True,
    )


def test_names_are_normalised_to_lowercase_a_labels() -> None:
    s = load(
        {
            "mailstack:hostname": "Mail.Bücher.example",
            "mailstack:domains": {"Bücher.example": {}},
            "mailstack:accounts": {"Info@Bücher.example": {}},
            "mailstack:aliases": {"@BÜCHER.example": "info@bücher.example"},
        }
    )
    assert s.hostname == "mail.xn--bcher-kva.example"
    assert s.domain_names == ("xn--bcher-kva.example",)
    assert [a.address for a in s.accounts] == ["info@xn--bcher-kva.example"]
    assert [(a.address, a.targets) for a in s.aliases] == [("@xn--bcher-kva.example", ("info@xn--bcher-kva.example",))]


def test_relay_preset_fills_host_port_and_spf_include() -> None:
    s = load(
        {"mailstack:relay": {"preset": "brevo", "username": "me@example.org", "password": "smtp-key"}},
        ("mailstack:relay",),
    )
    assert s.relay is not None
    assert (s.relay.relay_host, s.relay.username, s.relay.spf_include) == (
        "[smtp-relay.brevo.com]:587",
        "me@example.org",
        "spf.brevo.com",
    )
    assert s.relay.password.get_secret_value() == "smtp-key"
    assert "smtp-key" not in repr(s)


def test_ses_preset_uses_region() -> None:
    s = load(
        {"mailstack:relay": {"preset": "ses", "region": "eu-west-1", "username": "AKIA", "password": "p"}},
        ("mailstack:relay",),
    )
    assert s.relay is not None and s.relay.relay_host == "[email-smtp.eu-west-1.amazonaws.com]:587"


def test_letsencrypt_challenge_defaults_from_dns_provider() -> None:
    cf = load(
        {
            "mailstack:tls": {"mode": "letsencrypt"},
            "mailstack:dns": {"provider": "cloudflare"},
            "cloudflare:apiToken": "t",
        },
        ("cloudflare:apiToken",),
    )
    manual = load({"mailstack:tls": {"mode": "letsencrypt"}})
    assert (cf.tls.challenge, manual.tls.challenge) == ("dns-cloudflare", "http")


def test_pulumi_yaml_empty_defaults_mean_unset() -> None:
    """Pulumi.yaml must give optional keys a default; its empty values stand for "not set"."""
    s = load(
        {
            "mailstack:publicIPv4": "",
            "mailstack:relay": {},
            "mailstack:memoryLimitMB": "0",
            "mailstack:profile": "standard",
        }
    )
    assert (s.public_ipv4, s.relay, s.memory_mb) == (None, None, 1536)


def test_env_values_become_plain_text() -> None:
    s = load({"mailstack:env": {"TZ": "Europe/Berlin", "ENABLE_SRS": True, "POSTFIX_MESSAGE_SIZE_LIMIT": 20480000}})
    assert s.env == (("ENABLE_SRS", "1"), ("POSTFIX_MESSAGE_SIZE_LIMIT", "20480000"), ("TZ", "Europe/Berlin"))


def test_stack_files_are_valid(dev_config: dict[str, str], prod_config: dict[str, str]) -> None:
    from tests.conftest import PROD_SECRET_KEYS

    dev = load_settings(dev_config, stack="dev", home="/home/u")
    assert (dev.hostname, dev.domain_names, [a.address for a in dev.accounts]) == (
        "mail.example.test",
        ("example.test",),
        ["postmaster@example.test"],
    )
    prod = load_settings(prod_config, secret_keys=set(PROD_SECRET_KEYS), stack="prod")
    assert prod.domain_names == ("another.com", "example.com")
    assert prod.target.kind == "ssh"


def test_prod_example_without_secrets_names_each_secret_command() -> None:
    raw = stack_config("examples/Pulumi.prod.yaml")
    with pytest.raises(ConfigError) as info:
        load_settings(raw, stack="prod")
    assert [(p.key, p.fix) for p in info.value.problems] == [
        (
            "cloudflare:apiToken",
            "pulumi config set --secret cloudflare:apiToken <token>",
        ),
        ("mailstack:relay.password", "pulumi config set --path --secret 'mailstack:relay.password' <smtp-key>"),
    ]


def test_invalid_config_registers_no_resource(dev_config: dict[str, str]) -> None:
    """The whole program under mocks: a bad config stops before the first resource."""
    bad = with_values(dev_config, hostname="example.test", **{"dns/ttl": 5})
    result = run_program(bad)
    assert result.error is not None
    assert type(result.error).__name__ == "RunError"
    assert str(result.error).startswith("mailstack: the configuration of stack 'dev' has 3 problems")
    assert result.resources == []
