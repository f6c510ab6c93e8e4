"""MTA-STS (RFC 8461): the policy text a domain serves over HTTPS and the `_mta-sts` TXT that announces it.

Pure builders: the record spec is made in config/records.py from `txt_text`, the hosting in
config/worker.py (Cloudflare Worker) or mailstack/render.py (files for a web server of your own).
"""

from __future__ import annotations

import hashlib

from mailstack.config.names import InvalidNameError, to_ascii
from mailstack.config.settings import DomainSettings, MailSettings

POLICY_PATH = "/.well-known/mta-sts.txt"
"""RFC 8461 §3.3: the policy's fixed location on the policy host."""
CONTENT_TYPE = "text/plain"
"""RFC 8461 §3.3: senders must refuse a policy served with any other media type."""
ID_LENGTH = 32
"""RFC 8461 §3.1: `id` is 1 to 32 letters and digits."""


def policy_host(domain: str) -> str:
    """RFC 8461 §3.3: the policy is fetched from `https://mta-sts.<domain>/.well-known/mta-sts.txt`."""
    return f"mta-sts.{domain}"


def txt_name(domain: str) -> str:
    """RFC 8461 §3.1: the TXT record announcing the policy."""
    return f"_mta-sts.{domain}"


def mx_hosts(settings: MailSettings, domain: DomainSettings) -> tuple[str, ...]:
    """The hosts the domain's MX records name: this server, then each backup MX, without repeats.

    RFC 8461 §4.1: a sender refuses (in enforce mode) every MX host the policy does not list, so a
    backup MX missing here would lose exactly the mail it exists to queue.
    """
    hosts = [settings.hostname]
    for backup in domain.backup_mx:
        try:
            hosts.append(to_ascii(backup.host))
        except InvalidNameError:
            hosts.append(backup.host.strip().rstrip(".").lower())  # config/checks.py reports it
    return tuple(dict.fromkeys(hosts))


def policy_text(settings: MailSettings, domain: DomainSettings) -> str | None:
    """The policy file (RFC 8461 §3.2), or None when the domain publishes none.

    Key/value lines separated by CRLF, as §3.2's ABNF (`sts-policy-term-sep = CRLF`) has them;
    `version` first, as the ABNF requires.
    """
    if domain.mta_sts is None:
        return None
    lines = ["version: STSv1", f"mode: {domain.mta_sts.mode}"]
    lines += [f"mx: {host}" for host in mx_hosts(settings, domain)]
    lines.append(f"max_age: {domain.mta_sts.max_age}")
    return "".join(f"{line}\r\n" for line in lines)


def policy_id(text: str) -> str:
    """A digest of the policy text: it changes exactly when the text does.

    RFC 8461 §3.1: senders refetch the policy only when the id changes, so an id derived from the
    text can neither go stale (text changed, id kept) nor cause needless refetches.
    """
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def txt_text(settings: MailSettings, domain: DomainSettings) -> str | None:
    """`v=STSv1; id=<id>` (RFC 8461 §3.1), or None when the domain publishes no policy."""
    text = policy_text(settings, domain)
    if text is None:
        return None
    return f"v=STSv1; id={policy_id(text)}"
