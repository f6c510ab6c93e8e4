"""Client autoconfiguration documents (config/autoconfig.py): exact texts, parsed back as XML and plist."""

from __future__ import annotations

import json
import plistlib
import xml.etree.ElementTree as ET
from typing import Any

from mailstack.config import MailSettings, load_settings
from mailstack.config.autoconfig import (
    AUTODISCOVER_RESPONSE_NS,
    OUTLOOK_RESPONSE_NS,
    autodiscover_xml,
    mobileconfig,
    thunderbird_xml,
)


def settings(ports: dict[str, Any] | None = None, **extra: Any) -> MailSettings:
    raw: dict[str, Any] = {
        "mailstack:hostname": "mail.example.org",
        "mailstack:domains": {"example.org": {}},
        "mailstack:accounts": {"me@example.org": {}},
        **extra,
    }
    if ports is not None:
        raw["mailstack:ports"] = ports
    raw = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
    return load_settings(raw, secret_keys={"cloudflare:apiToken"}, stack="t")


def servers(text: str) -> list[tuple[str, str, str, str]]:
    """(tag, type, port, socketType) of every server in a config-v1.1.xml."""
    provider = ET.fromstring(text).find("emailProvider")
    assert provider is not None
    return [
        (s.tag, s.get("type", ""), s.findtext("port", ""), s.findtext("socketType", ""))
        for s in provider
        if s.tag in ("incomingServer", "outgoingServer")
    ]


def test_thunderbird_document_is_exact_for_the_default_ports() -> None:
    s = settings()
    assert thunderbird_xml(s, s.domain("example.org")) == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<clientConfig version="1.1">\n'
        '  <emailProvider id="example.org">\n'
        "    <domain>example.org</domain>\n"
        "    <displayName>example.org mail</displayName>\n"
        "    <displayShortName>example.org</displayShortName>\n"
        '    <incomingServer type="imap">\n'
        "      <hostname>mail.example.org</hostname>\n"
        "      <port>993</port>\n"
        "      <socketType>SSL</socketType>\n"
        "      <authentication>password-cleartext</authentication>\n"
        "      <username>%EMAILADDRESS%</username>\n"
        "    </incomingServer>\n"
        '    <outgoingServer type="smtp">\n'
        "      <hostname>mail.example.org</hostname>\n"
        "      <port>465</port>\n"
        "      <socketType>SSL</socketType>\n"
        "      <authentication>password-cleartext</authentication>\n"
        "      <username>%EMAILADDRESS%</username>\n"
        "    </outgoingServer>\n"
        "  </emailProvider>\n"
        "</clientConfig>\n"
    )


def test_plaintext_ports_appear_only_when_enabled_after_implicit_tls() -> None:
    s = settings({"submission": True, "imap": True, "pop3": True})
    assert servers(thunderbird_xml(s, s.domain("example.org"))) == [
        ("incomingServer", "imap", "993", "SSL"),
        ("incomingServer", "imap", "143", "STARTTLS"),
        ("incomingServer", "pop3", "995", "SSL"),
        ("incomingServer", "pop3", "110", "STARTTLS"),
        ("outgoingServer", "smtp", "465", "SSL"),
        ("outgoingServer", "smtp", "587", "STARTTLS"),
    ]
    only_submission = settings({"submission": True})
    assert servers(thunderbird_xml(only_submission, only_submission.domain("example.org"))) == [
        ("incomingServer", "imap", "993", "SSL"),
        ("outgoingServer", "smtp", "465", "SSL"),
        ("outgoingServer", "smtp", "587", "STARTTLS"),
    ]


def test_autodiscover_response_is_exact() -> None:
    s = settings()
    protocol = (
        "      <Protocol>\n"
        "        <Type>{type}</Type>\n"
        "        <Server>mail.example.org</Server>\n"
        "        <Port>{port}</Port>\n"
        "        <DomainRequired>off</DomainRequired>\n"
        "        <LoginName>me@example.org</LoginName>\n"
        "        <SPA>off</SPA>\n"
        "        <SSL>on</SSL>\n"
        "        <Encryption>SSL</Encryption>\n"
        "        <AuthRequired>on</AuthRequired>\n"
        "{extra}"
        "      </Protocol>\n"
    )
    assert autodiscover_xml(s, s.domain("example.org"), "me@example.org") == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">\n'
        f'  <Response xmlns="{OUTLOOK_RESPONSE_NS}">\n'
        "    <Account>\n"
        "      <AccountType>email</AccountType>\n"
        "      <Action>settings</Action>\n"
        + protocol.format(type="IMAP", port=993, extra="")
        + protocol.format(type="SMTP", port=465, extra="        <UsePOPAuth>on</UsePOPAuth>\n")
        + "    </Account>\n"
        "  </Response>\n"
        "</Autodiscover>\n"
    )


def test_autodiscover_escapes_the_address_and_omits_login_without_one() -> None:
    s = settings({"submission": True})
    ns = {"r": OUTLOOK_RESPONSE_NS}
    root = ET.fromstring(autodiscover_xml(s, s.domain("example.org"), "a&b@example.org"))
    protocols = root.findall("r:Response/r:Account/r:Protocol", ns)
    assert [(p.findtext("r:Port", "", ns), p.findtext("r:Encryption", "", ns)) for p in protocols] == [
        ("993", "SSL"),
        ("465", "SSL"),
        ("587", "TLS"),
    ]
    assert {p.findtext("r:LoginName", "", ns) for p in protocols} == {"a&b@example.org"}
    anonymous = ET.fromstring(autodiscover_xml(s, s.domain("example.org"), None))
    assert anonymous.findall(".//r:LoginName", ns) == []


def test_apple_profile_parses_and_is_stable() -> None:
    s = settings({"submission": True, "imap": True})
    profile = plistlib.loads(mobileconfig(s, s.domain("example.org"), "me@example.org").encode())
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadIdentifier"] == "org.example.mailstack.t"
    (mail,) = profile["PayloadContent"]
    assert {k: v for k, v in mail.items() if k != "PayloadUUID"} == {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": "org.example.mailstack.t.mail",
        "PayloadDisplayName": "example.org mail",
        "EmailAccountDescription": "example.org",
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": "me@example.org",
        "IncomingMailServerHostName": "mail.example.org",
        "IncomingMailServerPortNumber": 993,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerUsername": "me@example.org",
        "OutgoingMailServerHostName": "mail.example.org",
        "OutgoingMailServerPortNumber": 465,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerUsername": "me@example.org",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    # The same stack and domain give the same UUIDs: reinstalling replaces the account.
    again = plistlib.loads(mobileconfig(s, s.domain("example.org"), None).encode())
    assert (again["PayloadUUID"], again["PayloadContent"][0]["PayloadUUID"]) == (
        profile["PayloadUUID"],
        mail["PayloadUUID"],
    )
    assert "EmailAddress" not in again["PayloadContent"][0]  # the device asks while installing


def test_autoconfig_defaults_to_where_mailstack_hosts_it() -> None:
    assert settings().autoconfig is False
    assert settings(**{"mailstack:dns": {"provider": "cloudflare"}, "cloudflare:apiToken": "t"}).autoconfig is True
    assert settings(**{"mailstack:autoconfig": True}).autoconfig is True
