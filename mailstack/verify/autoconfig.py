"""Client autoconfiguration: Thunderbird's config-v1.1.xml, Outlook's autodiscover, the Apple profile,
fetched over HTTPS and checked to name this server and its implicit-TLS ports."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
import xml.parsers.expat
from typing import TYPE_CHECKING

from mailstack.verify.findings import Finding, Status
from mailstack.verify.outputs import WebDocument
from mailstack.verify.probes import tls_context
from mailstack.verify.web import HttpReply, fetch

if TYPE_CHECKING:
    from mailstack.verify.groups import Checks

CHECK = "autoconfig"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
REQUIRED_PORTS = (993, 465)
"""IMAP and submission over implicit TLS: the two services every mailstack server publishes."""

AUTODISCOVER_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
    "<Request><EMailAddress>{address}</EMailAddress>"
    f"<AcceptableResponseSchema>{OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>\n"
)


def is_autodiscover(doc: WebDocument) -> bool:
    return doc.path.lower() == "/autodiscover/autodiscover.xml"


def servers(doc: WebDocument, body: bytes) -> list[tuple[str, int]]:
    """(host, port) of every server the document names.

    Raises:
        ValueError: the body is not a document of its kind (XML or property list).
    """
    try:
        if doc.path.endswith(".mobileconfig"):
            profile = plistlib.loads(body)
            out = []
            for payload in profile.get("PayloadContent", []):
                for side in ("Incoming", "Outgoing"):
                    host = payload.get(f"{side}MailServerHostName")
                    if host:
                        out.append((str(host).lower(), int(payload.get(f"{side}MailServerPortNumber", 0))))
            return out
        root = ET.fromstring(body)
    except (plistlib.InvalidFileException, ET.ParseError, xml.parsers.expat.ExpatError, ValueError, TypeError) as e:
        raise ValueError(f"does not parse: {e}") from e
    try:
        if is_autodiscover(doc):
            ns = {"r": OUTLOOK_NS}
            return [
                (p.findtext("r:Server", "", ns).lower(), int(p.findtext("r:Port", "0", ns) or 0))
                for p in root.iterfind(".//r:Protocol", ns)
            ]
        return [
            (s.findtext("hostname", "").lower(), int(s.findtext("port", "0") or 0))
            for tag in ("incomingServer", "outgoingServer")
            for s in root.iterfind(f".//{tag}")
        ]
    except ValueError as e:
        raise ValueError(f"a port is not a number: {e}") from e


def judge(domain: str, doc: WebDocument, reply: HttpReply, hostname: str) -> list[Finding]:
    subject = f"{doc.url}"
    if reply.error:
        return [Finding(domain, CHECK, subject, Status.FAIL, f"not fetched: {reply.error}", f"serve {doc.url}")]
    if reply.status != 200:
        where = f" redirecting to {reply.location}" if reply.location else ""
        return [Finding(domain, CHECK, subject, Status.FAIL, f"HTTP {reply.status}{where}", f"serve {doc.url}")]
    if reply.content_type != doc.content_type:
        return [
            Finding(
                domain,
                CHECK,
                subject,
                Status.FAIL,
                f"served as `{reply.content_type or 'no type'}`, not {doc.content_type}",
                f"serve it with Content-Type: {doc.content_type}",
            )
        ]
    try:
        named = servers(doc, reply.body)
    except ValueError as e:
        return [Finding(domain, CHECK, subject, Status.FAIL, str(e), "serve the document the stack builds")]
    others = sorted({h for h, _ in named if h != hostname})
    missing = [p for p in REQUIRED_PORTS if (hostname, p) not in named]
    if others or missing:
        problems = [f"names {', '.join(others)}"] if others else []
        problems += [f"lacks {hostname}:{p}" for p in missing]
        return [
            Finding(
                domain,
                CHECK,
                subject,
                Status.FAIL,
                "; ".join(problems) + ": clients would be set up wrongly",
                "serve the document the stack builds (`pulumi up`, or the file `render` writes)",
            )
        ]
    ports = ", ".join(str(p) for _, p in named)
    return [Finding(domain, CHECK, subject, Status.OK, f"{hostname}, ports {ports}")]


def domain_of(doc: WebDocument) -> str:
    return doc.host.partition(".")[2]


async def check(checks: Checks, doc: WebDocument) -> list[Finding]:
    domain = domain_of(doc)
    body = None
    if is_autodiscover(doc):
        # Outlook's request ([MS-OXDSCLI] §2.2.3); the address is one that exists nowhere.
        body = AUTODISCOVER_REQUEST.format(address=f"mailstack-verify@{domain}").encode()
    reply = await fetch(
        doc.url,
        context=tls_context(checks.options.cafile),
        endpoint=checks.options.web_address,
        timeout=checks.options.timeout,
        method="POST" if body is not None else "GET",
        body=body,
    )
    return judge(domain, doc, reply, checks.outputs.hostname)
