"""DNS UPDATE (RFC 2136) with TSIG (RFC 8945): one mail record at a time, on any standards-following server.

No Pulumi here: components/rfc2136_record.py wraps these functions in a thin dynamic provider, and
`mailstack.adopt` uses `transfer_zone` to list a zone. Everything on the wire is built and parsed by
dnspython (`dns.update`, `dns.query`, `dns.tsig`).

A *record* is one RR of the logical `RecordSpec` form (config/records.py), identified as the stack
identifies records (`RecordSpec.key`: type and name, plus the MX exchange, the TXT `v=` tag, ...).
The operations:

- `create`: in ONE update message, delete every RR of the same identity with other content (an old
  SPF text, the A record of the previous address) and add ours. Two SPF records make SPF a
  permerror (RFC 7208 §4.5), so taking over the record of the same identity is the only correct
  outcome; RRs of other identities at the name (a second MX, a verification TXT) are never touched.
- `update`: the same message, which also deletes the previous content from the state.
- `delete`: deletes exactly our RR (RFC 2136 §2.5.4); deleting an RR that is gone is a no-op.
- `read`: queries the server for the name and type and returns the RR of our identity as it is now
  (content, priority, TTL), or None when it is gone: this is how `pulumi refresh` sees drift.

RFC 2136 §3.4.2.2: an add of a non-CNAME RR at a name holding a CNAME is silently ignored by the
server, so `create` refuses that case itself with an explanation, instead of reporting success.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.SRV
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from mailstack.config.records import RecordSpec, to_rdata

TIMEOUT = 10.0
ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512")
"""TSIG algorithms accepted (RFC 8945 §6: HMAC-SHA256 is mandatory to implement; SHA-1 and MD5 are not offered)."""


class Rfc2136Error(RuntimeError):
    """The server refused or failed an operation; the message says which and what to check."""


@dataclass(frozen=True)
class Server:
    """Where updates go and how they are signed."""

    host: str
    """The primary (its name or address): the server that accepts updates for the zone (RFC 2136 §4)."""
    port: int
    key_name: str
    key_algorithm: str
    key_secret: str
    """Base64 TSIG secret (as `tsig-keygen`/`keymgr -t` print it)."""

    def address(self) -> str:
        """An address for dnspython's query functions (they take addresses, not names)."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise Rfc2136Error(f"cannot resolve the DNS server {self.host}: {err}") from None
        return str(infos[0][4][0])

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        name = dns.name.from_text(self.key_name)
        try:
            return {name: dns.tsig.Key(name, self.key_secret, self.key_algorithm)}
        except (ValueError, TypeError) as err:  # binascii.Error is a ValueError
            raise Rfc2136Error(f"TSIG key {self.key_name}: the secret is not base64 ({err})") from None


def logical(zone: str, name: str, rdata: dns.rdata.Rdata, ttl: int) -> RecordSpec:
    """A live RR in the logical form of RecordSpec (the inverse of `to_rdata`)."""
    priority: int | None = None
    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
        content = b"".join(rdata.strings).decode(errors="replace")
    elif isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        content, priority = rdata.exchange.to_text(omit_final_dot=True).lower(), int(rdata.preference)
    elif isinstance(rdata, dns.rdtypes.IN.SRV.SRV):
        target = rdata.target.to_text(omit_final_dot=True).lower() or "."
        content, priority = f"{rdata.weight} {rdata.port} {target}", int(rdata.priority)
    elif isinstance(rdata, dns.rdtypes.ANY.CNAME.CNAME):
        content = rdata.target.to_text(omit_final_dot=True).lower()
    else:
        content = rdata.to_text()
    rtype = dns.rdatatype.to_text(rdata.rdtype)
    return RecordSpec(zone, name.lower().rstrip("."), rtype, content, priority, ttl, "")


def same_content(a: RecordSpec, b: RecordSpec) -> bool:
    """Equal as DNS data: the same rdata (names compare case-insensitively, TXT by its joined text)."""
    return a.type == b.type and to_rdata(a) == to_rdata(b)


def _message(server: Server, zone: str) -> dns.update.UpdateMessage:
    keyring = server.keyring()
    return dns.update.UpdateMessage(
        zone, keyring=keyring, keyname=next(iter(keyring)), keyalgorithm=server.key_algorithm
    )


def _send(server: Server, message: dns.message.Message, what: str, *, query: bool = False) -> dns.message.Message:
    try:
        response = dns.query.tcp(message, server.address(), port=server.port, timeout=TIMEOUT)
    except dns.tsig.PeerError as err:
        # RFC 8945 §5.3.2: the server could not verify our signature (BADKEY/BADSIG/BADTIME).
        raise Rfc2136Error(
            f"{what}: {server.host}:{server.port} did not accept TSIG key {server.key_name} "
            f"({type(err).__name__}); check the key name, algorithm ({server.key_algorithm}) and secret, "
            "and the clocks (BADTIME)"
        ) from None
    except (dns.exception.DNSException, OSError) as err:
        raise Rfc2136Error(f"{what}: no answer from {server.host}:{server.port} ({err})") from None
    rcode = response.rcode()
    if rcode == dns.rcode.REFUSED:
        raise Rfc2136Error(
            f"{what}: {server.host} REFUSED it; its update ACL must allow key {server.key_name} on this zone"
        )
    if rcode == dns.rcode.NOTAUTH:
        raise Rfc2136Error(
            f"{what}: {server.host} answered NOTAUTH: it is not the primary for this zone, or it did not accept "
            f"TSIG key {server.key_name}"
        )
    if rcode != dns.rcode.NOERROR and not (query and rcode == dns.rcode.NXDOMAIN):
        raise Rfc2136Error(f"{what}: {server.host} answered {dns.rcode.to_text(rcode)}")
    return response


def query_rrsets(server: Server, record: RecordSpec) -> tuple[list[RecordSpec], bool]:
    """The live RRs of the record's name and type, and whether the name holds a CNAME instead.

    The query is TSIG-signed and sent to the update server itself (not a resolver), so it sees
    the zone as the server holds it, without caching.
    """
    query = dns.message.make_query(record.name, record.type)
    keyring = server.keyring()
    query.use_tsig(keyring, keyname=next(iter(keyring)), algorithm=server.key_algorithm)
    query.flags &= ~dns.flags.RD
    response = _send(server, query, f"query {record.type} {record.name}", query=True)
    owner = dns.name.from_text(record.name)
    found: list[RecordSpec] = []
    cname = False
    for rrset in response.answer:
        if rrset.name != owner:
            continue
        if rrset.rdtype == dns.rdatatype.CNAME and record.type != "CNAME":
            cname = True
        elif rrset.rdtype == dns.rdatatype.from_text(record.type):
            found += [logical(record.zone, record.name, rd, int(rrset.ttl)) for rd in rrset]
    return found, cname


def _rdataset(record: RecordSpec) -> dns.rdataset.Rdataset:
    rdataset = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(record.type))
    rdataset.add(to_rdata(record), record.ttl)
    return rdataset


def write(server: Server, record: RecordSpec, previous: Iterable[RecordSpec] = ()) -> list[RecordSpec]:
    """Publish `record`, replacing the live RRs of its identity and the `previous` contents, in one update.

    Returns the live RRs it replaced (content other than ours), for the caller to report.

    Raises:
        Rfc2136Error: the name holds a CNAME, or the server refused or failed the update.
    """
    live, cname = query_rrsets(server, record)
    if cname:
        raise Rfc2136Error(
            f"{record.name} holds a CNAME: the server would silently ignore a {record.type} record there "
            "(RFC 2136 §3.4.2.2; RFC 1034 §3.6.2); remove the CNAME first (python -m mailstack.adopt lists it)"
        )
    replaced = [r for r in live if r.key == record.key and not same_content(r, record)]
    stale = [p for p in previous if p.name == record.name and p.type == record.type]
    message = _message(server, record.zone)
    owner = dns.name.from_text(record.name)
    for old in [*replaced, *stale]:
        if not same_content(old, record):
            message.delete(owner, _rdataset(old))
    # Adding an RR that exists with another TTL changes the RRset's TTL (RFC 2136 §3.4.2.2; one TTL
    # per RRset, RFC 2181 §5.2): a TTL change needs no delete.
    message.add(owner, _rdataset(record))
    _send(server, message, f"update {record.type} {record.name}")
    return replaced


def delete(server: Server, record: RecordSpec) -> None:
    """Delete exactly this RR (RFC 2136 §2.5.4); other RRs of the name and type stay."""
    message = _message(server, record.zone)
    message.delete(dns.name.from_text(record.name), _rdataset(record))
    _send(server, message, f"delete {record.type} {record.name}")


def read(server: Server, record: RecordSpec) -> RecordSpec | None:
    """The live RR of the record's identity: ours when present, else another of the same identity, else None."""
    live, _ = query_rrsets(server, record)
    mine = [r for r in live if same_content(r, record)]
    candidates = mine or sorted((r for r in live if r.key == record.key), key=lambda r: r.content)
    if not candidates:
        return None
    found = candidates[0]
    return RecordSpec(record.zone, record.name, record.type, found.content, found.priority, found.ttl, record.purpose)


def transfer_zone(server: Server, zone: str) -> list[RecordSpec]:
    """Every RR of the zone by AXFR (RFC 5936), TSIG-signed; SOA and the apex NS are left out.

    Raises:
        Rfc2136Error: the transfer was refused or failed (the server's ACL must allow `transfer`
            for the key, as well as `update`).
    """
    keyring = server.keyring()
    try:
        xfr = dns.query.xfr(
            server.address(),
            zone,
            port=server.port,
            keyring=keyring,
            keyname=next(iter(keyring)),
            keyalgorithm=server.key_algorithm,
            relativize=False,
            lifetime=TIMEOUT,
        )
        parsed = dns.zone.from_xfr(xfr, relativize=False)
    except dns.xfr.TransferError as err:
        raise Rfc2136Error(
            f"zone transfer of {zone} from {server.host}: {dns.rcode.to_text(err.rcode)}; its ACL must allow "
            f"`transfer` for key {server.key_name}"
        ) from None
    except (dns.exception.DNSException, OSError, EOFError) as err:
        raise Rfc2136Error(f"zone transfer of {zone} from {server.host} failed ({err})") from None
    origin = dns.name.from_text(zone)
    out: list[RecordSpec] = []
    for owner, rdataset in parsed.iterate_rdatasets():
        if rdataset.rdtype == dns.rdatatype.SOA or (owner == origin and rdataset.rdtype == dns.rdatatype.NS):
            continue
        name = owner.to_text(omit_final_dot=True)
        out += [logical(zone, name, rd, int(rdataset.ttl)) for rd in rdataset]
    return out


# -- the dynamic provider's properties (components/rfc2136_record.py) ------------------------------

SERVER_PROPS = ("server", "port", "keyName", "keyAlgorithm", "keySecret")
RECORD_PROPS = ("zone", "name", "type", "content", "priority", "ttl")
REPLACE_PROPS = ("server", "port", "zone", "name", "type")
"""A change of these moves the record to another RRset or server: delete the old, then create the new."""


def props(server: Server, record: RecordSpec) -> dict[str, Any]:
    """The resource properties of one record (inputs and state have the same shape)."""
    return {
        "server": server.host,
        "port": server.port,
        "keyName": server.key_name,
        "keyAlgorithm": server.key_algorithm,
        "keySecret": server.key_secret,
        "zone": record.zone,
        "name": record.name,
        "type": record.type,
        "content": record.content,
        "priority": record.priority,
        "ttl": record.ttl,
    }


def server_of(values: Mapping[str, Any]) -> Server:
    return Server(
        str(values["server"]),
        int(values["port"]),
        str(values["keyName"]),
        str(values["keyAlgorithm"]),
        str(values["keySecret"]),
    )


def record_of(values: Mapping[str, Any]) -> RecordSpec:
    priority = values.get("priority")
    return RecordSpec(
        str(values["zone"]),
        str(values["name"]),
        str(values["type"]),
        str(values["content"]),
        int(priority) if priority is not None else None,
        int(values["ttl"]),
        "",
    )


def diff(olds: Mapping[str, Any], news: Mapping[str, Any], *, unknown: object = None) -> tuple[list[str], list[str]]:
    """(changed properties, those among them that need a replacement).

    Content that changes the record's identity (a TXT whose `v=` tag changes) is a replacement too:
    the old RR is no longer "ours" once the new one is written. Content that is not known yet
    (`unknown`, the engine's placeholder during a preview: a DKIM key being generated) is an update.
    """
    keys = (*SERVER_PROPS, *RECORD_PROPS)
    changed = [k for k in keys if olds.get(k) != news.get(k)]
    replaces = [k for k in changed if k in REPLACE_PROPS]
    if "content" in changed and news.get("content") != unknown:
        try:
            if record_of(olds).key != record_of(news).key:
                replaces.append("content")
        except (KeyError, TypeError, ValueError):
            replaces.append("content")
    return changed, replaces
