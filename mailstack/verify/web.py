"""HTTPS fetches of `verify` (MTA-STS policies, autoconfig documents): verified TLS, no redirects."""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
from dataclasses import dataclass

from mailstack.verify.dnsclient import Endpoint

MAX_BODY = 64 * 1024
"""RFC 8461 §3.3: senders may refuse policies larger than 64 KiB; nothing served here is bigger."""


@dataclass(frozen=True)
class HttpReply:
    status: int = 0
    content_type: str = ""
    """The media type without parameters, lowercase."""
    body: bytes = b""
    location: str = ""
    error: str = ""
    """Set when no HTTP answer came (connection, TLS, timeout); then the other fields are empty."""


class _Connection(http.client.HTTPSConnection):
    """HTTPS to `host`, optionally at another address (tests, split horizon): SNI and Host stay `host`."""

    def __init__(self, host: str, endpoint: Endpoint | None, context: ssl.SSLContext, timeout: float) -> None:
        # Port 443 as far as HTTP is concerned (the Host header carries no port); the socket may go elsewhere.
        super().__init__(host, 443, context=context, timeout=timeout)
        self._endpoint = endpoint
        self._tls = context

    def connect(self) -> None:
        address = (self._endpoint.host, self._endpoint.port) if self._endpoint else (self.host, self.port)
        raw = socket.create_connection(address, self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _fetch(
    url: str, method: str, body: bytes | None, *, context: ssl.SSLContext, endpoint: Endpoint | None, timeout: float
) -> HttpReply:
    host, _, path = url.removeprefix("https://").partition("/")
    connection = _Connection(host, endpoint, context, timeout)
    headers = {"User-Agent": "mailstack-verify", "Connection": "close"}
    if body is not None:
        headers["Content-Type"] = "text/xml"
    try:
        connection.request(method, "/" + path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(MAX_BODY + 1)
    except ssl.SSLCertVerificationError as e:
        return HttpReply(error=f"certificate not accepted: {e.verify_message}")
    except ssl.SSLError as e:
        return HttpReply(error=f"TLS handshake failed: {e.reason or e}")
    except TimeoutError:
        return HttpReply(error=f"no answer within {timeout:g} s")
    except ConnectionRefusedError:
        return HttpReply(error="connection refused: nothing listens on port 443 there")
    except (OSError, http.client.HTTPException) as e:
        return HttpReply(error=f"{type(e).__name__}: {e}")
    finally:
        connection.close()
    media = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
    return HttpReply(response.status, media, data, response.getheader("Location") or "")


async def fetch(
    url: str,
    *,
    context: ssl.SSLContext,
    endpoint: Endpoint | None,
    timeout: float,
    method: str = "GET",
    body: bytes | None = None,
) -> HttpReply:
    """One HTTPS request, in a worker thread (http.client blocks). Redirects are reported, not followed:
    RFC 8461 §3.3 forbids following them for the policy, and a client setup URL that redirects is
    worth knowing about."""
    return await asyncio.to_thread(_fetch, url, method, body, context=context, endpoint=endpoint, timeout=timeout)
