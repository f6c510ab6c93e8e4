"""DMS environment, ports and capabilities (config/dms_env.py)."""

from __future__ import annotations

import dataclasses
import itertools

from mailstack.config import load_settings
from mailstack.config.checks import MANAGED_ENV_KEYS
from mailstack.config.dms_env import PROFILE_ENV, SRS_ENV_KEYS, capabilities, dms_env, published_ports
from mailstack.config.model import Ports
from mailstack.config.settings import AliasSettings, MailSettings, TlsSettings
from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, prod_config_values
from tests.harness import stack_config

FORWARD = (AliasSettings("me@example.com", ("someone@elsewhere.example",)),)


def dev() -> MailSettings:
    return load_settings(stack_config(DEV_STACK), stack="dev", home="/home/me")


def prod() -> MailSettings:
    return load_settings(prod_config_values(), secret_keys=PROD_SECRET_KEYS, stack="prod")


def test_dev_env() -> None:
    assert dms_env(dev()) == (
        ("ACCOUNT_PROVISIONER", "FILE"),
        ("ENABLE_AMAVIS", "0"),
        ("ENABLE_CLAMAV", "0"),
        ("ENABLE_FAIL2BAN", "0"),
        ("ENABLE_IMAP", "1"),
        ("ENABLE_OPENDKIM", "1"),
        ("ENABLE_OPENDMARC", "1"),
        ("ENABLE_POLICYD_SPF", "1"),
        ("ENABLE_POP3", "0"),
        ("ENABLE_QUOTAS", "1"),
        ("ENABLE_RSPAMD", "0"),
        ("ENABLE_RSPAMD_REDIS", "0"),
        ("ENABLE_SPAMASSASSIN", "0"),
        ("PERMIT_DOCKER", "none"),
        ("SSL_CERT_PATH", "/tmp/docker-mailserver/ssl/cert.pem"),
        ("SSL_KEY_PATH", "/tmp/docker-mailserver/ssl/key.pem"),
        ("SSL_TYPE", "manual"),
    )


def test_prod_env_has_the_relay_host_but_no_credentials() -> None:
    env = dict(dms_env(prod()))
    assert env["DEFAULT_RELAY_HOST"] == "[smtp-relay.brevo.com]:587"
    assert env["SSL_TYPE"] == "letsencrypt"
    assert "SSL_CERT_PATH" not in env and "RELAY_PASSWORD" not in env and "RELAY_USER" not in env
    assert not any("xsmtpsib" in v for v in env.values())


def test_standard_profile_is_the_rspamd_recipe() -> None:
    settings = dataclasses.replace(dev(), profile="standard")
    env = dict(dms_env(settings))
    assert {k: env[k] for k in PROFILE_ENV["standard"]} == {
        "ENABLE_RSPAMD": "1",
        "ENABLE_RSPAMD_REDIS": "1",
        "ENABLE_OPENDKIM": "0",
        "ENABLE_OPENDMARC": "0",
        "ENABLE_POLICYD_SPF": "0",
        "ENABLE_AMAVIS": "0",
        "ENABLE_SPAMASSASSIN": "0",
        "ENABLE_CLAMAV": "0",
        "ENABLE_FAIL2BAN": "1",
    }
    assert capabilities(settings) == ("NET_ADMIN",)
    assert capabilities(dev()) == ()


def test_user_env_is_merged_and_sorted() -> None:
    settings = dataclasses.replace(dev(), env=(("ENABLE_SRS", "1"), ("POSTFIX_MESSAGE_SIZE_LIMIT", "52428800")))
    env = dms_env(settings)
    assert ("ENABLE_SRS", "1") in env and ("POSTFIX_MESSAGE_SIZE_LIMIT", "52428800") in env
    assert list(env) == sorted(env)


def test_existing_certificates_use_the_letsencrypt_layout() -> None:
    settings = dataclasses.replace(dev(), tls=TlsSettings(mode="existing", path="/etc/letsencrypt"))
    assert dict(dms_env(settings))["SSL_TYPE"] == "letsencrypt"


def test_every_key_mailstack_sets_is_refused_in_user_env() -> None:
    """MANAGED_ENV_KEYS (config/checks.py) must cover every variable dms_env can produce."""
    produced: set[str] = set()
    base = prod()
    for profile, mode, pop3 in itertools.product(
        ("minimal", "standard"), ("self-signed", "letsencrypt", "existing"), (False, True)
    ):
        settings = dataclasses.replace(
            base, profile=profile, tls=TlsSettings(mode=mode, path="/x"), ports=Ports(pop3=pop3), env=()
        )
        produced |= {k for k, _ in dms_env(settings)}
        produced |= {k for k, _ in dms_env(dataclasses.replace(settings, aliases=FORWARD))}
    # The SRS keys are derived defaults a user may override (config/dms_env.py).
    assert produced - SRS_ENV_KEYS <= MANAGED_ENV_KEYS, sorted(produced - SRS_ENV_KEYS - MANAGED_ENV_KEYS)
    assert produced >= SRS_ENV_KEYS


def test_ports() -> None:
    assert [(p.port, p.service) for p in published_ports(Ports())] == [
        (25, "smtp"),
        (465, "submissions"),
        (993, "imaps"),
    ]
    assert [p.port for p in published_ports(Ports(submission=True, imap=True, pop3=True))] == [
        25,
        110,
        143,
        465,
        587,
        993,
        995,
    ]
