"""Outbound relay (smarthost) presets: host, port and the SPF include each provider documents.

Port 587 with STARTTLS everywhere: DMS does not configure Postfix wrapper mode, so implicit-TLS
relays on 465 do not work out of the box (DMS docs config/advanced/mail-forwarding/relay-hosts.md,
target/scripts/helpers/relay.sh).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelayPreset:
    host: str
    port: int = 587
    spf_include: str | None = None
    username: str | None = None
    """A fixed SMTP user name, where the provider uses one (SendGrid: `apikey`)."""


PRESETS: dict[str, RelayPreset] = {
    "brevo": RelayPreset("smtp-relay.brevo.com", spf_include="spf.brevo.com"),
    "mailgun": RelayPreset("smtp.mailgun.org", spf_include="mailgun.org"),
    "mailgun-eu": RelayPreset("smtp.eu.mailgun.org", spf_include="mailgun.org"),
    "sendgrid": RelayPreset("smtp.sendgrid.net", spf_include="sendgrid.net", username="apikey"),
    # SES and Postmark use their own Return-Path domain, so SPF at the apex needs no include;
    # DMARC alignment comes from DKIM (RFC 7489 §3.1; AWS SES and Postmark custom MAIL FROM docs).
    "ses": RelayPreset("email-smtp.{region}.amazonaws.com"),
    "postmark": RelayPreset("smtp.postmarkapp.com"),
    # SMTP2GO moved SPF to a VERP return path in 2019: no include at the apex.
    "smtp2go": RelayPreset("mail.smtp2go.com"),
}
