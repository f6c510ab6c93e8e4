"""The DNS client of `verify`: concurrent queries over one UDP socket per server, each bounded in time.

Queries are built and responses read here, directly on the wire format (RFC 1035 §4), for the
few record types verify compares; anything else goes through dnspython's rdata classes. Measured
on 100 domains (benchmarks/verify_vs_checkdmarc.py): dnspython's Message parsing was 43% of the
checks' time, and importing dns.resolver/dns.query (which pull in DNS-over-HTTPS and -QUIC
modules) 13% of the whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import struct
from dataclasses import dataclass
from typing import cast

import dns.exception
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from mailstack.verify.records import ServerAnswer
from mailstack.verify.values import Value

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


class _UdpChannel:
    """One connected UDP socket to one server, shared by every query to it, matched by message ID.

    A socket per query (as dns.asyncquery.udp opens) costs more than the query itself on loopback;
    one socket per server keeps 100 domains well under a second. The socket is read directly from
    the event loop's reader callback, draining every datagram that is waiting: asyncio's datagram
    transport reads one datagram per loop iteration (one select() per answer), which profiling
    showed as the largest cost left. Message IDs are random, and each response is also checked
    against its question (_checked) before it is used.
    """

    def __init__(self, server: Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self._loop = loop
        # Numeric only (no name lookups); getaddrinfo keeps the scope of a link-local IPv6 address.
        family, kind, proto, _, address = socket.getaddrinfo(
            server.host, server.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
        )[0]
        self.sock = socket.socket(family, kind, proto)
        try:
            self.sock.setblocking(False)
            # Many answers can arrive between two reads of the event loop; the default buffer
            # (~200 KB, ~100 datagrams on loopback) would drop some and turn them into timeouts.
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self.sock.connect(address)
        except BaseException:
            self.sock.close()
            raise
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port/host unreachable arrives on the connected socket, not on a query: it
                # means the server is not there, so every query waiting on this socket fails now.
                self._fail(exc)
                return
            future = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
            if future is not None and not future.done():
                future.set_result(data)

    def _fail(self, exc: BaseException) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(exc)

    async def send(self, message: bytes) -> None:
        """Send one query (a UDP datagram goes out whole or not at all)."""
        await self._loop.sock_sendall(self.sock, message)

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self._fail(ConnectionError("socket closed"))

    def new_id(self) -> int:
        while True:
            qid = secrets.randbelow(65536)
            if qid not in self.pending:
                return qid


# -- wire format (RFC 1035 §4.1) -----------------------------------------------------------------

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH after the owner name
_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_OPT = 41
_ESCAPED = frozenset(b'"().;\\@$')


def name_wire(name: str) -> bytes:
    """`name` (dotted text, no escapes) in wire form, lower-cased.

    Raises:
        ValueError: an empty or over-long label, or a name over 255 bytes (RFC 1035 §2.3.4).
    """
    out = bytearray()
    for label in name.rstrip(".").split(".") if name.strip(".") else ():
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in DNS name {name!r}")
        out.append(len(raw))
        out += raw.lower()
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"DNS name {name!r} is longer than 255 bytes")
    return bytes(out)


def query_wire(qid: int, qname: bytes, rdtype: int, recurse: bool) -> bytes:
    """A standard query for one question, with an EDNS OPT record (RFC 1035 §4.1, RFC 6891 §6.1.2)."""
    header = _HEADER.pack(qid, _RD if recurse else 0, 1, 0, 0, 1)  # 1 question, 1 additional (OPT)
    opt = b"\x00" + _RR.pack(_OPT, EDNS_PAYLOAD, 0, 0)  # root owner, payload size, no flags, no options
    return header + qname + struct.pack("!HH", rdtype, dns.rdataclass.IN) + opt


def _label_text(label: bytes) -> str:
    """One label as dnspython writes it (dns.name._escapify): specials escaped, others as \\DDD."""
    if label.isalnum() or all(0x20 < c < 0x7F and c not in _ESCAPED for c in label):
        return label.decode("ascii")
    return "".join("\\" + chr(c) if c in _ESCAPED else chr(c) if 0x20 < c < 0x7F else f"\\{c:03d}" for c in label)


def _read_name(wire: bytes, offset: int) -> tuple[bytes, int]:
    """The name at `offset` as lower-cased wire labels (compression followed), and the offset after it.

    Raises:
        dns.exception.FormError: a truncated name, a pointer loop or a name over 255 bytes.
    """
    labels = bytearray()
    end = -1
    hops = 0
    while True:
        if offset >= len(wire):
            raise dns.exception.FormError("truncated name")  # type: ignore[no-untyped-call]
        length = wire[offset]
        if length == 0:
            labels.append(0)
            if len(labels) > 255:
                raise dns.exception.FormError("name too long")  # type: ignore[no-untyped-call]
            return bytes(labels), (offset + 1 if end < 0 else end)
        if length >= 0xC0:
            if offset + 1 >= len(wire):
                raise dns.exception.FormError("truncated pointer")  # type: ignore[no-untyped-call]
            if end < 0:
                end = offset + 2
            hops += 1
            if hops > 127:
                raise dns.exception.FormError("compression pointer loop")  # type: ignore[no-untyped-call]
            offset = ((length & 0x3F) << 8) | wire[offset + 1]
            continue
        if length > 63 or offset + 1 + length > len(wire):
            raise dns.exception.FormError("bad label")  # type: ignore[no-untyped-call]
        labels += wire[offset : offset + 1 + length].lower()
        offset += 1 + length


def name_text(name: bytes) -> str:
    """Wire labels as verify shows a name: lower case, no final dot, `.` for the root."""
    labels = []
    i = 0
    while name[i]:
        labels.append(_label_text(name[i + 1 : i + 1 + name[i]]))
        i += 1 + name[i]
    return ".".join(labels) if labels else "."


@dataclass(frozen=True)
class Response:
    """The parts of a DNS response that verify reads: header bits, rcode, question and answers."""

    wire: bytes
    qid: int
    flags: int
    rcode: int
    question: tuple[bytes, int] | None
    answer: tuple[tuple[bytes, int, int, int], ...]
    """(owner, type, rdata offset, rdata length) per answer record of class IN."""

    @property
    def truncated(self) -> bool:
        return bool(self.flags & _TC)

    @property
    def authoritative(self) -> bool:
        return bool(self.flags & _AA)

    def answers(self, qname: bytes, rdtype: int) -> bool:
        return bool(self.flags & _QR) and self.question == (qname, rdtype)


def parse_response(wire: bytes) -> Response:
    """Header, question, answer section and the extended rcode of a response (RFC 6891 §6.1.3).

    Raises:
        dns.exception.FormError: the message is malformed.
    """
    if len(wire) < 12:
        raise dns.exception.FormError("shorter than a DNS header")  # type: ignore[no-untyped-call]
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    offset = 12
    question: tuple[bytes, int] | None = None
    try:
        for i in range(qdcount):
            qname, offset = _read_name(wire, offset)
            qtype, _ = struct.unpack_from("!HH", wire, offset)
            offset += 4
            if i == 0 and qdcount == 1:
                question = (qname, qtype)
        answer: list[tuple[bytes, int, int, int]] = []
        rcode = flags & 0x000F
        for section, count in ((0, ancount), (1, nscount), (2, arcount)):
            for _ in range(count):
                owner, offset = _read_name(wire, offset)
                rtype, rclass, ttl, rdlength = _RR.unpack_from(wire, offset)
                offset += _RR.size
                if offset + rdlength > len(wire):
                    raise dns.exception.FormError("truncated record data")  # type: ignore[no-untyped-call]
                if section == 0 and rclass == dns.rdataclass.IN:
                    answer.append((owner, rtype, offset, rdlength))
                elif section == 2 and rtype == _OPT:
                    rcode |= (ttl >> 24) << 4  # the upper 8 bits of the extended rcode
                offset += rdlength
    except struct.error as e:
        raise dns.exception.FormError(f"truncated message: {e}") from e  # type: ignore[no-untyped-call]
    return Response(wire, qid, flags, rcode, question, tuple(answer))


_NAME_TYPES = frozenset({dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR})


def rdata_value(wire: bytes, rdtype: dns.rdatatype.RdataType, offset: int, length: int) -> Value:
    """One record value as verify compares and shows it (mailstack.verify.Value.of).

    The types verify asks for most are read here directly; others (CAA, …) go through dnspython.

    Raises:
        dns.exception.FormError: the record data is malformed.
    """
    end = offset + length
    text: str | None = None
    try:
        if rdtype == dns.rdatatype.TXT:
            strings = bytearray()
            i = offset
            while i < end:
                strings += wire[i + 1 : i + 1 + wire[i]]
                i += 1 + wire[i]
            if i != end:
                raise dns.exception.FormError("bad TXT strings")  # type: ignore[no-untyped-call]
            return Value.from_display("TXT", strings.decode("utf-8", errors="replace"))
        if rdtype == dns.rdatatype.A and length == 4:
            text = ".".join(map(str, wire[offset:end]))
        elif rdtype == dns.rdatatype.AAAA and length == 16:
            text = ipaddress.IPv6Address(wire[offset:end]).compressed
        elif rdtype in _NAME_TYPES:
            text = name_text(_rdata_name(wire, offset, end)[0])
        elif rdtype == dns.rdatatype.MX and length > 2:
            (preference,) = struct.unpack_from("!H", wire, offset)
            text = f"{preference} {name_text(_rdata_name(wire, offset + 2, end)[0])}"
        elif rdtype == dns.rdatatype.SRV and length > 6:
            priority, weight, port = struct.unpack_from("!HHH", wire, offset)
            text = f"{priority} {weight} {port} {name_text(_rdata_name(wire, offset + 6, end)[0])}"
        elif rdtype == dns.rdatatype.SOA:
            mname, i = _rdata_name(wire, offset, end)
            rname, i = _rdata_name(wire, i, end)
            if i + 20 != end:
                raise dns.exception.FormError("bad SOA record data")  # type: ignore[no-untyped-call]
            numbers = " ".join(map(str, struct.unpack_from("!IIIII", wire, i)))
            text = f"{_absolute(mname)} {_absolute(rname)} {numbers}"
    except struct.error as e:
        raise dns.exception.FormError(f"truncated record data: {e}") from e  # type: ignore[no-untyped-call]
    if text is not None:
        return Value.from_display(dns.rdatatype.to_text(rdtype), text)
    rdata = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, wire, offset, length)
    return Value.of(dns.rdatatype.to_text(rdtype), rdata)


def _rdata_name(wire: bytes, offset: int, end: int) -> tuple[bytes, int]:
    """A name inside record data that must end within it (RFC 1035 §3.3)."""
    name, after = _read_name(wire, offset)
    if after > end:
        raise dns.exception.FormError("a name runs past its record data")  # type: ignore[no-untyped-call]
    return name, after


def _absolute(name: bytes) -> str:
    text = name_text(name)
    return text if text == "." else text + "."


def answer_values(response: Response, qname: bytes, rdtype: dns.rdatatype.RdataType) -> tuple[Value, ...]:
    """Values of `rdtype` at `qname`, following a CNAME chain inside the answer section."""
    current = qname
    for _ in range(8):
        found = [(o, n) for owner, t, o, n in response.answer if owner == current and t == rdtype]
        if found:
            return tuple(rdata_value(response.wire, rdtype, o, n) for o, n in found)
        cname = next((o for owner, t, o, _ in response.answer if owner == current and t == dns.rdatatype.CNAME), None)
        if cname is None or rdtype == dns.rdatatype.CNAME:
            return ()
        current = _read_name(response.wire, cname)[0]
    return ()


def _expire(future: asyncio.Future[bytes]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class DnsClient:
    """Concurrent DNS queries with bounded time, and one shared answer per identical question."""

    def __init__(self, timeout: float, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.timeout = timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._inflight: dict[tuple[Endpoint, str, str, bool], asyncio.Task[Reply]] = {}
        self._channels: dict[Endpoint, _UdpChannel] = {}

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
        for task in self._inflight.values():
            task.cancel()  # a no-op for the finished ones
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def _channel(self, server: Endpoint) -> _UdpChannel:
        channel = self._channels.get(server)
        if channel is None:
            channel = self._channels[server] = _UdpChannel(server, asyncio.get_running_loop())
        return channel

    async def _udp(self, server: Endpoint, qname: bytes, rdtype: int, recurse: bool) -> Response:
        channel = self._channel(server)
        qid = channel.new_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        channel.pending[qid] = future
        # A timer per query is far cheaper than asyncio.wait_for's wrapper task.
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, future)
        try:
            await channel.send(query_wire(qid, qname, rdtype, recurse))
            data = await future
        finally:
            timer.cancel()
            channel.pending.pop(qid, None)
        return _checked(parse_response(data), qid, qname, rdtype)

    async def _tcp(self, server: Endpoint, qname: bytes, rdtype: int, recurse: bool) -> Response:
        """The same question over TCP (RFC 7766), after a truncated UDP answer."""
        qid = secrets.randbelow(65536)

        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                message = query_wire(qid, qname, rdtype, recurse)
                writer.write(struct.pack("!H", len(message)) + message)  # RFC 1035 §4.2.2 length prefix
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                return await reader.readexactly(length)
            finally:
                writer.close()

        try:
            data = await asyncio.wait_for(exchange(), self.timeout)
        except asyncio.IncompleteReadError as e:
            raise dns.exception.FormError("the server closed the TCP connection mid-answer") from e  # type: ignore[no-untyped-call]
        return _checked(parse_response(data), qid, qname, rdtype)

    async def _query(self, server: Endpoint, name: str, rdtype: str, recurse: bool) -> Reply:
        try:
            qname = name_wire(name)
        except (ValueError, UnicodeError) as e:
            return Reply(error=str(e))
        qtype = dns.rdatatype.from_text(rdtype)
        error = "no answer"
        # Two tries: one lost UDP datagram should not turn into "missing".
        for _ in range(2):
            try:
                async with self._limit:
                    response = await self._udp(server, qname, qtype, recurse)
                    if response.truncated:
                        response = await self._tcp(server, qname, qtype, recurse)
                values = answer_values(response, qname, qtype)
            except TimeoutError:
                error = f"timeout after {self.timeout:g} s"
                continue
            except OSError as e:
                error = e.strerror or str(e)
                break  # refused/unreachable: retrying does not help
            except dns.exception.DNSException as e:
                error = f"bad response: {e}"
                break
            return Reply(
                rcode=dns.rcode.to_text(cast(dns.rcode.Rcode, response.rcode)),
                values=values,
                authoritative=response.authoritative,
            )
        return Reply(error=error)


def _checked(response: Response, qid: int, qname: bytes, rdtype: int) -> Response:
    """`response` if it answers the question that was sent (ID, QR bit, name and type).

    Raises:
        dns.exception.FormError: it does not.
    """
    if response.qid != qid or not response.answers(qname, rdtype):
        raise dns.exception.FormError("the response does not answer the question")  # type: ignore[no-untyped-call]
    return response
