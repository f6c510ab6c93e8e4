"""MTA-STS (RFC 8461): the policy fetched over HTTPS, checked against the MX set and the TXT id."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailstack.verify.findings import Finding, Status
from mailstack.verify.outputs import ExpectedRecord, StackOutputs
from mailstack.verify.probes import tls_context
from mailstack.verify.values import parse_tags
from mailstack.verify.web import HttpReply, fetch

if TYPE_CHECKING:
    from mailstack.verify.groups import Checks

CHECK = "mta-sts"
POLICY_PATH = "/.well-known/mta-sts.txt"
_MX_PATTERN = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


@dataclass(frozen=True)
class Policy:
    version: str
    mode: str
    mx: tuple[str, ...]
    max_age: int | None


def parse_policy(text: str) -> tuple[Policy | None, list[str]]:
    """The policy's fields (RFC 8461 §3.2), and every problem a sender would refuse it for."""
    fields: dict[str, list[str]] = {}
    for line in re.split(r"\r?\n", text):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            return None, [f"line `{line.strip()}` is not `key: value`"]
        fields.setdefault(key.strip(), []).append(value.strip())
    problems = []
    version = fields.get("version", [""])[0]
    if version != "STSv1":
        problems.append(f"version is `{version}`, not STSv1")
    mode = fields.get("mode", [""])[0]
    if mode not in ("enforce", "testing", "none"):
        problems.append(f"mode is `{mode}`, not enforce, testing or none")
    age_text = fields.get("max_age", [""])[0]
    max_age = int(age_text) if age_text.isdigit() and len(age_text) <= 10 else None
    if max_age is None or max_age > 31557600:
        problems.append(f"max_age `{age_text}` is not 0..31557600 seconds")
    mx = tuple(m.lower().rstrip(".") for m in fields.get("mx", []))
    problems += [f"mx `{m}` is not a host name or *.domain pattern" for m in mx if not _MX_PATTERN.match(m)]
    if mode in ("enforce", "testing") and not mx:
        problems.append(f"mode {mode} without any mx line: no MX host would be valid")
    return Policy(version, mode, mx, max_age), problems


def mx_matches(host: str, pattern: str) -> bool:
    """RFC 8461 §4.1: a `*.` pattern matches exactly one leftmost label."""
    if pattern.startswith("*."):
        return host.partition(".")[2] == pattern[2:] and "." in host
    return host == pattern


def policy_id(text: bytes) -> str:
    """mailstack's id for a policy text (config/mta_sts.py): the id changes exactly when the text does."""
    return hashlib.sha256(text).hexdigest()[:32]


def judge(domain: str, reply: HttpReply, mx_hosts: Sequence[str], expected: ExpectedRecord | None) -> list[Finding]:
    """The verdict on one fetched policy: served correctly, well-formed, covering every MX, matching the id."""
    url = f"https://mta-sts.{domain}{POLICY_PATH}"
    subject = f"MTA-STS policy {url}"
    if reply.error:
        return [
            Finding(
                domain,
                CHECK,
                subject,
                Status.FAIL,
                f"not fetched: {reply.error}",
                f"serve the policy at {url} with a certificate valid for mta-sts.{domain}",
            )
        ]
    if reply.status != 200:
        detail = f"HTTP {reply.status}" + (f" redirecting to {reply.location}" if reply.location else "")
        fix = "senders follow no redirects (RFC 8461 §3.3): serve the file itself" if reply.location else None
        return [Finding(domain, CHECK, subject, Status.FAIL, detail, fix or f"serve the policy at {url}")]
    if reply.content_type != "text/plain":
        return [
            Finding(
                domain,
                CHECK,
                subject,
                Status.FAIL,
                f"served as `{reply.content_type or 'no type'}`; senders refuse anything but text/plain (RFC 8461 §3.3)",
                "serve it with Content-Type: text/plain",
            )
        ]
    policy, problems = parse_policy(reply.body.decode("utf-8", errors="replace"))
    if policy is None or problems:
        return [Finding(domain, CHECK, subject, Status.FAIL, "; ".join(problems), "serve the stack's policy file")]
    findings = []
    uncovered = [h for h in mx_hosts if not any(mx_matches(h, p) for p in policy.mx)]
    if uncovered and policy.mode != "none":
        effect = "would refuse to deliver to" if policy.mode == "enforce" else "report failures for"
        findings.append(
            Finding(
                domain,
                CHECK,
                subject,
                Status.FAIL,
                f"lists mx {', '.join(policy.mx)}, not {', '.join(uncovered)}: senders {effect} those MX hosts",
                "serve the stack's current policy (`pulumi up`, or copy the file `render` writes)",
            )
        )
    if expected is not None:
        wanted = parse_tags(expected.content).get("id", "")
        served = policy_id(reply.body)
        if served != wanted:
            findings.append(
                Finding(
                    domain,
                    CHECK,
                    subject,
                    Status.DIFFERENT,
                    f"the served policy is not the one `_mta-sts.{domain}` announces (id {wanted}, served text has {served})",
                    "serve the stack's current policy: senders caching the old one never refetch it",
                )
            )
    if not findings:
        findings.append(
            Finding(
                domain,
                CHECK,
                subject,
                Status.OK,
                f"mode {policy.mode}, mx {', '.join(policy.mx)}, max_age {policy.max_age}",
            )
        )
    return findings


def domains_with_policy(outputs: StackOutputs) -> list[tuple[str, ExpectedRecord]]:
    """(domain, its `_mta-sts` TXT) for every domain the stack gives a policy."""
    return [
        (r.name.removeprefix("_mta-sts."), r)
        for r in outputs.records
        if r.type == "TXT" and r.name.startswith("_mta-sts.")
    ]


def mx_hosts(outputs: StackOutputs, domain: str) -> list[str]:
    """The MX hosts the stack publishes for `domain` (what the policy must cover)."""
    return [r.content.lower().rstrip(".") for r in outputs.records if r.type == "MX" and r.name == domain]


async def check(checks: Checks, domain: str, expected: ExpectedRecord) -> list[Finding]:
    reply = await fetch(
        f"https://mta-sts.{domain}{POLICY_PATH}",
        context=tls_context(checks.options.cafile),
        endpoint=checks.options.web_address,
        timeout=checks.options.timeout,
    )
    return judge(domain, reply, mx_hosts(checks.outputs, domain), expected)
