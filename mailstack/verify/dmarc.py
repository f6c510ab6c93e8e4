"""DMARC (RFC 9989): record parsing, the tree walk and report authorization."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailstack.verify.values import parse_tags

_DMARC_POLICIES = frozenset({"none", "quarantine", "reject"})


@dataclass(frozen=True)
class DmarcRecord:
    tags: dict[str, str]
    rua: tuple[str, ...]
    ruf: tuple[str, ...]


def parse_dmarc(text: str) -> tuple[DmarcRecord | None, list[str]]:
    """Parse a DMARC record (RFC 7489 §6.3); returns the record (None if unusable) and every problem."""
    problems: list[str] = []
    try:
        tags = parse_tags(text)
    except ValueError as e:
        return None, [str(e)]
    if text.split(";", 1)[0].replace(" ", "") != "v=DMARC1":
        return None, ["must start with v=DMARC1"]
    policy = tags.get("p")
    if policy is None:
        problems.append("p= is required")
    elif policy.lower() not in _DMARC_POLICIES:
        problems.append(f"p={policy} is not none, quarantine or reject")
    for tag in ("sp", "np"):
        if tag in tags and tags[tag].lower() not in _DMARC_POLICIES:
            problems.append(f"{tag}={tags[tag]} is not none, quarantine or reject")
    # RFC 9989 §4.7: t (test mode) is y or n; psd is y, n or u.
    if "t" in tags and tags["t"].lower() not in ("y", "n"):
        problems.append(f"t={tags['t']} is not y or n")
    if "psd" in tags and tags["psd"].lower() not in ("y", "n", "u"):
        problems.append(f"psd={tags['psd']} is not y, n or u")
    for tag in ("adkim", "aspf"):
        if tag in tags and tags[tag].lower() not in ("r", "s"):
            problems.append(f"{tag}={tags[tag]} is not r or s")
    if "pct" in tags and not (tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100):
        problems.append(f"pct={tags['pct']} is not 0-100")
    if "ri" in tags and not tags["ri"].isdigit():
        problems.append(f"ri={tags['ri']} is not a number of seconds")
    if "fo" in tags and not all(o.strip() in ("0", "1", "d", "s") for o in tags["fo"].split(":")):
        problems.append(f"fo={tags['fo']} is not a colon list of 0, 1, d, s")
    uris: dict[str, tuple[str, ...]] = {}
    for tag in ("rua", "ruf"):
        addresses: list[str] = []
        for uri in (u.strip() for u in tags.get(tag, "").split(",") if u.strip()):
            match = re.fullmatch(r"mailto:([^@!\s]+@[^!\s]+)(?:![0-9]+[kmgt]?)?", uri, flags=re.IGNORECASE)
            if not match:
                problems.append(f"{tag}: `{uri}` is not a mailto: URI")
                continue
            addresses.append(match.group(1))
        uris[tag] = tuple(addresses)
    return DmarcRecord(tags, uris["rua"], uris["ruf"]), problems


def report_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].rstrip(".").lower()


TREE_WALK_LABELS = 8
"""RFC 9989 §4.10: a DNS Tree Walk makes at most eight queries."""


def tree_walk_targets(name: str) -> list[str]:
    """The names whose `_dmarc` record a DNS Tree Walk from `name` queries, in order (RFC 9989 §4.10).

    First `name` itself; then, for a name of 8 or more labels, the shortcut straight to its 7
    rightmost labels; then one label less each step, down to the top-level domain.
    """
    labels = name.lower().rstrip(".").split(".")
    targets = [".".join(labels)]
    rest = labels[1:] if len(labels) < TREE_WALK_LABELS else labels[-(TREE_WALK_LABELS - 1) :]
    while rest:
        targets.append(".".join(rest))
        rest = rest[1:]
    return targets


def organizational_domain(start: str, found: Sequence[tuple[str, str | None]]) -> str:
    """RFC 9989 §4.10.2: the Organizational Domain from a Tree Walk's valid DMARC records.

    Args:
        start: where the walk started.
        found: (name, psd tag value or None) of each name with exactly one valid DMARC record, in
            walk order (longest name first); the walk stops after the first psd=n or psd=y.
    """
    start = start.lower().rstrip(".")
    for name, psd in found:
        if psd == "n":
            return name
        if psd == "y" and name != start:
            # The domain one label below the public suffix domain, on the way to `start`.
            below = start[: -len(name) - 1].rsplit(".", 1)[-1]
            return f"{below}.{name}"
    if not found:
        return start
    return min((name for name, _ in found), key=lambda n: n.count("."))


def report_authorization_name(domain: str, destination: str) -> str:
    """RFC 9990 §4: the destination publishes `<domain>._report._dmarc.<destination>`."""
    return f"{domain}._report._dmarc.{destination}"
