"""AWS Signature Version 4 for the few read-only Route 53 requests `adopt` makes (GET, empty body).

Pure: no clock, no network. The steps are AWS's "Create a signed AWS API request" (IAM user guide,
reference_sigv-create-signed-request): canonical request, string to sign, the derived signing key
HMAC chain (`AWS4` + secret → date → region → service → `aws4_request`), and the Authorization
header. Checked against AWS's published SigV4 test suite (awslabs/aws-c-auth
tests/aws-signing-test-suite/v4: get-vanilla, get-vanilla-query-order-key-case,
get-vanilla-utf8-query, get-vanilla-with-session-token) in tests/test_sigv4.py.

botocore would do the same, but it is a large dependency (and its release train moves weekly)
for four GET requests; this signer is the part of it adopt needs.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    """Temporary credentials (STS) also sign `X-Amz-Security-Token`."""


def _uri_encode(text: str, *, safe: str) -> str:
    # SigV4 encodes every byte except the unreserved characters A-Z a-z 0-9 - _ . ~ (RFC 3986 §2.3).
    return urllib.parse.quote(text, safe=safe)


def canonical_query(query: str) -> str:
    """The query's parameters, each name and value URI-encoded, sorted by name then value."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    encoded = sorted((_uri_encode(k, safe="-_.~"), _uri_encode(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    url: str,
    credentials: Credentials,
    *,
    region: str,
    service: str,
    amz_date: str,
    headers: Mapping[str, str] | None = None,
    payload_sha256: str = EMPTY_SHA256,
) -> dict[str, str]:
    """The headers that authenticate the request: Host, X-Amz-Date, (X-Amz-Security-Token), Authorization.

    Args:
        url: the full URL; its path is used as given (already URI-encoded, as Route 53 paths are).
        amz_date: the request time as `YYYYMMDDTHHMMSSZ` (UTC).
        headers: further headers to sign (names are case-insensitive, values trimmed).
    """
    parts = urllib.parse.urlsplit(url)
    signed: dict[str, str] = {"host": parts.netloc, "x-amz-date": amz_date}
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    for name, value in (headers or {}).items():
        signed[name.lower()] = " ".join(value.split())
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        [
            method,
            parts.path or "/",
            canonical_query(parts.query),
            canonical_headers,
            signed_headers,
            payload_sha256,
        ]
    )
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = signing_key(credentials.secret_access_key, date, region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    out = {
        "Host": parts.netloc,
        "X-Amz-Date": amz_date,
        "Authorization": f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}",
    }
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    return out
