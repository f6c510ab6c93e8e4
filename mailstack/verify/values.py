"""Record values: TXT texts and tags, canonical and display forms of rdata."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

if TYPE_CHECKING:
    from mailstack.verify.outputs import ExpectedRecord


def _name_text(name: dns.name.Name) -> str:
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


def txt_text(rdata: dns.rdata.Rdata) -> str:
    """The logical text of a TXT record: its strings concatenated (RFC 7208 §3.3)."""
    return b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]


_TAG_KINDS = {"dkim1": "dkim", "dmarc1": "dmarc", "tlsrptv1": "tlsrpt", "stsv1": "sts"}


def txt_kind(text: str) -> str | None:
    """Which mail record a TXT text is (`spf`, `dkim`, `dmarc`, `tlsrpt`, `sts`), or None."""
    low = text.strip().lower()
    if low == "v=spf1" or low.startswith("v=spf1 "):
        return "spf"
    match = re.match(r"v\s*=\s*([a-z0-9]+)\s*(;|$)", low)
    if match:
        return _TAG_KINDS.get(match.group(1))
    # A DKIM key record may omit v= (RFC 6376 §3.6.1: v= is RECOMMENDED, not required).
    if re.search(r"(^|;)\s*p\s*=", low) and re.search(r"(^|;)\s*k\s*=", low):
        return "dkim"
    return None


def parse_tags(text: str) -> dict[str, str]:
    """A tag=value list (RFC 6376 §3.2, used by DKIM, DMARC, TLS-RPT, MTA-STS).

    Raises:
        ValueError: a tag without `=`, or a tag given twice.
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"`{part.strip()}` is not tag=value")
        key = name.strip().lower()
        if key in tags:
            raise ValueError(f"tag `{key}` appears twice")
        tags[key] = value.strip()
    return tags


def _txt_key(text: str) -> str:
    """Comparison key for TXT texts: equal when a receiver would read them the same way."""
    kind = txt_kind(text)
    if kind == "spf":
        return " ".join(text.lower().split())
    if kind is not None:
        try:
            tags = parse_tags(text)
        except ValueError:
            return text.strip()
        if "p" in tags and kind == "dkim":
            # RFC 6376 §3.6.1: whitespace inside the base64 key is ignored.
            tags["p"] = "".join(tags["p"].split())
        first = [k for k in ("v",) if k in tags]
        return "; ".join(f"{k}={tags[k]}" for k in first + sorted(set(tags) - set(first)))
    return text


def canonical(rdtype: str, rdata: dns.rdata.Rdata) -> str:
    """Comparison key of one record value (case-insensitive names, joined TXT, normalized IPs)."""
    if rdtype == "TXT":
        return "TXT " + _txt_key(txt_text(rdata))
    return f"{rdtype} {display(rdtype, rdata).lower()}"


def display(rdtype: str, rdata: dns.rdata.Rdata) -> str:
    """How a value is shown in the report (same shape as the outputs' `content`)."""
    r: Any = rdata
    if rdtype == "TXT":
        return txt_text(rdata)
    if rdtype == "MX":
        return f"{r.preference} {_name_text(r.exchange)}"
    if rdtype == "SRV":
        return f"{r.priority} {r.weight} {r.port} {_name_text(r.target)}"
    if rdtype in ("CNAME", "NS", "PTR"):
        return _name_text(r.target)
    if rdtype in ("A", "AAAA"):
        return ipaddress.ip_address(r.address).compressed
    return str(rdata.to_text())


@dataclass(frozen=True)
class Value:
    """One published value as seen by a server: comparison key plus display text."""

    key: str
    text: str

    @staticmethod
    def of(rdtype: str, rdata: dns.rdata.Rdata) -> Value:
        return Value(canonical(rdtype, rdata), display(rdtype, rdata))

    @staticmethod
    def from_display(rdtype: str, text: str) -> Value:
        """The value whose display text is `text` (what `of` gives; verify_dns reads the wire itself)."""
        return Value("TXT " + _txt_key(text) if rdtype == "TXT" else f"{rdtype} {text.lower()}", text)


def related(expected: ExpectedRecord, value: Value) -> bool:
    """Whether a published value is the counterpart of an expected one (would be replaced by it).

    TXT owners hold unrelated texts side by side (site verifications next to SPF), so only a TXT
    of the same kind counts; for every other type the stack owns the whole record set.
    """
    if expected.type != "TXT":
        return True
    kind = txt_kind(expected.content)
    return kind is not None and txt_kind(value.text) == kind
