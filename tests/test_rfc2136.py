"""The rfc2136 backend against a real Knot DNS (knotd on loopback) with a TSIG key and an update ACL.

Every test drives the dynamic provider's own methods (components/rfc2136_record.py: create, read,
update, delete, diff), as the Pulumi engine would call them, and checks the result with a plain,
unsigned query to the server: what any resolver would be served.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.update
import pytest

from components.rfc2136_record import Rfc2136Provider
from mailstack.config import rfc2136
from mailstack.config.records import RecordSpec
from tests.dnsserver import KnotServer, TsigKey

pytestmark = pytest.mark.integration  # a real knotd (Debian knot)

KEY = TsigKey("mailstack-test.", "hmac-sha256", base64.b64encode(hashlib.sha256(b"mailstack tsig").digest()).decode())
ZONE = """$ORIGIN example.com.
$TTL 3600
@ SOA ns.invalid. hostmaster.example.com. 1 3600 600 1209600 300
@ NS ns.invalid.
@ MX 20 mx.backup-provider.net.
@ TXT "v=spf1 include:_spf.google.com ~all"
@ TXT "google-site-verification=abc"
old CNAME ghs.googlehosted.com.
"""
DKIM = "v=DKIM1; k=rsa; p=" + base64.b64encode(bytes(range(256)) * 2).decode()


@pytest.fixture(scope="module")
def knot() -> Iterator[KnotServer]:
    with KnotServer({"example.com": ZONE}, tsig=KEY) as server:
        yield server


@pytest.fixture
def ns(knot: KnotServer) -> KnotServer:
    knot.replace_zones({"example.com": ZONE})  # every test starts from the same zone
    return knot


def server(ns: KnotServer, secret: str = KEY.secret, key_name: str = KEY.name) -> rfc2136.Server:
    return rfc2136.Server(ns.address, ns.port, key_name, KEY.algorithm, secret)


def props(
    ns: KnotServer, name: str, rtype: str, content: str, *, priority: int | None = None, ttl: int = 3600
) -> dict[str, Any]:
    record = RecordSpec("example.com", name, rtype, content, priority, ttl, "")
    return rfc2136.props(server(ns), record)


def served(ns: KnotServer, name: str, rtype: str) -> list[str]:
    """What the server answers an unsigned query with: `<ttl> <rdata>` per RR, sorted."""
    query = dns.message.make_query(name, rtype)
    response, _ = dns.query.udp_with_fallback(query, ns.address, port=ns.port, timeout=2)
    return sorted(
        f"{rrset.ttl} {rd.to_text()}"
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.from_text(rtype)
        for rd in rrset
    )


def out_of_band(ns: KnotServer, name: str, rtype: str, *, delete: str | None = None, add: str | None = None) -> None:
    """A change someone else makes (another tool, a colleague with the key): the drift `read` must see."""
    message = dns.update.UpdateMessage(
        "example.com", keyring={dns.name.from_text(KEY.name): dns.tsig.Key(KEY.name, KEY.secret, KEY.algorithm)}
    )
    owner = dns.name.from_text(name)  # absolute: a str name would be taken relative to the zone
    if delete is not None:
        message.delete(owner, rtype, delete)
    if add is not None:
        message.add(owner, 3600, rtype, add)
    assert dns.query.tcp(message, ns.address, port=ns.port, timeout=2).rcode() == 0


def test_create_takes_over_the_old_spf_and_leaves_other_txt_alone(ns: KnotServer) -> None:
    provider = Rfc2136Provider()
    result = provider.create(props(ns, "example.com", "TXT", "v=spf1 mx include:spf.brevo.com -all"))
    assert result.id == "txt-example.com-spf1"
    assert result.outs == props(ns, "example.com", "TXT", "v=spf1 mx include:spf.brevo.com -all")
    assert served(ns, "example.com", "TXT") == [
        '3600 "google-site-verification=abc"',
        '3600 "v=spf1 mx include:spf.brevo.com -all"',
    ]


def test_create_mx_keeps_the_backup_mx(ns: KnotServer) -> None:
    Rfc2136Provider().create(props(ns, "example.com", "MX", "mail.example.com", priority=10))
    assert served(ns, "example.com", "MX") == ["3600 10 mail.example.com.", "3600 20 mx.backup-provider.net."]


def test_long_dkim_txt_is_split_into_255_byte_strings_and_reads_back_whole(ns: KnotServer) -> None:
    provider = Rfc2136Provider()
    p = props(ns, "mail._domainkey.example.com", "TXT", DKIM, ttl=300)
    provider.create(p)
    [answer] = served(ns, "mail._domainkey.example.com", "TXT")
    strings = answer.split(" ", 1)[1].split('" "')
    assert len(DKIM) == 702
    assert [len(s.strip('"')) for s in strings] == [255, 255, 192]
    assert provider.read("txt-mail._domainkey.example.com-dkim1", p).outs == p


def test_update_changes_content_ttl_and_priority_in_place(ns: KnotServer) -> None:
    provider = Rfc2136Provider()
    spf = props(ns, "example.com", "TXT", "v=spf1 mx -all")
    provider.create(spf)
    new_spf = props(ns, "example.com", "TXT", "v=spf1 mx ip4:192.0.2.7 -all", ttl=600)
    assert provider.diff("txt-example.com-spf1", spf, new_spf).replaces == []
    assert provider.update("txt-example.com-spf1", spf, new_spf).outs == new_spf
    # One RRset, one TTL (RFC 2181 §5.2): the verification TXT follows the new TTL.
    assert served(ns, "example.com", "TXT") == [
        '600 "google-site-verification=abc"',
        '600 "v=spf1 mx ip4:192.0.2.7 -all"',
    ]
    mx = props(ns, "example.com", "MX", "mail.example.com", priority=10)
    provider.create(mx)
    provider.update(
        "mx-example.com-mail.example.com", mx, props(ns, "example.com", "MX", "mail.example.com", priority=5)
    )
    assert served(ns, "example.com", "MX") == ["3600 20 mx.backup-provider.net.", "3600 5 mail.example.com."]


def test_delete_removes_exactly_the_record(ns: KnotServer) -> None:
    provider = Rfc2136Provider()
    mx = props(ns, "example.com", "MX", "mail.example.com", priority=10)
    provider.create(mx)
    provider.delete("mx-example.com-mail.example.com", mx)
    assert served(ns, "example.com", "MX") == ["3600 20 mx.backup-provider.net."]
    provider.delete("mx-example.com-mail.example.com", mx)  # already gone: a no-op, not an error
    srv = props(ns, "_imaps._tcp.example.com", "SRV", "1 993 mail.example.com", priority=0)
    provider.create(srv)
    assert served(ns, "_imaps._tcp.example.com", "SRV") == ["3600 0 1 993 mail.example.com."]
    provider.delete("srv-_imaps._tcp.example.com", srv)
    assert served(ns, "_imaps._tcp.example.com", "SRV") == []


def test_read_sees_drift_and_deletion(ns: KnotServer) -> None:
    provider = Rfc2136Provider()
    spf = props(ns, "example.com", "TXT", "v=spf1 mx -all")
    provider.create(spf)
    assert provider.read("txt-example.com-spf1", spf).outs == spf
    # Someone edits the SPF record by hand: refresh reports their text, and the next `up` diffs it.
    out_of_band(ns, "example.com", "TXT", delete='"v=spf1 mx -all"', add='"v=spf1 mx a -all"')
    drifted = provider.read("txt-example.com-spf1", spf)
    assert drifted.id == "txt-example.com-spf1"
    assert drifted.outs == {**spf, "content": "v=spf1 mx a -all"}
    assert provider.diff("txt-example.com-spf1", drifted.outs, spf).changes is True
    # ... and the update puts ours back, replacing theirs.
    provider.update("txt-example.com-spf1", drifted.outs, spf)
    assert served(ns, "example.com", "TXT") == ['3600 "google-site-verification=abc"', '3600 "v=spf1 mx -all"']
    # Deleted by hand: read answers "gone", so refresh drops it from the state and `up` recreates it.
    out_of_band(ns, "example.com", "TXT", delete='"v=spf1 mx -all"')
    gone = provider.read("txt-example.com-spf1", spf)
    assert (gone.id, gone.outs) == (None, {})
    mx = props(ns, "example.com", "MX", "mail.example.com", priority=10)
    provider.create(mx)
    out_of_band(ns, "example.com", "MX", delete="10 mail.example.com.", add="30 mail.example.com.")
    assert provider.read("mx-example.com-mail.example.com", mx).outs == {**mx, "priority": 30}


def test_a_cname_at_the_name_is_refused_with_the_reason(ns: KnotServer) -> None:
    with pytest.raises(rfc2136.Rfc2136Error) as err:
        Rfc2136Provider().create(props(ns, "old.example.com", "A", "192.0.2.1"))
    assert str(err.value) == (
        "old.example.com holds a CNAME: the server would silently ignore a A record there (RFC 2136 §3.4.2.2; "
        "RFC 1034 §3.6.2); remove the CNAME first (python -m mailstack.adopt lists it)"
    )


def test_wrong_secret_and_unknown_key_are_explained(ns: KnotServer) -> None:
    wrong = rfc2136.props(
        server(ns, secret=base64.b64encode(b"w" * 32).decode()),
        RecordSpec("example.com", "example.com", "TXT", "v=spf1 -all", None, 3600, ""),
    )
    with pytest.raises(rfc2136.Rfc2136Error, match=r"did not accept TSIG key mailstack-test\. \(PeerBadSignature\)"):
        Rfc2136Provider().create(wrong)
    stranger = rfc2136.props(
        server(ns, key_name="other-key."),
        RecordSpec("example.com", "example.com", "TXT", "v=spf1 -all", None, 3600, ""),
    )
    with pytest.raises(rfc2136.Rfc2136Error, match=r"did not accept TSIG key other-key\. \(PeerBadKey\)"):
        Rfc2136Provider().create(stranger)
    assert served(ns, "example.com", "TXT") == [
        '3600 "google-site-verification=abc"',
        '3600 "v=spf1 include:_spf.google.com ~all"',
    ]


def test_transfer_lists_the_zone(ns: KnotServer) -> None:
    records = rfc2136.transfer_zone(server(ns), "example.com")
    assert sorted((r.name, r.type, r.content, r.priority, r.ttl) for r in records) == [
        ("example.com", "MX", "mx.backup-provider.net", 20, 3600),
        ("example.com", "TXT", "google-site-verification=abc", None, 3600),
        ("example.com", "TXT", "v=spf1 include:_spf.google.com ~all", None, 3600),
        ("old.example.com", "CNAME", "ghs.googlehosted.com", None, 3600),
    ]


def test_diff_classifies_changes() -> None:
    base = {
        "server": "ns1.example.net",
        "port": 53,
        "keyName": "k.",
        "keyAlgorithm": "hmac-sha256",
        "keySecret": "c2VjcmV0",
        "zone": "example.com",
        "name": "example.com",
        "type": "TXT",
        "content": "v=spf1 mx -all",
        "priority": None,
        "ttl": 3600,
    }
    provider = Rfc2136Provider()
    assert provider.diff("x", base, dict(base)).changes is False
    ttl = provider.diff("x", base, {**base, "ttl": 600})
    assert (ttl.changes, ttl.replaces, ttl.delete_before_replace) == (True, [], False)
    assert provider.diff("x", base, {**base, "keySecret": "bmV3"}).replaces == []
    moved = provider.diff("x", base, {**base, "server": "ns2.example.net", "name": "sub.example.com"})
    assert (moved.replaces, moved.delete_before_replace) == (["server", "name"], True)
    # A text whose identity changes (the v= tag) is another record: replaced, not updated.
    assert provider.diff("x", base, {**base, "content": "google-site-verification=x"}).replaces == ["content"]
    # During a preview a DKIM key being generated is unknown: an update, not a replacement.
    from pulumi.runtime import rpc

    assert provider.diff("x", base, {**base, "content": rpc.UNKNOWN}).replaces == []
