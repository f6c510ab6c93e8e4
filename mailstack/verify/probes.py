"""Port probes of `verify`: connect, speak just enough SMTP/IMAP to reach TLS, and judge the certificate."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from dataclasses import dataclass

MAIL_PORTS = {25: "SMTP with STARTTLS", 465: "SMTP submission over implicit TLS", 993: "IMAP over implicit TLS"}
EHLO_NAME = "mailstack-verify"


@dataclass(frozen=True)
class Probe:
    """What one port did; at most one of the error fields is set."""

    connect_error: str = ""
    protocol_error: str = ""
    greeting: str = ""
    tls_error: str = ""
    cert_summary: str = ""
    """What the server presents, fetched without verification after `tls_error` (may stay empty)."""
    not_after: float | None = None


class _ProtocolError(Exception):
    """The server broke the exchange before TLS; the message is the report's detail."""


def tls_context(cafile: str | None) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or only `cafile` when given."""
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _unverifying_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def probe_port(
    address: str, port: int, hostname: str, context: ssl.SSLContext, *, starttls: bool, timeout: float
) -> Probe:
    """Connect, reach TLS (STARTTLS on SMTP, else implicit) and verify the certificate for `hostname`.

    Three steps, each bounded by `timeout`: the probe itself; after a rejected certificate, a
    second unverified connection to show what the server presents; closing every connection.
    Only the first decides the verdict: a slow re-fetch or a peer that never acknowledges the
    TLS close leaves out the certificate summary, it does not turn a result into "no answer".
    """
    connections = _Connections()
    try:
        try:
            probe = await asyncio.wait_for(
                _probe(connections, address, port, hostname, context, starttls=starttls), timeout
            )
        except TimeoutError:
            return Probe(
                connect_error=f"no answer within {timeout:g} s: a firewall drops the packets, or the ISP blocks the port"
            )
        if probe.tls_error:
            with contextlib.suppress(TimeoutError):
                summary = await asyncio.wait_for(
                    _presented(connections, address, port, hostname, starttls=starttls), timeout
                )
                probe = dataclasses.replace(probe, cert_summary=summary)
        return probe
    finally:
        await connections.close(timeout)


class _Connections:
    """Every connection one probe opens, so that all of them are closed whatever happened."""

    def __init__(self) -> None:
        self._writers: list[asyncio.StreamWriter] = []

    async def open(
        self, address: str, port: int, context: ssl.SSLContext | None = None, hostname: str | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=hostname)
        self._writers.append(writer)
        return reader, writer

    async def close(self, timeout: float) -> None:
        await asyncio.gather(*(_close(writer, timeout) for writer in self._writers))


async def _close(writer: asyncio.StreamWriter, timeout: float) -> None:
    if writer.transport.is_closing():
        return  # closed already (asyncio closes the socket when a STARTTLS handshake fails)
    writer.close()
    try:
        # A TLS close waits for the peer's close_notify; a peer that never sends it is cut off.
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (TimeoutError, OSError):
        writer.transport.abort()


async def _probe(
    connections: _Connections, address: str, port: int, hostname: str, context: ssl.SSLContext, *, starttls: bool
) -> Probe:
    try:
        if starttls:
            reader, writer = await connections.open(address, port)
        else:
            reader, writer = await connections.open(address, port, context, hostname)
    except ssl.SSLError as e:
        return Probe(greeting="TCP open", tls_error=_tls_reason(e))
    except ConnectionRefusedError:
        return Probe(connect_error="connection refused: nothing listens there, or a firewall rejects it")
    except OSError as e:
        return Probe(connect_error=e.strerror or str(e))
    try:
        if starttls:
            greeting = await _smtp_starttls(reader, writer)
            try:
                await writer.start_tls(context, server_hostname=hostname)
            except ssl.SSLError as e:
                return Probe(greeting=greeting, tls_error=_tls_reason(e))
        else:
            greeting = (await _read_line(reader)).strip()
    except _ProtocolError as e:
        return Probe(protocol_error=str(e))
    except OSError as e:
        return Probe(protocol_error=f"connection failed during the exchange: {e}")
    peer = writer.get_extra_info("peercert") or {}
    not_after = ssl.cert_time_to_seconds(peer["notAfter"]) if "notAfter" in peer else None
    return Probe(greeting=greeting or "TLS handshake done", not_after=not_after)


async def _presented(connections: _Connections, address: str, port: int, hostname: str, *, starttls: bool) -> str:
    """The certificate the server presents, fetched without verifying it ("" when that fails too)."""
    context = _unverifying_context()
    try:
        if starttls:
            reader, writer = await connections.open(address, port)
            await _smtp_starttls(reader, writer)
            await writer.start_tls(context, server_hostname=hostname)
        else:
            _, writer = await connections.open(address, port, context, hostname)
    except (OSError, _ProtocolError):
        return ""
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    return cert_summary(der) if der else ""


async def _read_line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readline()
    except ValueError as e:  # asyncio's 64 KiB line limit
        raise _ProtocolError("the server sent a line longer than 64 KiB without an end") from e
    return raw.decode("utf-8", errors="replace")


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One (possibly multi-line) SMTP reply: code and text lines (RFC 5321 §4.2)."""
    lines: list[str] = []
    while True:
        raw = await _read_line(reader)
        if not raw:
            raise ConnectionError("connection closed by the server")
        line = raw.rstrip("\r\n")
        lines.append(line[4:])
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]) if line[:3].isdigit() else 0, lines


async def _smtp_starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    """Greeting, EHLO and STARTTLS up to the server's go-ahead (RFC 3207 §4); returns the greeting.

    Raises:
        _ProtocolError: a refusal at any step, or no STARTTLS in the EHLO reply.
    """
    code, lines = await _smtp_reply(reader)
    if code != 220:
        raise _ProtocolError(f"greeting {code} {' '.join(lines)}")
    greeting = lines[0]
    writer.write(f"EHLO {EHLO_NAME}\r\n".encode())
    code, lines = await _smtp_reply(reader)
    if code != 250 or not any(line.upper().split()[:1] == ["STARTTLS"] for line in lines if line):
        raise _ProtocolError("STARTTLS is not offered after EHLO (mail would travel in clear text)")
    writer.write(b"STARTTLS\r\n")
    code, lines = await _smtp_reply(reader)
    if code != 220:
        raise _ProtocolError(f"STARTTLS refused: {code} {' '.join(lines)}")
    return greeting


def _tls_reason(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not accepted: {error.verify_message}"
    return f"TLS handshake failed: {error.reason or error}"


def cert_summary(der: bytes) -> str:
    """Subject, names and validity of a certificate, for the report."""
    # Imported here: only a rejected certificate needs it, and it costs ~40 ms of every start-up.
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        names = []
    except (ValueError, x509.DuplicateExtension) as e:
        # OpenSSL accepted it for the handshake; cryptography parses more strictly.
        return f"presents a certificate that does not parse: {e}"
    issuer = "self-signed" if cert.issuer == cert.subject else f"issuer {cert.issuer.rfc4514_string()}"
    return (
        f"presents {cert.subject.rfc4514_string()}, names {', '.join(names) or 'none'}, {issuer}, "
        f"valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}"
    )


async def presented_certificate(
    address: str, port: int, hostname: str, *, starttls: bool, timeout: float
) -> tuple[bytes | None, str]:
    """The leaf certificate (DER) the server presents, fetched without verifying it, or an error.

    DANE-EE (`3 1 1`) deliberately ignores the CA chain and the names (RFC 7672 §3.1.1): what counts
    is the key, so the certificate is read whatever a PKIX check would say of it.
    """
    connections = _Connections()
    try:
        try:
            if starttls:
                reader, writer = await asyncio.wait_for(connections.open(address, port), timeout)
                await asyncio.wait_for(_smtp_starttls(reader, writer), timeout)
                await asyncio.wait_for(writer.start_tls(_unverifying_context(), server_hostname=hostname), timeout)
            else:
                _, writer = await asyncio.wait_for(
                    connections.open(address, port, _unverifying_context(), hostname), timeout
                )
        except TimeoutError:
            return None, f"no answer within {timeout:g} s"
        except _ProtocolError as e:
            return None, str(e)
        except (OSError, ssl.SSLError) as e:
            return None, f"{type(e).__name__}: {e}"
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        return (der, "") if der else (None, "no certificate presented")
    finally:
        await connections.close(timeout)
