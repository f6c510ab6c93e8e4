"""Verdicts of `verify`: statuses, findings, exit codes, check groups."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of one check."""

    OK = "ok"
    MISSING = "missing"  # not published anywhere
    DIFFERENT = "different"  # published with other content (found and expected are both shown)
    PROPAGATING = "propagating"  # some nameservers (or the resolver) have it, some do not yet
    FAIL = "fail"  # published but wrong by the rules (SPF budget, key mismatch, port closed, …)
    WARN = "warn"  # worth knowing, does not break mail
    ERROR = "error"  # could not check (no answer, timeout)


PROBLEMS = frozenset({Status.MISSING, Status.DIFFERENT, Status.PROPAGATING, Status.FAIL})

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNCHECKED = 2

GROUPS = (
    "records",
    "spf",
    "dkim",
    "dmarc",
    "mx",
    "ptr",
    "ports",
    "blocklist",
    "mta-sts",
    "autoconfig",
    "dane",
    "dnssec",
)
"""Check groups that `--skip` accepts (`ports` includes the certificate checks)."""


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    domain: str
    """Report group: a mail domain, a zone, or the mail hostname."""
    check: str
    """Check group (see GROUPS) or `nameservers`."""
    subject: str
    """What was checked, e.g. `TXT _dmarc.example.com` or `port 465 on 203.0.113.25`."""
    status: Status
    detail: str = ""
    fix: str = ""
    """The exact record to publish or the action that fixes a problem; empty when OK."""
    expected: str = ""
    found: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "check": self.check,
            "subject": self.subject,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            "expected": self.expected,
            "found": list(self.found),
        }


def exit_code(findings: Iterable[Finding]) -> int:
    """0 when everything is OK, 1 when something is wrong, 2 when something could not be checked.

    A definite problem wins over an unchecked item: the user has something to fix either way.
    """
    statuses = {f.status for f in findings}
    if statuses & PROBLEMS:
        return EXIT_PROBLEMS
    if Status.ERROR in statuses:
        return EXIT_UNCHECKED
    return EXIT_OK
