"""Rendering of `verify` findings: rich tables grouped by domain, or JSON."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailstack.verify_checks import EXIT_OK, EXIT_PROBLEMS, Finding, StackOutputs, Status

STYLES = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.PROPAGATING: "yellow",
    Status.MISSING: "bold red",
    Status.DIFFERENT: "bold red",
    Status.FAIL: "bold red",
    Status.ERROR: "magenta",
}
CHECK_ORDER = ("nameservers", "records", "mx", "spf", "dkim", "dmarc", "ptr", "ports", "tls", "blocklist")


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


def render_table(
    findings: Sequence[Finding],
    code: int,
    outputs: StackOutputs,
    elapsed: float,
    *,
    quiet: bool = False,
    console: Console | None = None,
) -> None:
    """Print one table per domain; each failing row carries the record or action that fixes it."""
    console = console or Console()
    by_group: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_group[finding.domain].append(finding)
    for group in group_order(findings, outputs):
        rows = [f for f in _sorted(by_group[group]) if not quiet or f.status != Status.OK]
        if not rows:
            continue
        table = Table(title=group, title_justify="left", show_lines=False, expand=True)
        table.add_column("check", no_wrap=True)
        table.add_column("what", overflow="fold")
        table.add_column("status", no_wrap=True)
        table.add_column("details", overflow="fold", ratio=2)
        table.add_column("fix", overflow="fold", ratio=2)
        for f in rows:
            table.add_row(f.check, f.subject, Text(f.status.value, style=STYLES[f.status]), f.detail, f.fix)
        console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in summary(findings).items() if n)
    console.print(f"{counts or 'nothing checked'} in {elapsed:.2f} s: {verdict_line(code)} (exit {code})")


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
