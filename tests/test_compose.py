"""compose.yaml and mailserver.env: exact documents and the Compose schema (tests/test_render.py compares them with
the registered containers)."""

from __future__ import annotations

from typing import Any

import pytest

from mailstack import compose
from mailstack.config import MailSettings, load_settings
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


BIND = {"create_host_path": True}
DATA = "/mnt/dietpi_userdata/mailstack"


def test_dev_compose_document_exact() -> None:
    assert compose.compose_document(dev_settings(), signer_fingerprint=FINGERPRINT) == {
        "name": "mailstack-dev",
        "services": {
            "mailserver": {
                "image": "ghcr.io/docker-mailserver/docker-mailserver:15.1.0",
                "container_name": "mailstack-dev-mailserver",
                "hostname": "mail.example.test",
                "env_file": ["mailserver.env"],
                "ports": [
                    {"target": port, "published": port, "protocol": "tcp", "host_ip": "127.0.0.1"}
                    for port in (25, 465, 993)
                ],
                "volumes": [
                    {"type": "volume", "source": "mailstack-dev-mail-data", "target": "/var/mail"},
                    {"type": "volume", "source": "mailstack-dev-mail-state", "target": "/var/mail-state"},
                    {"type": "volume", "source": "mailstack-dev-mail-logs", "target": "/var/log/mail"},
                    {
                        "type": "bind",
                        "source": "/home/u/.mailstack/dev/config",
                        "target": "/tmp/docker-mailserver",
                        "bind": BIND,
                    },
                    {
                        "type": "bind",
                        "source": "/etc/localtime",
                        "target": "/etc/localtime",
                        "bind": BIND,
                        "read_only": True,
                    },
                ],
                "labels": {"mailstack.signer-config-sha256": FINGERPRINT},
                "mem_limit": "768m",
                "memswap_limit": -1,
                "restart": "always",
                "stop_grace_period": "60s",
                "network_mode": "bridge",
                "healthcheck": {
                    "test": ["CMD-SHELL", "ss --listening --ipv4 --tcp | grep --silent ':smtp' || exit 1"],
                    "interval": "30s",
                    "timeout": "3s",
                    "start_period": "30s",
                    "start_interval": "0s",
                    "retries": 3,
                },
            }
        },
        "volumes": {
            name: {"name": name}
            for name in ("mailstack-dev-mail-data", "mailstack-dev-mail-logs", "mailstack-dev-mail-state")
        },
    }


def _standard_with_watchtower(settings: MailSettings) -> MailSettings:
    from dataclasses import replace

    from mailstack.config.model import Ports

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
        pytest.param(lambda: _http_challenge(prod_settings()), id="http-challenge"),
        pytest.param(lambda: _existing(prod_settings()), id="existing"),
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


def _http_challenge(settings: MailSettings) -> MailSettings:
    from dataclasses import replace

    from mailstack.config.model import Ports

    return replace(
        settings,
        tls=replace(settings.tls, challenge="http", staging=True, email=None),
        ports=Ports(bind_address="192.0.2.1"),
    )


def _existing(settings: MailSettings) -> MailSettings:
    from dataclasses import replace

    from mailstack.config.settings import TlsSettings

    return replace(settings, tls=TlsSettings(mode="existing", path="/srv/certs"))


def test_prod_certbot_service_and_the_certificate_mount() -> None:
    """DNS-01: certbot with its credentials directory; DMS mounts its tree and waits until it is healthy."""
    services = compose.compose_document(prod_settings(), signer_fingerprint=FINGERPRINT)["services"]
    assert list(services) == ["mailserver", "certbot"]
    assert services["mailserver"]["volumes"][-1] == {
        "type": "bind",
        "source": f"{DATA}/letsencrypt",
        "target": "/etc/letsencrypt",
        "bind": BIND,
        "read_only": True,
    }
    assert services["mailserver"]["depends_on"] == {"certbot": {"condition": "service_healthy"}}
    assert services["certbot"] == {
        "image": "certbot/dns-cloudflare:v4.2.0",
        "container_name": "mailstack-prod-certbot",
        "entrypoint": ["/bin/sh", "-c"],
        # `$$`: Compose would otherwise substitute its own (empty) variables for `$extra` and `$!`.
        "command": [
            'extra=""; if grep -qs acme-staging /etc/letsencrypt/renewal/mail.example.com.conf; then extra="--force-renewal"; fi; '
            "certbot certonly -n --cert-name mail.example.com -d mail.example.com --agree-tos --email admin@example.com "
            "--dns-cloudflare --dns-cloudflare-credentials /run/mailstack/cloudflare.ini $$extra || "
            '{ echo "mailstack: certbot certonly failed; next attempt in 1 h (Let\'s Encrypt allows 5 failed validations per hour)" >&2; '
            "sleep 3600; exit 1; }; trap exit TERM; while :; do certbot renew; sleep 12h & wait $$!; done"
        ],
        "volumes": [
            {"type": "bind", "source": f"{DATA}/letsencrypt", "target": "/etc/letsencrypt", "bind": BIND},
            {"type": "bind", "source": f"{DATA}/certbot", "target": "/run/mailstack", "bind": BIND, "read_only": True},
        ],
        "restart": "unless-stopped",
        "network_mode": "bridge",
        "healthcheck": {
            "test": ["CMD-SHELL", "test -f /etc/letsencrypt/live/mail.example.com/fullchain.pem"],
            "interval": "10s",
            "timeout": "5s",
            "start_period": "10m0s",
            "start_interval": "0s",
            "retries": 3,
        },
    }


def test_http_challenge_publishes_port_80_on_the_bind_address() -> None:
    certbot = compose.compose_document(_http_challenge(prod_settings()), signer_fingerprint=FINGERPRINT)["services"][
        "certbot"
    ]
    assert certbot["image"] == "certbot/certbot:v4.2.0"
    assert certbot["ports"] == [{"target": 80, "published": 80, "protocol": "tcp", "host_ip": "192.0.2.1"}]
    assert [v["target"] for v in certbot["volumes"]] == ["/etc/letsencrypt"]
    assert "--standalone" in certbot["command"][0] and "$$extra" not in certbot["command"][0]  # staging


def test_existing_certificates_are_mounted_and_no_certbot() -> None:
    services = compose.compose_document(_existing(prod_settings()), signer_fingerprint=FINGERPRINT)["services"]
    assert list(services) == ["mailserver"]
    assert "depends_on" not in services["mailserver"]
    assert services["mailserver"]["volumes"][-1] == {
        "type": "bind",
        "source": "/srv/certs",
        "target": "/etc/letsencrypt",
        "bind": BIND,
        "read_only": True,
    }


def test_watchtower_service() -> None:
    services = compose.compose_document(_standard_with_watchtower(dev_settings()), signer_fingerprint=FINGERPRINT)[
        "services"
    ]
    assert list(services) == ["mailserver", "watchtower"]
    assert services["watchtower"] == {
        "image": "nickfedor/watchtower:1.21.0",
        "container_name": "mailstack-dev-watchtower",
        "command": ["--interval", "86400", "--cleanup", "--label-enable"],
        "volumes": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "bind": BIND}],
        "restart": "unless-stopped",
        "network_mode": "bridge",
    }


def test_dump_keeps_key_order_and_header() -> None:
    assert compose.dump({"name": "p", "services": {}}, header=["one", ""]) == "# one\n#\nname: p\nservices: {}\n"
