"""The web documents of the mail domains and the Cloudflare Worker script that serves them.

Per domain: `mta-sts.<d>` serves the MTA-STS policy (config/mta_sts.py) when the domain publishes
one; `autoconfig.<d>` and `autodiscover.<d>` serve the client documents (config/autoconfig.py) when
`autoconfig` is on. With Cloudflare DNS one Worker per zone serves them on Worker custom domains
(components/mail_web.py); with manual DNS `render` writes the same texts as files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailstack.config import autoconfig, mta_sts
from mailstack.config.settings import DomainSettings, MailSettings

HANDLER = Path(__file__).with_name("scripts") / "mailstack-worker.js"
MAIN_MODULE = "worker.js"
"""The module name the script is uploaded as (WorkersScript `main_module`)."""
COMPATIBILITY_DATE = "2026-11-01"
"""Pins the Workers runtime behaviour the script was tested under (workerd, tests/test_worker.py)."""
ADDRESS = "%MAILSTACK_ADDRESS%"
"""The Worker's placeholder for the user's address (same constant in mailstack-worker.js)."""


@dataclass(frozen=True)
class Document:
    """One HTTPS resource on a mail domain's web host."""

    host: str
    path: str
    content_type: str
    body: str
    """The text served when the request names no (usable) address."""
    template: str | None = None
    """The text with ADDRESS where the requester's address goes; None: the body never varies."""
    post: bool = False
    """Also answers POST (Outlook's autodiscover request)."""
    filename: str | None = None
    """Served as an attachment under this name."""
    purpose: str = ""

    @property
    def url(self) -> str:
        return f"https://{self.host}{self.path}"


def domain_documents(settings: MailSettings, domain: DomainSettings) -> list[Document]:
    """The documents of one domain, MTA-STS first."""
    docs = []
    policy = mta_sts.policy_text(settings, domain)
    if policy is not None:
        docs.append(
            Document(
                mta_sts.policy_host(domain.name),
                mta_sts.POLICY_PATH,
                mta_sts.CONTENT_TYPE,
                policy,
                purpose="MTA-STS policy: sending servers fetch it over HTTPS (RFC 8461 §3.3)",
            )
        )
    if domain.autoconfig:
        d = domain.name
        docs += [
            Document(
                autoconfig.autoconfig_host(d),
                autoconfig.THUNDERBIRD_PATH,
                autoconfig.XML_TYPE,
                autoconfig.thunderbird_xml(settings, domain),
                purpose="Thunderbird and K-9 Mail read the server settings from it",
            ),
            Document(
                autoconfig.autoconfig_host(d),
                autoconfig.MOBILECONFIG_PATH,
                autoconfig.MOBILECONFIG_TYPE,
                autoconfig.mobileconfig(settings, domain, None),
                autoconfig.mobileconfig(settings, domain, ADDRESS),
                filename=f"{d}.mobileconfig",
                purpose="Apple Mail profile: open it on the iPhone/Mac (?email=you@domain fills in the address)",
            ),
            Document(
                autoconfig.autodiscover_host(d),
                autoconfig.AUTODISCOVER_PATH,
                autoconfig.XML_TYPE,
                autoconfig.autodiscover_xml(settings, domain, None),
                autoconfig.autodiscover_xml(settings, domain, ADDRESS),
                post=True,
                purpose="Outlook POSTs the address and reads the server settings from the answer",
            ),
        ]
    return docs


def documents(settings: MailSettings, domains: Sequence[DomainSettings] | None = None) -> list[Document]:
    """Every document of the given domains (default: all), in domain order."""
    return [doc for d in (settings.domains if domains is None else domains) for doc in domain_documents(settings, d)]


def documents_output(settings: MailSettings) -> list[dict[str, str]]:
    """The `webDocuments` stack output: what `verify` fetches, and where `render`'s files must be served."""
    return [{"url": doc.url, "contentType": doc.content_type, "purpose": doc.purpose} for doc in documents(settings)]


def web_hosts(settings: MailSettings, domain: DomainSettings) -> tuple[str, ...]:
    """The host names that must serve the domain's documents (one Worker custom domain each)."""
    return tuple(dict.fromkeys(doc.host for doc in domain_documents(settings, domain)))


def sites(settings: MailSettings, domains: Sequence[DomainSettings]) -> dict[str, object]:
    """The Worker's SITES table: host → {domain, paths: {path → document fields}}."""
    out: dict[str, dict[str, object]] = {}
    for domain in domains:
        for doc in domain_documents(settings, domain):
            site = out.setdefault(doc.host, {"domain": domain.name, "paths": {}})
            entry: dict[str, object] = {"type": doc.content_type, "body": doc.body}
            if doc.template is not None:
                entry["template"] = doc.template
            if doc.post:
                entry["post"] = True
            if doc.filename is not None:
                entry["filename"] = doc.filename
            paths = site["paths"]
            assert isinstance(paths, dict)
            paths[doc.path.lower()] = entry
    return dict(out)


def worker_script(settings: MailSettings, domains: Sequence[DomainSettings]) -> str:
    """The ES module uploaded to Cloudflare (and run by workerd in the tests): SITES, then the handler.

    JSON is a JavaScript expression; `ensure_ascii` also escapes U+2028/U+2029, which older
    JavaScript parsers refuse inside string literals.
    """
    table = json.dumps(sites(settings, domains), indent=1, sort_keys=True, ensure_ascii=True)
    return f"const SITES = {table};\n\n{HANDLER.read_text()}"


def script_name(stack: str, zone: str) -> str:
    """A Worker name per stack and zone (Cloudflare: lowercase letters, digits, `-`, at most 63)."""
    name = f"mailstack-{stack}-{zone}".lower().replace(".", "-").replace("_", "-")
    return name if len(name) <= 63 else name[:54] + "-" + mta_sts.policy_id(name)[:8]
