"""compose.yaml and mailserver.env: exact documents, the Compose schema, and equality with the registered container."""

from __future__ import annotations

from typing import Any

import pytest

from config import MailSettings, load_settings
from mailstack import compose
from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, prod_config_values
from tests.harness import stack_config

FINGERPRINT = "0" * 64


def dev_settings() -> MailSettings:
    return load_settings(stack_config(DEV_STACK), stack="dev", home="/home/u")


def prod_settings() -> MailSettings:
    return load_settings(prod_config_values(), secret_keys=PROD_SECRET_KEYS, stack="prod", home="/home/u")


def test_env_file_is_plain_var_equals_value_lines() -> None:
    assert compose.env_file_text([("A", "1"), ("B", "x y=z")]) == "A=1\nB=x y=z\n"


def test_env_file_refuses_a_line_break() -> None:
    with pytest.raises(ValueError, match="B contains a line break"):
        compose.env_file_text([("B", "one\ntwo")])


def test_dev_compose_document_exact() -> None:
    assert compose.compose_document(dev_settings(), signer_fingerprint=FINGERPRINT) == {
        "name": "mailstack-dev",
        "services": {
            "mailserver": {
                "image": "ghcr.io/docker-mailserver/docker-mailserver:15.1.0",
                "hostname": "mail.example.test",
                "env_file": ["mailserver.env"],
                "ports": [
                    {"target": port, "published": port, "protocol": "tcp", "host_ip": "127.0.0.1"}
                    for port in (25, 465, 993)
                ],
                "volumes": [
                    {"type": "volume", "source": "mail-data", "target": "/var/mail"},
                    {"type": "volume", "source": "mail-state", "target": "/var/mail-state"},
                    {"type": "volume", "source": "mail-logs", "target": "/var/log/mail"},
                ],
                "labels": {"mailstack.signer-config-sha256": FINGERPRINT},
                "mem_limit": "768m",
                "healthcheck": {"test": ["CMD-SHELL", "ss --listening --ipv4 --tcp | grep --silent ':smtp' || exit 1"]},
            }
        },
        "volumes": {"mail-data": {}, "mail-logs": {}, "mail-state": {}},
    }


def _standard_with_watchtower(settings: MailSettings) -> MailSettings:
    from dataclasses import replace

    from config.model import Ports

    return replace(
        settings,
        profile="standard",
        watchtower=True,
        ports=Ports(submission=True, imap=True, pop3=True),
    )


def test_standard_profile_adds_net_admin_and_the_watchtower_label() -> None:
    service = compose.compose_document(_standard_with_watchtower(dev_settings()), signer_fingerprint=FINGERPRINT)[
        "services"
    ]["mailserver"]
    assert service["cap_add"] == ["NET_ADMIN"]
    assert service["labels"] == {
        "mailstack.signer-config-sha256": FINGERPRINT,
        "com.centurylinklabs.watchtower.enable": "true",
    }
    # No bindAddress: the ports are published on every interface, so no host_ip.
    assert service["ports"] == [
        {"target": port, "published": port, "protocol": "tcp"} for port in (25, 110, 143, 465, 587, 993, 995)
    ]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(dev_settings, id="dev"),
        pytest.param(prod_settings, id="prod"),
        pytest.param(lambda: _standard_with_watchtower(dev_settings()), id="standard-all-ports"),
    ],
)
def test_documents_are_valid_compose(settings: Any) -> None:
    document = compose.compose_document(settings(), signer_fingerprint=FINGERPRINT)
    assert compose.schema_errors(document) == []


def test_the_schema_rejects_what_compose_rejects() -> None:
    """The vendored schema is really applied: an unknown service key and a wrong type are both reported."""
    errors = compose.schema_errors({"services": {"mailserver": {"image": "x", "hostnmae": "h", "mem_limit": []}}})
    assert errors == [
        "services/mailserver/mem_limit: [] is not of type 'number', 'string'",
        "services/mailserver: 'hostnmae' does not match any of the regexes: '^x-'",
    ]


def test_pending_lists_what_the_settings_need() -> None:
    assert compose.pending(dev_settings()) == (
        "mailserver: container_name",
        "mailserver: volume names",
        "mailserver: config directory mount",
        "mailserver: /etc/localtime mount",
        "mailserver: restart",
        "mailserver: stop_grace_period",
        "mailserver: healthcheck timeout and retries",
        "mailserver: network_mode",
    )
    assert compose.pending(prod_settings())[-2:] == (
        "mailserver: network_mode",
        "certbot: the whole service (tls.mode letsencrypt)",
    )
    assert "mailserver: certificate mount (tls.mode letsencrypt/existing)" in compose.pending(prod_settings())


def test_dump_keeps_key_order_and_header() -> None:
    assert compose.dump({"name": "p", "services": {}}, header=["one", ""]) == "# one\n#\nname: p\nservices: {}\n"
