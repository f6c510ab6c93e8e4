"""The verdict on each expected record, from every server's answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailstack.verify.findings import Finding, Status
from mailstack.verify.outputs import ExpectedRecord
from mailstack.verify.values import Value, related


@dataclass(frozen=True)
class ServerAnswer:
    """What one server said for one name and type: values, or an error."""

    server: str
    values: tuple[Value, ...] = ()
    error: str | None = None


def _state(expected: ExpectedRecord, answer: ServerAnswer, expected_keys: set[str]) -> tuple[str, tuple[str, ...]]:
    if any(v.key == expected.key for v in answer.values):
        return "ok", ()
    counterpart = tuple(v.text for v in answer.values if related(expected, v) and v.key not in expected_keys)
    return ("different" if counterpart else "missing"), counterpart


def judge_record(
    expected: ExpectedRecord,
    siblings: Sequence[ExpectedRecord],
    authoritative: Sequence[ServerAnswer],
    resolver: ServerAnswer | None,
    group: str,
) -> Finding:
    """Verdict for one expected record from the answers of the zone's nameservers and a resolver.

    Args:
        expected: the record.
        siblings: every expected record with the same name and type (including `expected`).
        authoritative: one answer per authoritative nameserver (queried directly, no recursion).
        resolver: the recursive resolver's answer (None when not asked).
        group: report group for the finding.
    """
    subject = f"{expected.type} {expected.name}"
    keys = {s.key for s in siblings}
    answered = [a for a in authoritative if a.error is None]

    def verdict(status: Status, detail: str, fix: str = "", found: tuple[str, ...] = ()) -> Finding:
        return Finding(group, "records", subject, status, detail, fix, expected.display, found)

    if not answered:
        errors = "; ".join(f"{a.server}: {a.error}" for a in authoritative) or "no nameserver known"
        return verdict(Status.ERROR, f"no nameserver of {expected.zone} answered ({errors})")
    states = {a.server: _state(expected, a, keys) for a in answered}
    good = [s for s, (state, _) in states.items() if state == "ok"]
    bad = {s: st for s, st in states.items() if st[0] != "ok"}
    publish = f"publish {expected.zone_line()}"
    if good and bad:
        lagging = ", ".join(f"{s} ({st[0]}{': ' + ' | '.join(st[1]) if st[1] else ''})" for s, st in bad.items())
        return verdict(
            Status.PROPAGATING,
            f"served by {', '.join(good)}; not yet by {lagging}",
            "wait for the zone to reach every nameserver (check the secondary's zone transfer if this lasts)",
            tuple(dict.fromkeys(v for st in bad.values() for v in st[1])),
        )
    if bad:
        found = tuple(dict.fromkeys(v for st in bad.values() for v in st[1]))
        if found:
            return verdict(
                Status.DIFFERENT,
                f"nameservers publish {' | '.join(found)}",
                f"{publish} (replacing {' | '.join(found)})",
                found,
            )
        return verdict(Status.MISSING, "not published at any nameserver", publish)
    if resolver is not None and resolver.error is None:
        state, found = _state(expected, resolver, keys)
        if state != "ok":
            return verdict(
                Status.PROPAGATING,
                f"all nameservers serve it; resolver {resolver.server} still answers "
                + (" | ".join(found) if found else "without it")
                + f" (cached for up to the old record's TTL; this record's TTL is {expected.ttl} s)",
                "wait for resolver caches to expire",
                found,
            )
    note = f" (resolver {resolver.server} did not answer: {resolver.error})" if resolver and resolver.error else ""
    return verdict(Status.OK, f"at {len(answered)} nameserver(s){note}")


def unexpected_values(siblings: Sequence[ExpectedRecord], answer: ServerAnswer) -> tuple[Value, ...]:
    """Published values the stack does not have, for a name and type whose expected values are all present."""
    keys = {s.key for s in siblings}
    if any(s.key not in {v.key for v in answer.values} for s in siblings):
        return ()  # shown as `different` on the missing record instead
    return tuple(v for v in answer.values if v.key not in keys and any(related(s, v) for s in siblings))
