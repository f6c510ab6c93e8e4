"""The DNS client of `verify`: concurrent queries over one UDP socket per server, each bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import struct
from dataclasses import dataclass
from typing import Any, cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from mailstack.verify_checks import ServerAnswer, Value

# Enough parallel queries to check ~100 domains in well under a second against one server,
# few enough that a small authoritative server or a home router does not start dropping them.
DEFAULT_CONCURRENCY = 64
EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size: avoids fragmentation, fits a 2048-bit DKIM key
RECEIVE_BUFFER = 4 * 1024 * 1024


@dataclass(frozen=True, order=True)
class Endpoint:
    """A DNS server address and port."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 53 else f"{host}:{self.port}"


def check_port(port: int, what: str) -> int:
    """`port` when it is a TCP/UDP port number.

    Raises:
        ValueError: outside 1-65535 (the socket layer would raise OverflowError mid-run instead).
    """
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {what!r}")
    return port


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
    return Endpoint(host, check_port(port, text))


@dataclass(frozen=True)
class Reply:
    """One DNS response reduced to what the checks need."""

    rcode: str = "NOERROR"
    values: tuple[Value, ...] = ()
    authoritative: bool = False
    error: str | None = None

    def server_answer(self, label: str, *, direct: bool) -> ServerAnswer:
        """This reply as one server's answer for the record verdicts (`direct`: asked without recursion)."""
        if self.error:
            return ServerAnswer(label, error=self.error)
        if self.rcode not in ("NOERROR", "NXDOMAIN"):
            return ServerAnswer(label, error=f"answered {self.rcode}")
        if direct and not self.authoritative:
            # A nameserver in the NS set that is not authoritative is a lame delegation.
            return ServerAnswer(label, error="not authoritative for the zone (lame delegation)")
        return ServerAnswer(label, self.values)


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
        """Cancel whatever is still unanswered and close every socket."""
        for task in (*self._inflight.values(), *self._channels.values()):
            task.cancel()  # a no-op for the finished ones
        for task in self._channels.values():
            if task.done() and not task.cancelled() and task.exception() is None:
                transport = task.result().transport
                if transport is not None:
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
