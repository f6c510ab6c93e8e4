"""The Ddns component under Pulumi's mocks: ddclient installed over SSH with its config on stdin, and
the hostname's A record created once and then left to ddclient (`ignore_changes`)."""

from __future__ import annotations

import base64
import hashlib

from mailstack.config import load_settings
from mailstack.config.ddns import CONF_PATH, TSIG_KEY_PATH, ddclient_conf, install_script, remove_script, tsig_key_file
from tests.conftest import PROD_SECRET_KEYS, PROD_SECRETS, prod_config_values
from tests.harness import RunResult, is_secret, plain, run_program, with_values

REMOTE = "command:remote:Command"
TSIG = base64.b64encode(hashlib.sha256(b"ddns tsig").digest()).decode()


def run(**changes: object) -> tuple[RunResult, dict[str, str]]:
    config = with_values(prod_config_values(), **changes)
    secrets = (*PROD_SECRET_KEYS, "mailstack:dns")
    result = run_program(config, secrets, stack="prod")
    assert result.error is None, result.error
    return result, config


def test_ddclient_on_the_host_for_a_cloudflare_zone() -> None:
    result, config = run(ddns={"enabled": True})
    settings = load_settings(config, secret_keys=PROD_SECRET_KEYS, stack="prod")
    assert settings.ddns is not None
    command = result.named("ddns-ddclient")
    assert command.type == REMOTE
    assert command.parent.endswith("mailstack:index:Ddns::ddns")
    inputs = command.plain_inputs
    token = PROD_SECRETS["cloudflare:apiToken"]
    assert inputs["create"] == install_script(nsupdate=False)
    assert inputs["delete"] == remove_script()
    assert inputs["stdin"] == ddclient_conf(settings.ddns, token)
    # The token travels on stdin only, and stays secret: never on a command line, never in a log.
    assert is_secret(command.inputs["stdin"])
    assert token not in inputs["create"] and token not in inputs["delete"]
    assert inputs["logging"] == "none"
    assert {"stderr", "stdout"} <= set(command.options["additional_secret_outputs"])
    # ddclient only PATCHes an existing record: it runs after the DNS records (the SDK expands the
    # MailDns component into its children).
    record = result.named("dns-a-mail.example.com")
    assert record.urn in command.options["dependencies"]
    # The A record: created with publicIPv4 and a short TTL, then its content is ddclient's.
    assert record.options["ignore_changes"] == ["content"]
    assert (record.plain_inputs["content"], record.plain_inputs["ttl"]) == ("93.184.215.14", 300.0)
    # Nothing else is ignored: the MX, say, is still the stack's.
    assert result.named("dns-mx-example.com-mail.example.com").options["ignore_changes"] == []
    assert plain(result.outputs["ddns"]) == {
        "hostname": "mail.example.com",
        "provider": "cloudflare",
        "updater": "ddclient",
        "config": CONF_PATH,
        "status": "systemctl status ddclient; cat /var/cache/ddclient/ddclient.cache",
    }


def test_ddclient_with_nsupdate_for_an_rfc2136_zone() -> None:
    rfc = {"server": "ns1.example.net", "keyName": "mailstack", "keySecret": TSIG}
    result, config = run(
        ddns={"enabled": True},
        dns={"provider": "rfc2136", "ttl": 3600, "rfc2136": rfc},
        **{"tls/challenge": "http"},
    )
    settings = load_settings(config, secret_keys=(*PROD_SECRET_KEYS, "mailstack:dns"), stack="prod")
    assert settings.ddns is not None and settings.rfc2136 is not None
    key = result.named("ddns-tsig-key")
    assert key.plain_inputs["stdin"] == tsig_key_file(settings.rfc2136)
    assert is_secret(key.inputs["stdin"]) and TSIG not in key.plain_inputs["create"]
    assert TSIG_KEY_PATH in key.plain_inputs["create"]
    command = result.named("ddns-ddclient")
    assert command.plain_inputs["create"] == install_script(nsupdate=True)
    assert command.plain_inputs["stdin"] == ddclient_conf(settings.ddns, "", rfc2136=settings.rfc2136)
    assert key.urn in command.options["dependencies"]
    record = result.named("dns-a-mail.example.com")
    assert record.type == "pulumi-python:dynamic/mailstack:Rfc2136Record"
    assert record.options["ignore_changes"] == ["content"]


def test_no_ddns_no_updater() -> None:
    result, _ = run()
    assert [r for r in result.resources if r.type == "mailstack:index:Ddns"] == []
    assert result.named("dns-a-mail.example.com").options["ignore_changes"] == []
    assert "ddns" not in result.outputs
