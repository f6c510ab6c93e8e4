"""Rendering of `verify` findings: plain text grouped by domain, or JSON.

Plain text, not a table: at 80 columns a five-column table left one character per line for the
details and the fix (321 lines for 3 findings, 8,728 for 100 domains), and rendering it was half
of verify's run time. Each domain gets one summary line; each finding that needs attention gets
its subject, its details wrapped to the terminal width, and its fix on one line of its own that is
never wrapped, so it can be copied whole.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TextIO

from mailstack.verify.findings import EXIT_OK, EXIT_PROBLEMS, Finding, Status
from mailstack.verify.outputs import StackOutputs

# ANSI SGR colours, only on a terminal and never with NO_COLOR set (https://no-color.org).
COLOURS = {
    Status.OK: "32",
    Status.WARN: "33",
    Status.PROPAGATING: "33",
    Status.MISSING: "1;31",
    Status.DIFFERENT: "1;31",
    Status.FAIL: "1;31",
    Status.ERROR: "35",
}
INDENT = "      "
CHECK_ORDER = (
    "nameservers",
    "records",
    "mx",
    "spf",
    "dkim",
    "dmarc",
    "mta-sts",
    "autoconfig",
    "dnssec",
    "ptr",
    "ports",
    "tls",
    "dane",
    "blocklist",
)


def group_order(findings: Sequence[Finding], outputs: StackOutputs) -> list[str]:
    """Mail domains in the stack's order, then other zones, then the mail hostname."""
    present = {f.domain for f in findings}
    ordered = [d for d in outputs.mail_domains if d in present]
    rest = sorted(present - set(ordered) - {outputs.hostname})
    return ordered + rest + ([outputs.hostname] if outputs.hostname in present else [])


def _sorted(findings: Sequence[Finding]) -> list[Finding]:
    rank = {c: i for i, c in enumerate(CHECK_ORDER)}
    return sorted(findings, key=lambda f: (rank.get(f.check, len(rank)), f.subject))


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    counts = Counter(f.status.value for f in findings)
    return {status.value: counts.get(status.value, 0) for status in Status}


def verdict_line(code: int) -> str:
    if code == EXIT_OK:
        return "all good"
    if code == EXIT_PROBLEMS:
        return "something is wrong: apply the fixes above"
    return "some checks could not run: see the error lines"


def counts_text(findings: Sequence[Finding]) -> str:
    """`1 missing, 8 ok`: the statuses that occur, problems first, OK last."""
    counts = summary(findings)
    order = [s for s in Status if s != Status.OK] + [Status.OK]
    return ", ".join(f"{counts[s.value]} {s.value}" for s in order if counts[s.value])


def _finding_lines(f: Finding, width: int, colour: bool) -> list[str]:
    status = f"\x1b[{COLOURS[f.status]}m{f.status.value}\x1b[0m" if colour else f.status.value
    head = f"  {status}  {f.check}: {f.subject}"
    if f.status == Status.OK:
        # One paragraph per OK check (--all): "ok  spf: SPF example.com: 1/10 DNS lookups, 0/2 void".
        text = f"  {f.status.value}  {f.check}: {f.subject}" + (f": {f.detail}" if f.detail else "")
        lines = _wrap(text, width, INDENT)
        return [lines[0].replace(f.status.value, status, 1), *lines[1:]]
    lines = [head]
    if f.detail:
        lines += _wrap(INDENT + f.detail, width, INDENT)
    if f.fix:
        lines.append(f"{INDENT}fix: {f.fix}")  # never wrapped: copied whole
    return lines


def _wrap(text: str, width: int, indent: str) -> list[str]:
    # Words are never broken, so a long record, URL or address stays in one piece.
    return textwrap.wrap(
        text,
        width=max(width, 40),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [text]


def render_text(
    findings: Sequence[Finding],
    code: int,
    outputs: StackOutputs,
    elapsed: float,
    *,
    everything: bool = False,
    quiet: bool = False,
    width: int = 80,
    colour: bool = False,
) -> str:
    """The report: per domain a summary line, then the findings that need attention (all with `everything`).

    `quiet` leaves out the summary lines of domains with nothing to report.
    """
    by_group: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_group[finding.domain].append(finding)
    lines: list[str] = []
    for group in group_order(findings, outputs):
        group_findings = by_group[group]
        shown = [f for f in _sorted(group_findings) if everything or f.status != Status.OK]
        if quiet and not shown:
            continue
        lines.append(f"{group}: {counts_text(group_findings)}")
        for f in shown:
            lines += _finding_lines(f, width, colour)
    counts = ", ".join(f"{n} {s}" for s, n in summary(findings).items() if n)
    lines.append(f"{counts or 'nothing checked'} in {elapsed:.2f} s: {verdict_line(code)} (exit {code})")
    return "\n".join(lines) + "\n"


def print_text(
    findings: Sequence[Finding],
    code: int,
    outputs: StackOutputs,
    elapsed: float,
    *,
    everything: bool = False,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> None:
    """render_text to `stream` (stdout): wrapped to the terminal width (COLUMNS, else 80), coloured on a terminal."""
    stream = stream or sys.stdout
    width = shutil.get_terminal_size((80, 24)).columns
    colour = stream.isatty() and "NO_COLOR" not in os.environ
    stream.write(
        render_text(findings, code, outputs, elapsed, everything=everything, quiet=quiet, width=width, colour=colour)
    )


def render_json(findings: Sequence[Finding], code: int, outputs: StackOutputs, elapsed: float) -> str:
    """The findings as JSON (stable keys, grouped order), for scripts and CI."""
    ordered = [f for g in group_order(findings, outputs) for f in _sorted([x for x in findings if x.domain == g])]
    return json.dumps(
        {
            "exit_code": code,
            "hostname": outputs.hostname,
            "elapsed_seconds": round(elapsed, 3),
            "summary": summary(findings),
            "findings": [f.as_dict() for f in ordered],
        },
        indent=2,
    )
