"""`python -m mailstack.verify`: check the live world against what the stack says should exist.

Reads the stack's outputs (`pulumi stack output --json`, or `--outputs FILE`), then checks
concurrently: every expected record at each authoritative nameserver and at a recursive
resolver, SPF/DKIM/DMARC rules, MX and host addresses, PTR, ports 25/465/993 with TLS, and
optionally Spamhaus. Exit code: 0 all good, 1 something wrong, 2 could not check.
See docs/verify.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename
from cryptography import x509

from mailstack.verify_checks import (
    EXIT_UNCHECKED,
    GROUPS,
    Answer,
    ExpectedRecord,
    Finding,
    OutputsError,
    ServerAnswer,
    StackOutputs,
    Status,
    Value,
    blocklist_meaning,
    dbl_name,
    dkim_key,
    exit_code,
    is_cloudflare,
    judge_record,
    needs_report_authorization,
    parse_dmarc,
    parse_outputs,
    report_authorization_name,
    report_domain,
    short_key,
    spf_budget,
    spf_result,
    txt_kind,
    unexpected_values,
    walk_spf,
    zen_name,
)
from mailstack.verify_report import render_json, render_table

MAIL_PORTS = {25: "SMTP with STARTTLS", 465: "SMTP submission over implicit TLS", 993: "IMAP over implicit TLS"}
DEFAULT_TIMEOUT = 3.0
DEFAULT_EXPIRY_DAYS = 14
# Enough parallel queries to check ~100 domains in well under a second against one server,
# few enough that a small authoritative server or a home router does not start dropping them.
DEFAULT_CONCURRENCY = 64
EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size: avoids fragmentation, fits a 2048-bit DKIM key
EHLO_NAME = "mailstack-verify"
RECEIVE_BUFFER = 4 * 1024 * 1024


# -- addresses -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Endpoint:
    """A DNS server address and port."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 53 else f"{host}:{self.port}"


def parse_endpoint(text: str, default_port: int = 53) -> Endpoint:
    """`IP`, `IP:port`, `[IPv6]:port` or a bare IPv6 address.

    Raises:
        ValueError: not one of those forms.
    """
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad address {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return Endpoint(host, port)


# -- DNS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One DNS response reduced to what the checks need."""

    rcode: str = "NOERROR"
    values: tuple[Value, ...] = ()
    authoritative: bool = False
    error: str | None = None


class _UdpChannel(asyncio.DatagramProtocol):
    """One connected UDP socket to one server, shared by every query to it, matched by message ID.

    A socket per query (dns.asyncquery.udp) costs more than the query itself on loopback; one
    socket per server keeps 100 domains well under a second. Message IDs are random and each
    response is also checked against its question (Message.is_response) before it is used.
    """

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, asyncio.Future[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport in 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Many answers can arrive between two reads of the event loop; the default buffer
            # (~200 KB, ~100 datagrams on loopback) would drop some and turn them into timeouts.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        future = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if future is not None and not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port/host unreachable arrives on the connected socket, not on a query: it means
        # the server is not there, so every query waiting on this socket fails now.
        for future in self.pending.values():
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.error_received(exc or ConnectionError("socket closed"))

    def new_id(self) -> int:
        while True:
            qid = secrets.randbelow(65536)
            if qid not in self.pending:
                return qid


def _query_wire(qid: int, qname: dns.name.Name, rdtype: int, recurse: bool) -> bytes:
    """A standard query with EDNS (RFC 1035 §4.1, RFC 6891 §6.1.2), built directly.

    Profiling showed Message construction and rendering at a quarter of the CPU per query; the
    wire form of a one-question query is fixed, so only the name goes through dnspython.
    """
    header = struct.pack("!HHHHHH", qid, 0x0100 if recurse else 0, 1, 0, 0, 1)  # RD bit; 1 question, 1 OPT
    opt = b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, EDNS_PAYLOAD, 0, 0)  # root owner, payload, no flags
    name = qname.to_wire()
    assert name is not None  # to_wire() without a file returns the bytes
    return header + name + struct.pack("!HH", rdtype, dns.rdataclass.IN) + opt


def _expire(future: asyncio.Future[bytes]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class DnsClient:
    """Concurrent DNS queries with bounded time, and one shared answer per identical question."""

    def __init__(self, timeout: float, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.timeout = timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._inflight: dict[tuple[Endpoint, str, str, bool], asyncio.Task[Reply]] = {}
        self._channels: dict[Endpoint, asyncio.Task[_UdpChannel]] = {}

    async def query(self, server: Endpoint, name: str, rdtype: str, recurse: bool) -> Reply:
        key = (server, name.lower().rstrip("."), rdtype, recurse)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query(server, key[1], rdtype, recurse))
            self._inflight[key] = task
        return await task

    @property
    def questions(self) -> int:
        """Distinct questions asked so far (each is sent once and shared)."""
        return len(self._inflight)

    async def close(self) -> None:
        for task in self._channels.values():
            if task.done() and not task.exception() and (transport := task.result().transport) is not None:
                transport.close()
        self._channels.clear()

    async def _channel(self, server: Endpoint) -> _UdpChannel:
        if server not in self._channels:

            async def connect() -> _UdpChannel:
                loop = asyncio.get_running_loop()
                _, protocol = await loop.create_datagram_endpoint(_UdpChannel, remote_addr=(server.host, server.port))
                return protocol

            self._channels[server] = asyncio.ensure_future(connect())
        return await self._channels[server]

    async def _udp(self, server: Endpoint, qname: dns.name.Name, rdtype: int, recurse: bool) -> dns.message.Message:
        channel = await self._channel(server)
        qid = channel.new_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        channel.pending[qid] = future
        # A timer per query is far cheaper than asyncio.wait_for's wrapper task.
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, future)
        try:
            assert channel.transport is not None
            channel.transport.sendto(_query_wire(qid, qname, rdtype, recurse))
            data = await future
        finally:
            timer.cancel()
            channel.pending.pop(qid, None)
        response = dns.message.from_wire(data)
        question = response.question[0] if len(response.question) == 1 else None
        if not response.flags & dns.flags.QR or question is None or question.name != qname or question.rdtype != rdtype:
            raise dns.exception.FormError("the response does not answer the question")  # type: ignore[no-untyped-call]
        return response

    async def _query(self, server: Endpoint, name: str, rdtype: str, recurse: bool) -> Reply:
        qname = dns.name.from_text(name)
        qtype = dns.rdatatype.from_text(rdtype)
        error = "no answer"
        # Two tries: one lost UDP datagram should not turn into "missing".
        for _ in range(2):
            try:
                async with self._limit:
                    response = await self._udp(server, qname, qtype, recurse)
                    if response.flags & dns.flags.TC:
                        query = dns.message.make_query(qname, qtype, use_edns=0, payload=EDNS_PAYLOAD)
                        if not recurse:
                            query.flags &= ~dns.flags.RD
                        response = await dns.asyncquery.tcp(query, server.host, timeout=self.timeout, port=server.port)
            except (TimeoutError, dns.exception.Timeout):
                error = f"timeout after {self.timeout:g} s"
                continue
            except OSError as e:
                error = e.strerror or str(e)
                break  # refused/unreachable: retrying does not help
            except dns.exception.DNSException as e:
                error = f"bad response: {e}"
                break
            return Reply(
                rcode=dns.rcode.to_text(response.rcode()),
                values=_answer_values(response, name, rdtype),
                authoritative=bool(response.flags & dns.flags.AA),
            )
        return Reply(error=error)


def _answer_values(response: dns.message.Message, name: str, rdtype: str) -> tuple[Value, ...]:
    """Values of `rdtype` at `name`, following a CNAME chain inside the answer section."""
    current = dns.name.from_text(name)
    wanted = dns.rdatatype.from_text(rdtype)
    for _ in range(8):
        for rrset in response.answer:
            if rrset.name == current and rrset.rdtype == wanted:
                return tuple(Value.of(rdtype, rd) for rd in rrset)
        cname = next(
            (r for r in response.answer if r.name == current and r.rdtype == dns.rdatatype.CNAME),
            None,
        )
        if cname is None or wanted == dns.rdatatype.CNAME:
            return ()
        current = next(iter(cname)).target
    return ()


def _server_answer(label: str, reply: Reply, direct: bool) -> ServerAnswer:
    if reply.error:
        return ServerAnswer(label, error=reply.error)
    if reply.rcode not in ("NOERROR", "NXDOMAIN"):
        return ServerAnswer(label, error=f"answered {reply.rcode}")
    if direct and not reply.authoritative:
        # A nameserver in the NS set that is not authoritative is a lame delegation.
        return ServerAnswer(label, error="not authoritative for the zone (lame delegation)")
    return ServerAnswer(label, reply.values)


# -- options -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    resolver: Endpoint
    nameservers: tuple[Endpoint, ...] = ()
    """Overrides NS discovery for every zone (tests, split-horizon)."""
    ns_port: int = 53
    """Port used for nameservers found by NS discovery."""
    timeout: float = DEFAULT_TIMEOUT
    skip: frozenset[str] = frozenset()
    blocklist: bool = False
    port_map: dict[int, int] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()
    """Addresses to connect to for the port checks instead of the public IPs."""
    cafile: str | None = None
    expiry_days: int = DEFAULT_EXPIRY_DAYS
    concurrency: int = DEFAULT_CONCURRENCY

    def runs(self, group: str) -> bool:
        if group == "blocklist" and not self.blocklist:
            return False
        return group not in self.skip


@dataclass(frozen=True)
class Nameserver:
    label: str
    endpoint: Endpoint


# -- the checks ----------------------------------------------------------------------------------


class Verifier:
    """Runs every check group for one stack's outputs."""

    def __init__(self, outputs: StackOutputs, options: Options) -> None:
        self.outputs = outputs
        self.options = options
        self.dns = DnsClient(options.timeout, options.concurrency)
        self._zone_ns: dict[str, asyncio.Task[tuple[list[Nameserver], str | None]]] = {}

    # shared lookups --------------------------------------------------------------------------------

    async def resolve(self, name: str, rdtype: str) -> Reply:
        return await self.dns.query(self.options.resolver, name, rdtype, recurse=True)

    async def lookup(self, name: str, rdtype: str) -> Answer:
        """Resolver lookup in the shape the SPF walk takes."""
        reply = await self.resolve(name, rdtype)
        if reply.error:
            return Answer(error=reply.error)
        if reply.rcode not in ("NOERROR", "NXDOMAIN"):
            return Answer(error=f"resolver answered {reply.rcode}")
        return Answer(tuple(v.text for v in reply.values), nxdomain=reply.rcode == "NXDOMAIN")

    async def addresses(self, name: str) -> Answer:
        a, aaaa = await asyncio.gather(self.lookup(name, "A"), self.lookup(name, "AAAA"))
        return Answer(
            a.values + aaaa.values, nxdomain=a.nxdomain and aaaa.nxdomain, error=a.error if a.error else aaaa.error
        )

    def group_of(self, name: str) -> str:
        """Report group of a DNS name: the hostname, else the mail domain it belongs to, else itself."""
        if name == self.outputs.hostname:
            return name
        labels = name.split(".")
        # The longest mail domain that is the name or one of its parents.
        domains = set(self.outputs.mail_domains)
        return next((".".join(labels[i:]) for i in range(len(labels)) if ".".join(labels[i:]) in domains), name)

    async def nameservers(self, zone: str) -> tuple[list[Nameserver], str | None]:
        if zone not in self._zone_ns:
            self._zone_ns[zone] = asyncio.ensure_future(self._discover(zone))
        return await self._zone_ns[zone]

    async def _discover(self, zone: str) -> tuple[list[Nameserver], str | None]:
        if self.options.nameservers:
            return [Nameserver(str(ep), ep) for ep in self.options.nameservers], None
        ns = await self.lookup(zone, "NS")
        if ns.error:
            return [], f"NS lookup of {zone} failed: {ns.error}"
        if not ns.values:
            return [], f"{zone} has no NS records at resolver {self.options.resolver}"
        found = await asyncio.gather(*(self.addresses(n) for n in ns.values))
        servers: list[Nameserver] = []
        for name, answer in zip(ns.values, found, strict=True):
            for ip in answer.values:
                endpoint = Endpoint(ip, self.options.ns_port)
                servers.append(Nameserver(f"{name} ({endpoint})", endpoint))
        if not servers:
            return [], f"none of the nameservers of {zone} ({', '.join(ns.values)}) has an address"
        return servers, None

    # records ---------------------------------------------------------------------------------------

    async def check_records(self) -> list[Finding]:
        rrsets: dict[tuple[str, str, str], list[ExpectedRecord]] = defaultdict(list)
        for record in self.outputs.records:
            rrsets[(record.zone, record.name, record.type)].append(record)
        zones = sorted({zone for zone, _, _ in rrsets})
        zone_findings, rrset_findings = await asyncio.gather(
            asyncio.gather(*(self._check_zone(z) for z in zones)),
            asyncio.gather(*(self._check_rrset(key, records) for key, records in rrsets.items())),
        )
        return [f for fs in (*zone_findings, *rrset_findings) for f in fs]

    async def _usable_nameservers(self, zone: str) -> list[Nameserver]:
        servers, _ = await self.nameservers(zone)
        replies = await asyncio.gather(*(self.dns.query(s.endpoint, zone, "SOA", False) for s in servers))
        # Without IPv6 connectivity here, the IPv6 addresses of a zone's nameservers cannot be
        # asked; that says nothing about the zone, so those servers are left out, not failed.
        return [s for s, r in zip(servers, replies, strict=True) if not _no_route(r, s)]

    async def _check_zone(self, zone: str) -> list[Finding]:
        group = self.group_of(zone)
        subject = f"NS {zone}"
        servers, error = await self.nameservers(zone)
        if error:
            return [Finding(group, "nameservers", subject, Status.ERROR, error)]
        replies = await asyncio.gather(*(self.dns.query(s.endpoint, zone, "SOA", False) for s in servers))
        ok: list[str] = []
        failing: list[str] = []
        serials: dict[str, str] = {}
        for server, reply in zip(servers, replies, strict=True):
            if _no_route(reply, server):
                continue
            answer = _server_answer(server.label, reply, direct=True)
            if answer.error or not answer.values:
                failing.append(f"{server.label}: {answer.error or 'no SOA'}")
                continue
            ok.append(server.label)
            serials[server.label] = answer.values[0].text.split()[2]
        if not ok:
            return [
                Finding(group, "nameservers", subject, Status.ERROR, "no nameserver answered: " + "; ".join(failing))
            ]
        detail = ", ".join(f"{label} serial {serials[label]}" for label in ok)
        if failing:
            return [
                Finding(
                    group,
                    "nameservers",
                    subject,
                    Status.FAIL,
                    f"answering: {detail}; failing: {'; '.join(failing)}",
                    "fix the failing nameserver or remove it from the zone's NS set at the registrar",
                )
            ]
        return [Finding(group, "nameservers", subject, Status.OK, detail)]

    async def _check_rrset(self, key: tuple[str, str, str], records: list[ExpectedRecord]) -> list[Finding]:
        zone, name, rtype = key
        servers = await self._usable_nameservers(zone)
        replies = await asyncio.gather(
            *(self.dns.query(s.endpoint, name, rtype, False) for s in servers), self.resolve(name, rtype)
        )
        authoritative = [_server_answer(s.label, r, direct=True) for s, r in zip(servers, replies[:-1], strict=True)]
        resolver = _server_answer(f"{self.options.resolver}", replies[-1], direct=False)
        group = self.group_of(name)
        findings = [judge_record(r, records, authoritative, resolver, group) for r in records]
        extras: dict[str, Value] = {}
        for answer in authoritative:
            if answer.error is None:
                extras.update({v.key: v for v in unexpected_values(records, answer)})
        for value in extras.values():
            findings.append(
                Finding(
                    group,
                    "records",
                    f"{rtype} {name}",
                    Status.DIFFERENT,
                    f"published but not in the stack: {value.text}",
                    f"delete {rtype} {value.text} at {name}",
                    found=(value.text,),
                )
            )
        return findings

    # SPF -------------------------------------------------------------------------------------------

    async def check_spf(self, domain: str) -> list[Finding]:
        subject = f"SPF {domain}"
        expected = self.outputs.txt(domain, "spf")
        publish = f"publish {expected[0].zone_line()}" if expected else ""
        node = await walk_spf(domain, self.lookup)
        if node.error and not node.records:
            return [Finding(domain, "spf", subject, Status.ERROR, f"TXT lookup failed: {node.error}")]
        if not node.records:
            return [Finding(domain, "spf", subject, Status.MISSING, "no v=spf1 TXT record", publish)]
        if len(node.records) > 1:
            return [
                Finding(
                    domain,
                    "spf",
                    subject,
                    Status.FAIL,
                    f"{len(node.records)} SPF records; RFC 7208 §3.2 makes that a permerror for every message",
                    f"delete all but one; keep exactly: {expected[0].zone_line()}"
                    if expected
                    else "merge them into one",
                    found=node.records,
                )
            ]
        budget = spf_budget(node)
        problems = list(budget.problems)
        # RFC 7208 §4.6.4: over 10 DNS-querying terms or 2 void lookups is a permerror.
        if budget.lookups > 10:
            problems.append(f"{budget.lookups} DNS-querying terms after includes and redirects (limit 10)")
        if budget.voids > 2:
            problems.append(f"{budget.voids} void lookups (limit 2)")
        detail = f"{budget.lookups}/10 DNS lookups, {budget.voids}/2 void"
        findings: list[Finding] = []
        if problems:
            findings.append(
                Finding(
                    domain,
                    "spf",
                    subject,
                    Status.FAIL,
                    f"{detail}: " + "; ".join(problems) + " (RFC 7208 §4.6.4: receivers return permerror)",
                    "remove includes you do not send through, or replace an include with its ip4:/ip6: ranges",
                    found=node.records,
                )
            )
        else:
            findings.append(Finding(domain, "spf", subject, Status.OK, detail, found=node.records))
        for ip in self.outputs.ips:
            result = spf_result(node, ip)
            fix = ""
            if result != "pass":
                add = "ip4" if ":" not in ip else "ip6"
                fix = publish or f"add {add}:{ip} (or mx) to the SPF record of {domain}"
            findings.append(
                Finding(
                    domain,
                    "spf",
                    f"SPF {domain} permits {ip}",
                    Status.OK if result == "pass" else Status.FAIL,
                    f"SPF result for the server's address is {result}",
                    fix,
                )
            )
        return findings

    # DKIM ------------------------------------------------------------------------------------------

    async def check_dkim(self, record: ExpectedRecord) -> list[Finding]:
        selector = record.name.split("._domainkey.", 1)[0]
        group = self.group_of(record.name)
        subject = f"DKIM {selector} ({record.name})"
        answer = await self.lookup(record.name, "TXT")
        if answer.error:
            return [Finding(group, "dkim", subject, Status.ERROR, f"TXT lookup failed: {answer.error}")]
        keys = [t for t in answer.values if txt_kind(t) == "dkim"]
        publish = f"publish {record.zone_line()}"
        try:
            want = dkim_key(record.content)
        except ValueError as e:
            return [Finding(group, "dkim", subject, Status.ERROR, f"the stack's own DKIM record is unusable: {e}")]
        if not keys:
            return [Finding(group, "dkim", subject, Status.MISSING, "no DKIM key record: signatures fail", publish)]
        if len(keys) > 1:
            return [
                Finding(
                    group,
                    "dkim",
                    subject,
                    Status.FAIL,
                    f"{len(keys)} key records at one selector",
                    publish,
                    found=tuple(keys),
                )
            ]
        try:
            got = dkim_key(keys[0])
        except ValueError as e:
            return [Finding(group, "dkim", subject, Status.FAIL, f"published record does not parse: {e}", publish)]
        if got == want:
            return [Finding(group, "dkim", subject, Status.OK, f"p= matches the stack's key ({short_key(want)})")]
        if not got:
            return [Finding(group, "dkim", subject, Status.FAIL, "published key is revoked (empty p=)", publish)]
        return [
            Finding(
                group,
                "dkim",
                subject,
                Status.DIFFERENT,
                f"published p={short_key(got)} but the server signs with p={short_key(want)}: signatures fail",
                publish,
                expected=short_key(want),
                found=(short_key(got),),
            )
        ]

    # DMARC -----------------------------------------------------------------------------------------

    async def check_dmarc(self, domain: str) -> list[Finding]:
        name = f"_dmarc.{domain}"
        subject = f"DMARC {domain}"
        expected = self.outputs.txt(name, "dmarc")
        publish = (
            f"publish {expected[0].zone_line()}" if expected else f'publish {name}. 3600 IN TXT "v=DMARC1; p=none"'
        )
        answer = await self.lookup(name, "TXT")
        if answer.error:
            return [Finding(domain, "dmarc", subject, Status.ERROR, f"TXT lookup failed: {answer.error}")]
        records = [t for t in answer.values if txt_kind(t) == "dmarc"]
        if not records:
            return [Finding(domain, "dmarc", subject, Status.MISSING, f"no v=DMARC1 record at {name}", publish)]
        if len(records) > 1:
            # RFC 7489 §6.6.3: more than one record means no DMARC policy at all.
            return [
                Finding(
                    domain,
                    "dmarc",
                    subject,
                    Status.FAIL,
                    f"{len(records)} DMARC records: receivers ignore them all",
                    publish,
                    found=tuple(records),
                )
            ]
        parsed, problems = parse_dmarc(records[0])
        if parsed is None or problems:
            return [Finding(domain, "dmarc", subject, Status.FAIL, "; ".join(problems), publish, found=tuple(records))]
        findings = [Finding(domain, "dmarc", subject, Status.OK, f"p={parsed.tags.get('p')}", found=tuple(records))]
        destinations = dict.fromkeys(report_domain(a) for a in (*parsed.rua, *parsed.ruf))
        external = [d for d in destinations if needs_report_authorization(domain, d)]
        findings += await asyncio.gather(*(self._check_report_authorization(domain, d) for d in external))
        return findings

    async def _check_report_authorization(self, domain: str, destination: str) -> Finding:
        name = report_authorization_name(domain, destination)
        subject = f"DMARC reports to {destination}"
        answer = await self.lookup(name, "TXT")
        if answer.error:
            return Finding(domain, "dmarc", subject, Status.ERROR, f"TXT lookup of {name} failed: {answer.error}")
        if any(t.startswith("v=DMARC1") for t in answer.values):
            return Finding(domain, "dmarc", subject, Status.OK, f"{name} authorizes the reports")
        return Finding(
            domain,
            "dmarc",
            subject,
            Status.FAIL,
            f"{destination} does not publish {name}: receivers drop the reports (RFC 7489 §7.1)",
            f'publish {name}. 3600 IN TXT "v=DMARC1" in the zone of {destination}',
        )

    # MX and host -------------------------------------------------------------------------------------

    async def check_mx(self, domain: str) -> list[Finding]:
        answer = await self.lookup(domain, "MX")
        if answer.error:
            return [Finding(domain, "mx", f"MX {domain}", Status.ERROR, f"MX lookup failed: {answer.error}")]
        hosts = [v.split()[-1] for v in answer.values if v.split()[-1] != "."]
        if not hosts:
            fix = f"publish {domain}. 3600 IN MX 10 {self.outputs.hostname}."
            return [Finding(domain, "mx", f"MX {domain}", Status.MISSING, "no mail exchanger", fix)]
        found = await asyncio.gather(*(self.addresses(h) for h in hosts))
        findings: list[Finding] = []
        for host, addresses in zip(hosts, found, strict=True):
            subject = f"MX {domain} → {host}"
            if addresses.error and not addresses.values:
                findings.append(
                    Finding(domain, "mx", subject, Status.ERROR, f"address lookup failed: {addresses.error}")
                )
            elif not addresses.values:
                fix = (
                    f"publish the A/AAAA records of {host}"
                    if host != self.outputs.hostname
                    else f"publish {host}. 3600 IN A {self.outputs.ipv4 or '<public IPv4>'}"
                )
                findings.append(Finding(domain, "mx", subject, Status.FAIL, f"{host} has no A/AAAA record", fix))
            else:
                proxied = [a for a in addresses.values if is_cloudflare(a)]
                if proxied:
                    findings.append(_proxied(domain, subject, host, proxied))
                else:
                    findings.append(Finding(domain, "mx", subject, Status.OK, ", ".join(addresses.values)))
        return findings

    async def check_host(self) -> list[Finding]:
        host = self.outputs.hostname
        findings: list[Finding] = []
        for rtype, configured in (("A", self.outputs.ipv4), ("AAAA", self.outputs.ipv6)):
            subject = f"{rtype} {host}"
            answer = await self.lookup(host, rtype)
            if answer.error:
                findings.append(Finding(host, "mx", subject, Status.ERROR, f"lookup failed: {answer.error}"))
                continue
            found = tuple(answer.values)
            proxied = [a for a in found if is_cloudflare(a)]
            publish = f"publish {host}. 3600 IN {rtype} {configured}" if configured else ""
            if proxied:
                findings.append(_proxied(host, subject, host, proxied))
            elif configured is None:
                if found:
                    findings.append(
                        Finding(
                            host,
                            "mx",
                            subject,
                            Status.WARN,
                            f"resolves to {', '.join(found)} but the stack has no public {rtype} address",
                            found=found,
                        )
                    )
            elif not found:
                findings.append(Finding(host, "mx", subject, Status.MISSING, "does not resolve", publish, configured))
            elif set(found) != {configured}:
                findings.append(
                    Finding(
                        host,
                        "mx",
                        subject,
                        Status.DIFFERENT,
                        f"resolves to {', '.join(found)}, the stack says {configured}",
                        f"{publish} (replacing {', '.join(a for a in found if a != configured)})",
                        configured,
                        found,
                    )
                )
            else:
                findings.append(Finding(host, "mx", subject, Status.OK, configured, expected=configured, found=found))
        return findings

    async def check_ptr(self, ip: str) -> list[Finding]:
        host = self.outputs.hostname
        subject = f"PTR {ip}"
        fix = f"set PTR of {ip} to {host} at your ISP or hosting provider (whoever owns the address block)"
        reverse = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
        answer, forward = await asyncio.gather(self.lookup(reverse, "PTR"), self.addresses(host))
        if answer.error:
            return [Finding(host, "ptr", subject, Status.ERROR, f"PTR lookup failed: {answer.error}")]
        names = tuple(n.lower() for n in answer.values)
        if not names:
            return [
                Finding(host, "ptr", subject, Status.MISSING, "no PTR record: many receivers reject such mail", fix)
            ]
        if host not in names:
            return [
                Finding(
                    host,
                    "ptr",
                    subject,
                    Status.DIFFERENT,
                    f"PTR is {', '.join(names)}, not {host}",
                    fix,
                    expected=host,
                    found=names,
                )
            ]
        if ip not in forward.values:
            return [
                Finding(
                    host,
                    "ptr",
                    subject,
                    Status.FAIL,
                    f"PTR names {host}, but {host} does not resolve back to {ip} (forward-confirmed rDNS fails)",
                    f"publish {host}. 3600 IN {'AAAA' if ':' in ip else 'A'} {ip}",
                    found=names,
                )
            ]
        return [Finding(host, "ptr", subject, Status.OK, f"{ip} → {host} → {ip}", expected=host, found=names)]

    # blocklists ------------------------------------------------------------------------------------

    async def check_blocklists(self) -> list[Finding]:
        host = self.outputs.hostname
        queries = [(host, f"Spamhaus ZEN {ip}", zen_name(ip), False) for ip in self.outputs.ips]
        queries += [(d, f"Spamhaus DBL {d}", dbl_name(d), True) for d in (*self.outputs.mail_domains, host)]
        answers = await asyncio.gather(*(self.lookup(name, "A") for _, _, name, _ in queries))
        findings: list[Finding] = []
        for (group, subject, name, dbl), answer in zip(queries, answers, strict=True):
            if answer.error:
                findings.append(Finding(group, "blocklist", subject, Status.ERROR, f"{name}: {answer.error}"))
                continue
            listings, errors = blocklist_meaning(answer.values, dbl)
            if errors:
                findings.append(
                    Finding(
                        group,
                        "blocklist",
                        subject,
                        Status.ERROR,
                        "Spamhaus refused the query: " + "; ".join(errors),
                        "run again with --resolver pointing at your own recursive resolver (e.g. unbound on the host);"
                        " Spamhaus refuses queries from public resolvers such as 8.8.8.8 or 1.1.1.1",
                    )
                )
            elif listings:
                pbl = any("PBL" in item for item in listings)
                fix = (
                    "send outbound mail through the relay (mailstack:relay), or ask your ISP for a static business address"
                    if pbl
                    else "find the cause, then request removal at https://check.spamhaus.org/"
                )
                findings.append(Finding(group, "blocklist", subject, Status.FAIL, "; ".join(listings), fix))
            else:
                findings.append(Finding(group, "blocklist", subject, Status.OK, "not listed"))
        return findings

    # ports and TLS -----------------------------------------------------------------------------------

    async def check_ports(self) -> list[Finding]:
        addresses = self.options.addresses or self.outputs.ips
        if not addresses:
            return [
                Finding(
                    self.outputs.hostname,
                    "ports",
                    "ports",
                    Status.ERROR,
                    "the stack has no public IP and no --address was given",
                )
            ]
        context = tls_context(self.options.cafile)
        jobs = [self._check_port(address, port, context) for address in addresses for port in MAIL_PORTS]
        return [f for fs in await asyncio.gather(*jobs) for f in fs]

    async def _check_port(self, address: str, port: int, context: ssl.SSLContext) -> list[Finding]:
        host = self.outputs.hostname
        actual = self.options.port_map.get(port, port)
        where = f"{address}:{actual}" if ":" not in address else f"[{address}]:{actual}"
        subject = f"port {port} ({MAIL_PORTS[port]}) at {where}"
        probe = await probe_port(address, actual, host, context, starttls=port == 25, timeout=self.options.timeout)
        if probe.connect_error:
            fix = f"allow TCP {port} in the host firewall and forward it from the router to the server"
            if port == 25:
                fix += "; many home ISPs block inbound 25: ask them to open it, or use a VPS relay"
            return [Finding(host, "ports", subject, Status.FAIL, probe.connect_error, fix)]
        if probe.protocol_error:
            return [Finding(host, "ports", subject, Status.FAIL, probe.protocol_error, "check the mail server's logs")]
        findings = [Finding(host, "ports", subject, Status.OK, probe.greeting)]
        cert_subject = f"certificate on port {port} at {where}"
        if probe.tls_error:
            details = f" ({probe.cert_summary})" if probe.cert_summary else ""
            findings.append(
                Finding(
                    host,
                    "tls",
                    cert_subject,
                    Status.FAIL,
                    f"{probe.tls_error}{details}",
                    f"install a certificate for {host} from a public CA (mailstack:tls mode letsencrypt)",
                )
            )
        elif probe.not_after is not None:
            days = (probe.not_after - time.time()) / 86400
            if days < self.options.expiry_days:
                findings.append(
                    Finding(
                        host,
                        "tls",
                        cert_subject,
                        Status.FAIL,
                        f"valid for {host} but expires in {days:.1f} days (limit {self.options.expiry_days})",
                        "renew it now; check that the certbot container runs and its logs",
                    )
                )
            else:
                findings.append(
                    Finding(host, "tls", cert_subject, Status.OK, f"valid for {host}, expires in {int(days)} days")
                )
        return findings

    # all -------------------------------------------------------------------------------------------

    async def run(self) -> list[Finding]:
        jobs: list[Awaitable[list[Finding]]] = []
        options, outputs = self.options, self.outputs
        if options.runs("records"):
            jobs.append(self.check_records())
        for domain in outputs.mail_domains:
            if options.runs("spf"):
                jobs.append(self.check_spf(domain))
            if options.runs("dmarc"):
                jobs.append(self.check_dmarc(domain))
            if options.runs("mx"):
                jobs.append(self.check_mx(domain))
        if options.runs("dkim"):
            for record in outputs.records:
                if record.type == "TXT" and "._domainkey." in record.name and txt_kind(record.content) == "dkim":
                    jobs.append(self.check_dkim(record))
        if options.runs("mx"):
            jobs.append(self.check_host())
        if options.runs("ptr"):
            jobs += [self.check_ptr(ip) for ip in outputs.ips]
        if options.runs("ports"):
            jobs.append(self.check_ports())
        if options.runs("blocklist"):
            jobs.append(self.check_blocklists())
        try:
            return [f for fs in await asyncio.gather(*jobs) for f in fs]
        finally:
            await self.dns.close()


def _proxied(group: str, subject: str, host: str, addresses: Sequence[str]) -> Finding:
    return Finding(
        group,
        "mx",
        subject,
        Status.FAIL,
        f"{host} resolves to Cloudflare proxy address(es) {', '.join(addresses)}: SMTP/IMAP never reach the server",
        f"set the record of {host} to 'DNS only' (grey cloud) at Cloudflare; mail records must not be proxied",
        found=tuple(addresses),
    )


def _no_route(reply: Reply, server: Nameserver) -> bool:
    return ":" in server.endpoint.host and reply.error is not None and "unreachable" in reply.error.lower()


# -- ports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    connect_error: str = ""
    protocol_error: str = ""
    greeting: str = ""
    tls_error: str = ""
    cert_summary: str = ""
    not_after: float | None = None


def tls_context(cafile: str | None) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or only `cafile` when given."""
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One (possibly multi-line) SMTP reply: code and text lines (RFC 5321 §4.2)."""
    lines: list[str] = []
    while True:
        raw = await reader.readline()
        if not raw:
            raise ConnectionError("connection closed by the server")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.append(line[4:])
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]) if line[:3].isdigit() else 0, lines


async def probe_port(
    address: str, port: int, hostname: str, context: ssl.SSLContext, *, starttls: bool, timeout: float
) -> Probe:
    """Connect, speak just enough SMTP/IMAP to reach TLS, and verify the certificate for `hostname`."""
    try:
        return await asyncio.wait_for(_probe(address, port, hostname, context, starttls), timeout)
    except TimeoutError:
        return Probe(
            connect_error=f"no answer within {timeout:g} s: a firewall drops the packets, or the ISP blocks the port"
        )


async def _probe(address: str, port: int, hostname: str, context: ssl.SSLContext, starttls: bool) -> Probe:
    try:
        if starttls:
            reader, writer = await asyncio.open_connection(address, port)
        else:
            reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=hostname)
    except ssl.SSLError as e:
        return Probe(
            greeting="TCP open", tls_error=_tls_reason(e), cert_summary=await _unverified(address, port, hostname)
        )
    except ConnectionRefusedError:
        return Probe(connect_error="connection refused: nothing listens there, or a firewall rejects it")
    except OSError as e:
        return Probe(connect_error=e.strerror or str(e))
    try:
        if starttls:
            code, lines = await _smtp_reply(reader)
            if code != 220:
                return Probe(protocol_error=f"greeting {code} {' '.join(lines)}")
            greeting = lines[0]
            writer.write(f"EHLO {EHLO_NAME}\r\n".encode())
            code, lines = await _smtp_reply(reader)
            if code != 250 or not any(line.upper().split()[:1] == ["STARTTLS"] for line in lines if line):
                return Probe(protocol_error="STARTTLS is not offered after EHLO (mail would travel in clear text)")
            writer.write(b"STARTTLS\r\n")
            code, lines = await _smtp_reply(reader)
            if code != 220:
                return Probe(protocol_error=f"STARTTLS refused: {code} {' '.join(lines)}")
            try:
                await writer.start_tls(context, server_hostname=hostname)
            except ssl.SSLError as e:
                return Probe(
                    greeting=greeting,
                    tls_error=_tls_reason(e),
                    cert_summary=await _unverified(address, port, hostname, True),
                )
        else:
            line = await reader.readline()
            greeting = line.decode("utf-8", errors="replace").strip()
        peer = writer.get_extra_info("peercert") or {}
        not_after = ssl.cert_time_to_seconds(peer["notAfter"]) if "notAfter" in peer else None
        return Probe(greeting=greeting or "TLS handshake done", not_after=not_after)
    except (OSError, ConnectionError) as e:
        return Probe(protocol_error=f"connection failed during the exchange: {e}")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _tls_reason(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not accepted: {error.verify_message}"
    return f"TLS handshake failed: {error.reason or error}"


async def _unverified(address: str, port: int, hostname: str, starttls: bool = False) -> str:
    """Fetch the certificate without verifying it, to show what the server actually presents."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        if starttls:
            reader, writer = await asyncio.open_connection(address, port)
            await _smtp_reply(reader)
            writer.write(f"EHLO {EHLO_NAME}\r\n".encode())
            await _smtp_reply(reader)
            writer.write(b"STARTTLS\r\n")
            await _smtp_reply(reader)
            await writer.start_tls(context, server_hostname=hostname)
        else:
            _, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=hostname)
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        writer.close()
    except (OSError, ssl.SSLError, ConnectionError, ValueError):
        return ""
    return cert_summary(der) if der else ""


def cert_summary(der: bytes) -> str:
    """Subject, names and validity of a certificate, for the report."""
    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        names = []
    issuer = "self-signed" if cert.issuer == cert.subject else f"issuer {cert.issuer.rfc4514_string()}"
    return (
        f"presents {cert.subject.rfc4514_string()}, names {', '.join(names) or 'none'}, {issuer}, "
        f"valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}"
    )


# -- inputs --------------------------------------------------------------------------------------


class InputError(Exception):
    """The outputs could not be read; verify exits 2."""


def read_outputs(stack: str | None, path: str | None) -> StackOutputs:
    """The stack outputs from a JSON file or from `pulumi stack output --json`.

    Raises:
        InputError: the file or the Pulumi CLI failed, or the JSON breaks the contract.
    """
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror}") from e
    else:
        command = ["pulumi", "stack", "output", "--json", *(["--stack", stack] if stack else [])]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        except FileNotFoundError as e:
            raise InputError(
                "the Pulumi CLI is not installed here; run `pulumi stack output --json --stack <stack> > outputs.json`"
                " where it is, then `python -m mailstack.verify --outputs outputs.json`"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise InputError(f"`{' '.join(command)}` did not finish in 120 s") from e
        if result.returncode != 0:
            raise InputError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
        text = result.stdout
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"outputs are not JSON: {e}") from e
    try:
        return parse_outputs(data)
    except OutputsError as e:
        raise InputError(str(e)) from e


def parse_port_map(text: str) -> dict[int, int]:
    """`25=2525,465=4465` → {25: 2525, 465: 4465}.

    Raises:
        ValueError: an entry is not `<mail port>=<port>`.
    """
    mapping: dict[int, int] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        left, sep, right = item.partition("=")
        if not sep or not left.strip().isdigit() or not right.strip().isdigit():
            raise ValueError(f"`{item}` is not PORT=PORT")
        if int(left) not in MAIL_PORTS:
            raise ValueError(f"`{item}`: only {', '.join(map(str, MAIL_PORTS))} are checked")
        mapping[int(left)] = int(right)
    return mapping


def system_resolver() -> Endpoint:
    """The first resolver of /etc/resolv.conf (what this machine's own programs use)."""
    try:
        nameservers = dns.resolver.Resolver().nameservers
    except dns.resolver.NoResolverConfiguration as e:
        raise InputError("no resolver configured here; pass --resolver IP[:port]") from e
    return Endpoint(str(nameservers[0]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mailstack.verify",
        description="Check the live DNS, ports and certificates against what the stack says should exist.",
        epilog="Exit code: 0 all good, 1 something is wrong (each line says how to fix it), 2 could not check.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stack", help="stack whose outputs to read with `pulumi stack output --json`")
    source.add_argument("--outputs", metavar="FILE", help="JSON file of the stack outputs (no Pulumi CLI needed)")
    parser.add_argument("--resolver", metavar="IP[:PORT]", help="recursive resolver (default: /etc/resolv.conf)")
    parser.add_argument(
        "--nameserver",
        metavar="IP[:PORT]",
        action="append",
        default=[],
        help="authoritative server to ask instead of the zones' NS records (repeatable; split-horizon, tests)",
    )
    parser.add_argument("--ns-port", type=int, default=53, help="port of nameservers found by NS lookup (default 53)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per query or connection")
    parser.add_argument("--skip", default="", help=f"comma-separated groups to skip: {', '.join(GROUPS)}")
    parser.add_argument(
        "--blocklist", action="store_true", help="also check Spamhaus ZEN/DBL (needs your own resolver)"
    )
    parser.add_argument("--port-map", default="", metavar="25=2525,...", help="connect to other ports than 25/465/993")
    parser.add_argument("--smtp-port", type=int, help="port to use for the port-25 check")
    parser.add_argument("--smtps-port", type=int, help="port to use for the port-465 check")
    parser.add_argument("--imaps-port", type=int, help="port to use for the port-993 check")
    parser.add_argument("--address", action="append", default=[], help="connect here instead of the public IPs")
    parser.add_argument("--cafile", help="trust only the CA certificates in this PEM file (tests, private CAs)")
    parser.add_argument(
        "--expiry-days", type=int, default=DEFAULT_EXPIRY_DAYS, help="fail certificates expiring sooner"
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="parallel DNS queries")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--quiet", "-q", action="store_true", help="list only the checks that did not pass")
    return parser


def options_from_args(args: argparse.Namespace) -> Options:
    """Options from parsed arguments.

    Raises:
        ValueError: a malformed flag value.
    """
    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    unknown = sorted(skip - set(GROUPS))
    if unknown:
        raise ValueError(f"--skip: unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    port_map = parse_port_map(args.port_map)
    for port, value in ((25, args.smtp_port), (465, args.smtps_port), (993, args.imaps_port)):
        if value is not None:
            port_map[port] = value
    for address in args.address:
        ipaddress.ip_address(address)
    if args.timeout <= 0:
        raise ValueError("--timeout must be positive")
    return Options(
        resolver=parse_endpoint(args.resolver) if args.resolver else system_resolver(),
        nameservers=tuple(parse_endpoint(n) for n in args.nameserver),
        ns_port=args.ns_port,
        timeout=args.timeout,
        skip=skip,
        blocklist=args.blocklist,
        port_map=port_map,
        addresses=tuple(args.address),
        cafile=args.cafile,
        expiry_days=args.expiry_days,
        concurrency=args.concurrency,
    )


def verify(outputs: StackOutputs, options: Options) -> list[Finding]:
    """Run every selected check and return the findings (the library entry point)."""
    return asyncio.run(Verifier(outputs, options).run())


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.stack and not args.outputs:
        parser.error("give --stack STACK (reads `pulumi stack output`) or --outputs FILE")
    try:
        options = options_from_args(args)
        outputs = read_outputs(args.stack, args.outputs)
    except (InputError, ValueError) as e:
        print(f"verify: {e}", file=sys.stderr)
        return EXIT_UNCHECKED
    started = datetime.now(UTC)
    findings = verify(outputs, options)
    code = exit_code(findings)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    if args.json:
        print(render_json(findings, code, outputs, elapsed))
    else:
        render_table(findings, code, outputs, elapsed, quiet=args.quiet)
    return code


if __name__ == "__main__":
    sys.exit(main())
