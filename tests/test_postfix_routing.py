"""Every address delivers where the config says: real Postfix address resolution on loopback.

A private Postfix instance (tests/postfix.py) gets the postfix-virtual.cf and postfix-accounts.cf
that mailstack writes, wired as DMS v15.1 wires them, and receives one message per address over
SMTP. Which maildir each message lands in (or whether it is relayed onwards) is Postfix's own
decision. The negative control is the virtual file without the identity lines: the catch-all then
takes the accounts' mail, which is what DMS's docs warn about.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailstack.config import dms_files
from mailstack.config.settings import AccountSettings, AliasSettings
from tests.dnsserver import free_port
from tests.postfix import PostfixInstance

pytestmark = pytest.mark.integration

ACCOUNTS = (
    AccountSettings("bob@example.org", None, None),
    AccountSettings("me@example.org", None, "5G"),
    AccountSettings("me@another.org", None, None),
)
ALIASES = (
    AliasSettings("postmaster@another.org", ("me@another.org",)),
    AliasSettings("sales@example.org", ("bob@example.org",)),
    AliasSettings("team@example.org", ("bob@example.org", "me@example.org")),
    AliasSettings("ext@example.org", ("friend@elsewhere.test",)),
    AliasSettings("@example.org", ("me@example.org",)),
)
ACCOUNTS_TEXT = dms_files.accounts_file((a.address, "{SHA512-CRYPT}$6$x$y") for a in ACCOUNTS)
POSTMAP_KEYS = ("bob@example.org", "me@example.org", "me@another.org", "@example.org")
RECIPIENTS = (
    "bob@example.org",
    "me@example.org",
    "me@another.org",
    "sales@example.org",
    "team@example.org",
    "postmaster@another.org",
    "nobody-here@example.org",
    "ext@example.org",
)


class Capture:
    """The next hop for mail leaving the stack: records each envelope."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def capture() -> Iterator[tuple[Capture, int]]:
    handler = Capture()
    port = free_port("127.0.0.1")
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def deliver(virtual: str, relay_port: int, deliveries: int) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """Send one message per recipient; return maildir → the recipients whose message landed there."""
    with PostfixInstance(
        accounts=ACCOUNTS_TEXT, virtual=virtual, relay_port=relay_port, hostname="mail.example.org"
    ) as mta:
        with smtplib.SMTP("127.0.0.1", mta.port, timeout=10) as client:
            for rcpt in RECIPIENTS:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = "alice@sender.test", rcpt, f"to {rcpt}"
                msg.set_content("routing test\n")
                client.send_message(msg, from_addr="alice@sender.test", to_addrs=[rcpt])
        mta.wait_for_deliveries(deliveries)
        landed: dict[str, list[str]] = {}
        for box, messages in mta.maildir_messages().items():
            for raw in messages:
                subject = next(line for line in raw.decode().splitlines() if line.startswith("Subject: "))
                landed.setdefault(box, []).append(subject.removeprefix("Subject: to "))
        lookups = {key: mta.postmap_query(key) for key in POSTMAP_KEYS}
        return {box: sorted(rcpts) for box, rcpts in landed.items()}, lookups


def test_catch_all_keeps_every_account_and_alias_delivering_to_its_own_mailbox(capture: tuple[Capture, int]) -> None:
    handler, port = capture
    virtual = dms_files.virtual_file(ALIASES, ACCOUNTS)
    # team@ fans out to two mailboxes: one delivery more than messages sent.
    landed, lookups = deliver(virtual, port, len(RECIPIENTS) + 1)
    assert landed == {
        "another.org/me": ["me@another.org", "postmaster@another.org"],
        "example.org/bob": ["bob@example.org", "sales@example.org", "team@example.org"],
        "example.org/me": ["me@example.org", "nobody-here@example.org", "team@example.org"],
    }
    # The external forward left through the relay host with its recipient rewritten (no SRS here:
    # postsrsd is DMS's, shown end to end on the real container).
    assert handler.envelopes == [("alice@sender.test", ["friend@elsewhere.test"])]
    # What postmap reads in the same table: the identity line, and the catch-all that no longer
    # sees bob (another.org has no catch-all, so its account needs no identity line).
    assert lookups == {
        "bob@example.org": "bob@example.org",
        "me@example.org": "me@example.org",
        "me@another.org": None,
        "@example.org": "me@example.org",
    }


def test_without_identity_lines_the_catch_all_takes_the_accounts_mail(capture: tuple[Capture, int]) -> None:
    """Negative control: the virtual file as mailstack wrote it before (aliases only)."""
    _, port = capture
    virtual = dms_files.virtual_file(ALIASES)
    assert "bob@example.org bob@example.org" not in virtual
    # team@'s two targets both end at the catch-all target: Postfix delivers once.
    landed, lookups = deliver(virtual, port, len(RECIPIENTS))
    assert lookups["bob@example.org"] is None
    # bob's own mail and his aliases' mail all go to the catch-all target.
    assert landed == {
        "another.org/me": ["me@another.org", "postmaster@another.org"],
        "example.org/me": [
            "bob@example.org",
            "me@example.org",
            "nobody-here@example.org",
            "sales@example.org",
            "team@example.org",
        ],
    }
