"""Client autoconfiguration documents: Thunderbird autoconfig, Outlook autodiscover, an Apple profile.

Each describes exactly the services the stack publishes (config/containers.py `published_ports`):
IMAP over implicit TLS (993) and submission over implicit TLS (465) always, STARTTLS IMAP (143),
submission (587) and POP3 (995/110) only when `ports` enables them. Implicit TLS comes first
(RFC 8314 §5.1), which is also what clients pick when they take the first entry.

The documents are built with ElementTree and plistlib (escaping is theirs, not ours); the Worker
(config/worker.py) and `render` serve these exact texts.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal

from mailstack.config.settings import DomainSettings, MailSettings

THUNDERBIRD_PATH = "/mail/config-v1.1.xml"
"""Thunderbird/K-9 look up `https://autoconfig.<domain>/mail/config-v1.1.xml` (Mozilla wiki, Autoconfiguration)."""
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"
"""Outlook POSTs its request to `https://autodiscover.<domain>/autodiscover/autodiscover.xml` ([MS-OXDSCLI] §3.1.5)."""
MOBILECONFIG_PATH = "/mail/config.mobileconfig"
"""Where the Apple profile is served on the autoconfig host (Apple has no discovery: users open this URL)."""
XML_TYPE = "application/xml"
MOBILECONFIG_TYPE = "application/x-apple-aspen-config"
"""The media type iOS and macOS install a configuration profile from."""

AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
PROFILE_NAMESPACE = uuid.UUID("6f0e2b1c-8d55-4f7e-9a52-3c1f0d6b9e41")
"""Fixed namespace for the profile's PayloadUUIDs: the same stack and domain give the same UUIDs, so
reinstalling the profile replaces the account instead of adding a second one."""


def autoconfig_host(domain: str) -> str:
    return f"autoconfig.{domain}"


def autodiscover_host(domain: str) -> str:
    return f"autodiscover.{domain}"


@dataclass(frozen=True)
class Service:
    protocol: Literal["imap", "pop3", "smtp"]
    port: int
    implicit_tls: bool
    """True: TLS from the first byte (RFC 8314); False: STARTTLS."""


def services(settings: MailSettings) -> tuple[Service, ...]:
    """The client services the stack publishes, implicit TLS first within each protocol."""
    ports = settings.ports
    out = [Service("imap", 993, True)]
    if ports.imap:
        out.append(Service("imap", 143, False))
    if ports.pop3:
        out += [Service("pop3", 995, True), Service("pop3", 110, False)]
    out.append(Service("smtp", 465, True))
    if ports.submission:
        out.append(Service("smtp", 587, False))
    return tuple(out)


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def thunderbird_xml(settings: MailSettings, domain: DomainSettings) -> str:
    """`config-v1.1.xml` (Mozilla's clientConfig 1.1 format; also read by K-9/Thunderbird for Android).

    `%EMAILADDRESS%` is the client's own placeholder: DMS logins are full addresses.
    """
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain.name)
    _text(provider, "domain", domain.name)
    _text(provider, "displayName", f"{domain.name} mail")
    _text(provider, "displayShortName", domain.name)
    for service in services(settings):
        tag, kind = ("outgoingServer", "smtp") if service.protocol == "smtp" else ("incomingServer", service.protocol)
        server = ET.SubElement(provider, tag, type=kind)
        _text(server, "hostname", settings.hostname)
        _text(server, "port", str(service.port))
        _text(server, "socketType", "SSL" if service.implicit_tls else "STARTTLS")
        _text(server, "authentication", "password-cleartext")
        _text(server, "username", "%EMAILADDRESS%")
    return _xml(root)


def autodiscover_xml(settings: MailSettings, domain: DomainSettings, address: str | None) -> str:
    """The Outlook autodiscover response (POX, [MS-OXDSCLI] §2.2.4) for `address`.

    `LoginName` is the address the request named (DMS logins are full addresses); without one the
    element is left out and Outlook asks the user.
    """
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_RESPONSE_NS)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for service in services(settings):
        protocol = ET.SubElement(account, "Protocol")
        _text(protocol, "Type", service.protocol.upper())
        _text(protocol, "Server", settings.hostname)
        _text(protocol, "Port", str(service.port))
        _text(protocol, "DomainRequired", "off")
        if address is not None:
            _text(protocol, "LoginName", address)
        _text(protocol, "SPA", "off")
        _text(protocol, "SSL", "on")
        # Encryption overrides SSL ([MS-OXDSCLI] §2.2.4.1.1.2.2.9): TLS = STARTTLS, SSL = implicit TLS.
        _text(protocol, "Encryption", "SSL" if service.implicit_tls else "TLS")
        _text(protocol, "AuthRequired", "on")
        if service.protocol == "smtp":
            _text(protocol, "UsePOPAuth", "on")
    return _xml(root)


def _reverse(domain: str) -> str:
    return ".".join(reversed(domain.split(".")))


def mobileconfig(settings: MailSettings, domain: DomainSettings, address: str | None) -> str:
    """An unsigned Apple configuration profile with one `com.apple.mail.managed` payload.

    Apple's mail payload holds one incoming and one outgoing server: IMAP on 993 and submission on
    465, the two always published. Without an address, the device asks for it and for the user
    name while installing (Apple Device Management, "Mail" payload: EmailAddress).
    """
    ident = f"{_reverse(domain.name)}.mailstack.{settings.stack}"
    mail: dict[str, object] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.mail",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, f"{ident}.mail")).upper(),
        "PayloadDisplayName": f"{domain.name} mail",
        "EmailAccountDescription": domain.name,
        "EmailAccountType": "EmailTypeIMAP",
        "IncomingMailServerHostName": settings.hostname,
        "IncomingMailServerPortNumber": 993,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": settings.hostname,
        "OutgoingMailServerPortNumber": 465,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    if address is not None:
        mail |= {"EmailAddress": address, "IncomingMailServerUsername": address, "OutgoingMailServerUsername": address}
    profile: dict[str, object] = {
        "PayloadContent": [mail],
        "PayloadDisplayName": f"{domain.name} mail",
        "PayloadDescription": f"IMAP and SMTP settings for {domain.name} on {settings.hostname}",
        "PayloadIdentifier": ident,
        "PayloadType": "Configuration",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, ident)).upper(),
        "PayloadVersion": 1,
    }
    return plistlib.dumps(profile, sort_keys=True).decode()
