"""DKIM (RFC 6376): the key of a published record."""

from __future__ import annotations

from mailstack.verify.values import parse_tags


def dkim_key(text: str) -> str:
    """The base64 public key (`p=`) of a DKIM key record, whitespace removed; "" when revoked.

    Raises:
        ValueError: not a tag list, or no p= tag.
    """
    tags = parse_tags(text)
    if "p" not in tags:
        raise ValueError("no p= tag")
    return "".join(tags["p"].split())


def short_key(key: str) -> str:
    """A key shortened for display: first and last characters."""
    return key if len(key) <= 24 else f"{key[:10]}…{key[-10:]}"
