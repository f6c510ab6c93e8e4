"""SPF (RFC 7208): parsing, the include walk, the lookup budget and check_host."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from mailstack.verify.values import txt_kind

# RFC 7208 §4.6.4: at most 10 mechanisms/modifiers that cause DNS queries per evaluation
# (include, a, mx, ptr, exists, redirect), and at most 2 "void" lookups (NXDOMAIN or no answer);
# going over either is a permerror, and receivers then treat the message as having no valid SPF.
SPF_LOOKUP_LIMIT = 10
SPF_VOID_LIMIT = 2
# RFC 7208 §4.6.4: an `mx` mechanism may look up addresses for at most 10 MX hosts.
SPF_MX_LIMIT = 10
SPF_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class SpfError(ValueError):
    """An SPF record that does not parse (RFC 7208 §4.6 permerror)."""


@dataclass(frozen=True)
class SpfTerm:
    """One mechanism (`qualifier` set) or modifier (`modifier` True) of an SPF record."""

    name: str
    value: str = ""
    qualifier: str = "+"
    modifier: bool = False

    @property
    def target(self) -> str:
        """Domain part of a/mx/include/exists/redirect (without the CIDR suffix)."""
        return self.value.split("/", 1)[0] if self.name in ("a", "mx") else self.value

    @property
    def cidr(self) -> tuple[int | None, int | None]:
        """(ip4-cidr-length, ip6-cidr-length) of a/mx (RFC 7208 §5.6 dual-cidr-length)."""
        match = re.fullmatch(r"[^/]*(?:/(\d+))?(?://(\d+))?", self.value) if self.name in ("a", "mx") else None
        if match is None:
            return None, None
        v4, v6 = match.groups()
        return (int(v4) if v4 else None), (int(v6) if v6 else None)

    @property
    def has_macro(self) -> bool:
        return "%" in self.value


def parse_spf(text: str) -> list[SpfTerm]:
    """Terms of an SPF record.

    Raises:
        SpfError: not `v=spf1`, an unknown mechanism, a bad address, or a repeated modifier.
    """
    parts = text.split()
    if not parts or parts[0].lower() != "v=spf1":
        raise SpfError("does not start with v=spf1")
    terms: list[SpfTerm] = []
    seen_modifiers: set[str] = set()
    for raw in parts[1:]:
        modifier = re.fullmatch(r"([a-zA-Z][a-zA-Z0-9_.-]*)=(.*)", raw)
        if modifier:
            name = modifier.group(1).lower()
            # RFC 7208 §6: redirect and exp may each appear at most once.
            if name in ("redirect", "exp") and name in seen_modifiers:
                raise SpfError(f"modifier {name}= appears twice")
            seen_modifiers.add(name)
            terms.append(SpfTerm(name, modifier.group(2), modifier=True))
            continue
        qualifier = raw[0] if raw[0] in _QUALIFIERS else "+"
        body = raw[1:] if raw[0] in _QUALIFIERS else raw
        match = re.fullmatch(r"([a-zA-Z0-9]+)(?:[:/](.*))?", body)
        if not match or match.group(1).lower() not in _MECHANISMS:
            raise SpfError(f"unknown mechanism `{raw}`")
        name = match.group(1).lower()
        value = body[len(match.group(1)) :]
        value = value[1:] if value.startswith(":") else value
        if name in ("include", "exists") and not value:
            raise SpfError(f"`{raw}` needs a domain")
        if name in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError as e:
                raise SpfError(f"`{raw}` is not a valid {name} network") from e
            if network.version != int(name[-1]):
                raise SpfError(f"`{raw}` has an IPv{network.version} address")
        if name in ("a", "mx") and value and not re.fullmatch(r"[^/]*(/\d{1,2})?(//\d{1,3})?", value):
            raise SpfError(f"`{raw}` has a bad CIDR length")
        if name == "all" and value:
            raise SpfError(f"`{raw}`: all takes no argument")
        terms.append(SpfTerm(name, value, qualifier))
    return terms


@dataclass(frozen=True)
class Answer:
    """A lookup result as the SPF walk needs it: values, or NXDOMAIN/no-data (void), or an error."""

    values: tuple[str, ...] = ()
    nxdomain: bool = False
    error: str | None = None

    @property
    def void(self) -> bool:
        return self.error is None and not self.values


Lookup = Callable[[str, str], Awaitable[Answer]]
"""(name, rdtype) → Answer; MX values are `"<preference> <exchange>"`, TXT values the joined text."""


@dataclass
class SpfNode:
    """An SPF record and everything its evaluation looks up (filled by `walk_spf`)."""

    domain: str
    records: tuple[str, ...] = ()
    """Every v=spf1 text at the domain (more than one is a permerror)."""
    error: str | None = None
    """Lookup failure, or why the record does not parse."""
    terms: list[SpfTerm] = field(default_factory=list)
    children: dict[int, SpfNode] = field(default_factory=dict)
    """Term index → node for include and redirect."""
    addresses: dict[int, Answer] = field(default_factory=dict)
    """Term index → A+AAAA answer of a / exists targets."""
    mx: dict[int, tuple[Answer, dict[str, Answer]]] = field(default_factory=dict)
    """Term index → (MX answer, exchange → its A+AAAA answer)."""
    truncated: bool = False
    """Not expanded further: include loop or depth beyond the lookup limit."""

    @property
    def record(self) -> str | None:
        return self.records[0] if len(self.records) == 1 else None


async def lookup_addresses(lookup: Lookup, name: str) -> Answer:
    """A and AAAA of `name` as one answer.

    The error of either lookup is kept even when the other found addresses: a failed half means
    "unknown", so an empty result is not a void lookup (RFC 7208 §4.6.4) and not "no address".
    """
    a, aaaa = await asyncio.gather(lookup(name, "A"), lookup(name, "AAAA"))
    return Answer(a.values + aaaa.values, nxdomain=a.nxdomain and aaaa.nxdomain, error=a.error or aaaa.error)


async def walk_spf(domain: str, lookup: Lookup, _path: tuple[str, ...] = ()) -> SpfNode:
    """Fetch the SPF record of `domain` and, concurrently, everything its evaluation would look up."""
    node = SpfNode(domain)
    # A loop or a chain deeper than the lookup limit is a permerror anyway; stop expanding there.
    if domain.lower() in _path or len(_path) > SPF_LOOKUP_LIMIT:
        node.truncated = True
        return node
    answer = await lookup(domain, "TXT")
    if answer.error:
        node.error = answer.error
        return node
    node.records = tuple(t for t in answer.values if txt_kind(t) == "spf")
    if node.record is None:
        return node
    try:
        node.terms = parse_spf(node.record)
    except SpfError as e:
        node.error = str(e)
        return node
    path = (*_path, domain.lower())
    jobs: list[Awaitable[None]] = []

    async def child(i: int, target: str) -> None:
        node.children[i] = await walk_spf(target, lookup, path)

    async def addresses(i: int, target: str) -> None:
        node.addresses[i] = await lookup_addresses(lookup, target)

    async def mx(i: int, target: str) -> None:
        answer = await lookup(target, "MX")
        hosts = [v.split()[-1] for v in answer.values][:SPF_MX_LIMIT]
        found = await asyncio.gather(*(lookup_addresses(lookup, h) for h in hosts))
        node.mx[i] = (answer, dict(zip(hosts, found, strict=True)))

    for i, term in enumerate(node.terms):
        if term.has_macro or term.name not in {*SPF_LOOKUP_TERMS, "redirect"}:
            continue
        target = term.target or domain
        if term.name in ("include", "redirect"):
            jobs.append(child(i, target))
        elif term.name in ("a", "exists"):
            jobs.append(addresses(i, target))
        elif term.name == "mx":
            jobs.append(mx(i, target))
    await asyncio.gather(*jobs)
    return node


@dataclass(frozen=True)
class SpfBudget:
    lookups: int
    voids: int
    problems: tuple[str, ...]


def _redirect_applies(terms: Sequence[SpfTerm]) -> bool:
    # RFC 7208 §6.1: redirect is ignored when the record has an `all` mechanism.
    return not any(t.name == "all" and not t.modifier for t in terms)


def spf_budget(node: SpfNode) -> SpfBudget:
    """DNS-querying terms and void lookups of a full evaluation (RFC 7208 §4.6.4), plus structural problems."""
    lookups = 0
    voids = 0
    problems: list[str] = []

    def visit(n: SpfNode, via: str) -> None:
        nonlocal lookups, voids
        if n.truncated:
            problems.append(f"{via}{n.domain}: include loop or chain too deep")
            return
        if n.error:
            problems.append(f"{via}{n.domain}: {n.error}")
            return
        if not n.records:
            # RFC 7208 §5.2: include/redirect of a domain without SPF is a permerror.
            problems.append(f"{via}{n.domain}: no SPF record")
            return
        if len(n.records) > 1:
            problems.append(f"{via}{n.domain}: {len(n.records)} SPF records (RFC 7208 §3.2 allows one)")
            return
        for i, term in enumerate(n.terms):
            if term.modifier and (term.name != "redirect" or not _redirect_applies(n.terms)):
                continue
            if term.name not in SPF_LOOKUP_TERMS and term.name != "redirect":
                continue
            lookups += 1
            if term.name == "ptr":
                problems.append(f"{via}{n.domain}: `ptr` is deprecated (RFC 7208 §5.5) and slow for receivers")
            if i in n.children:
                child = n.children[i]
                if child.error is None and not child.records and not child.truncated:
                    voids += 1
                visit(child, f"{via}{n.domain} → ")
            elif i in n.addresses:
                voids += n.addresses[i].void
            elif i in n.mx:
                answer, _ = n.mx[i]
                voids += answer.void
                if len(answer.values) > SPF_MX_LIMIT:
                    problems.append(f"{via}{n.domain}: mx has {len(answer.values)} hosts (limit {SPF_MX_LIMIT})")

    visit(node, "")
    return SpfBudget(lookups, voids, tuple(problems))


def _ip_in(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, address: str, cidr: tuple[int | None, int | None]
) -> bool:
    try:
        candidate = ipaddress.ip_address(address)
    except ValueError:
        return False
    if candidate.version != ip.version:
        return False
    length = cidr[0] if ip.version == 4 else cidr[1]
    if length is None:
        return candidate == ip
    return ip in ipaddress.ip_network(f"{candidate}/{length}", strict=False)


def spf_result(node: SpfNode, ip: str) -> str:
    """check_host() result (RFC 7208 §4) for a client IP, on the walked data.

    Returns one of pass, fail, softfail, neutral, none, permerror, temperror. Terms with macros
    and `ptr` are not evaluated (they never match here), which can only make the result stricter.
    """
    address = ipaddress.ip_address(ip)
    if node.truncated:
        return "permerror"
    if node.error:
        return "temperror" if not node.records else "permerror"
    if not node.records:
        return "none"
    if len(node.records) > 1:
        return "permerror"
    for i, term in enumerate(node.terms):
        if term.modifier:
            continue
        matched = False
        if term.name == "all":
            matched = True
        elif term.name in ("ip4", "ip6"):
            matched = address in ipaddress.ip_network(term.value, strict=False)
        elif term.name == "a" and i in node.addresses:
            matched = any(_ip_in(address, a, term.cidr) for a in node.addresses[i].values)
        elif term.name == "mx" and i in node.mx:
            _, hosts = node.mx[i]
            matched = any(_ip_in(address, a, term.cidr) for answer in hosts.values() for a in answer.values)
        elif term.name == "exists" and i in node.addresses:
            matched = any(":" not in a for a in node.addresses[i].values)
        elif term.name == "include" and i in node.children:
            inner = spf_result(node.children[i], ip)
            # RFC 7208 §5.2: an included none is a permerror; temperror/permerror propagate.
            if inner in ("none", "permerror"):
                return "permerror"
            if inner == "temperror":
                return "temperror"
            matched = inner == "pass"
        if matched:
            return _QUALIFIERS[term.qualifier]
    if _redirect_applies(node.terms):
        for i, term in enumerate(node.terms):
            if term.modifier and term.name == "redirect" and i in node.children:
                inner = spf_result(node.children[i], ip)
                return "permerror" if inner == "none" else inner
    return "neutral"
