"""A real authoritative DNS server (Knot DNS's knotd) on loopback, for tests.

Usage::

    with KnotServer({"example.com": ZONE_TEXT}, address="127.0.0.2") as ns:
        dns.query.udp(query, ns.address, port=ns.port)

Each instance runs its own knotd with a generated knot.conf, zone files, control socket and
database in a private temporary directory, so several servers (e.g. two nameservers of one zone
with different content) can run side by side on 127.0.0.x addresses.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone

from tests.tools import find, require

STARTUP_TIMEOUT = 10.0


class KnotError(RuntimeError):
    """knotd did not start, or did not serve the zones it was given (message has its log)."""


def _tool(name: str) -> str:
    # Inside a test: skipped with the package to install (failed under CI=true), see tests/tools.py;
    # a benchmark gets a plain error.
    if "PYTEST_CURRENT_TEST" in os.environ:
        return require(name)
    path = find(name)
    if path is None:
        raise KnotError(f"{name} is not installed (Debian packages knot and knot-dnsutils; .ci/run installs them)")
    return path


def free_port(address: str = "127.0.0.1") -> int:
    """A port that is free for both UDP and TCP on `address` (DNS needs both)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((address, port))
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        continue
                    raise
                return port
    raise KnotError(f"no free UDP+TCP port on {address}")


def _serial(zone: str, text: str) -> int:
    """SOA serial of a zone text; also proves the text parses before knotd sees it."""
    try:
        parsed = dns.zone.from_text(text, origin=zone, relativize=False, check_origin=True)
    except dns.exception.DNSException as e:
        raise KnotError(f"zone text for {zone} does not parse: {e}") from e
    soa = parsed.get_rdataset(zone + ".", dns.rdatatype.SOA)
    if soa is None:
        raise KnotError(f"zone {zone} has no SOA record")
    return int(soa[0].serial)


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key as knot.conf and dnspython both name it."""

    name: str
    algorithm: str
    secret: str
    """Base64."""


class KnotServer:
    """knotd serving `zones` (zone name → BIND zone-file text) on `address`:`port`.

    Args:
        zones: zone name → zone file text (with SOA and NS; relative names are relative to the zone).
        address: loopback address to listen on (127.0.0.x or ::1).
        port: UDP/TCP port; a free one is picked when None.
        stats: count requests by transport (Knot's mod-stats), read with `request_counts()`.
        tsig: a TSIG key that may update and transfer every zone (Knot's `acl` with `action: [update,
            transfer]`); without it, updates and transfers are refused.
        signed: zones Knot signs itself (automatic DNSSEC signing, default policy: ECDSA P-256);
            `dnskey(zone)` gives their keys, for a validating resolver's trust anchor.
    """

    def __init__(
        self,
        zones: Mapping[str, str],
        address: str = "127.0.0.1",
        port: int | None = None,
        *,
        stats: bool = False,
        tsig: TsigKey | None = None,
        signed: Collection[str] = (),
    ) -> None:
        self.address = address
        self._stats = stats
        self._tsig = tsig
        self._signed = frozenset(signed)
        self.port = port if port is not None else free_port(address)
        self._zones: dict[str, str] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="knotd-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._knotc = _tool("knotc")
        try:
            (self._dir / "zones").mkdir()
            (self._dir / "db").mkdir()
            self._write(zones)
        except BaseException:
            self.stop()
            raise
        self._start()

    # -- files -----------------------------------------------------------------------------------

    @property
    def _conf(self) -> Path:
        return self._dir / "knot.conf"

    @property
    def _socket(self) -> Path:
        return self._dir / "knot.sock"

    @property
    def _log(self) -> Path:
        return self._dir / "knotd.log"

    def _write(self, zones: Mapping[str, str]) -> None:
        normalized = {dns.name.from_text(z).to_text(omit_final_dot=True).lower(): t for z, t in zones.items()}
        for zone, text in normalized.items():
            _serial(zone, text)
        for old in (self._dir / "zones").iterdir():
            old.unlink()
        for zone, text in normalized.items():
            (self._dir / "zones" / f"{zone}.zone").write_text(text if text.endswith("\n") else text + "\n")
        self._zones = normalized
        listen = f"{self.address}@{self.port}"
        zone_lines = "".join(
            f"  - domain: {zone}\n" + ("    dnssec-signing: on\n" if zone in self._signed else "")
            for zone in sorted(normalized)
        )
        # journal-content none + zonefile-load whole: every load reads the zone file as-is, so a
        # replaced file is served even when its SOA serial did not change (the stale-nameserver test
        # relies on two servers with the same serial and different records).
        self._conf.write_text(
            "server:\n"
            f'  rundir: "{self._dir}"\n'
            "  user: root:root\n"
            f'  pidfile: "{self._dir}/knotd.pid"\n'
            f"  listen: {listen}\n"
            "  udp-workers: 2\n"
            "  tcp-workers: 2\n"
            "  background-workers: 1\n"
            "control:\n"
            f'  listen: "{self._socket}"\n'
            "database:\n"
            f'  storage: "{self._dir / "db"}"\n'
            "log:\n"
            "  - target: stderr\n"
            "    any: info\n"
            + (
                # Knot's mod-stats counts every request by transport (udp4/tcp4/udp6/tcp6), whoever sends it.
                "mod-stats:\n  - id: counts\n    request-protocol: on\n" if self._stats else ""
            )
            + (
                # RFC 2136 updates and RFC 5936 transfers, only with this key (Knot's acl section).
                f"key:\n  - id: {self._tsig.name}\n    algorithm: {self._tsig.algorithm}\n"
                f"    secret: {self._tsig.secret}\n"
                f"acl:\n  - id: tsig-update\n    key: {self._tsig.name}\n    action: [update, transfer]\n"
                if self._tsig
                else ""
            )
            + "template:\n"
            "  - id: default\n"
            + ("    acl: tsig-update\n" if self._tsig else "")
            + ("    global-module: mod-stats/counts\n" if self._stats else "")
            + f'    storage: "{self._dir / "zones"}"\n'
            '    file: "%s.zone"\n'
            "    zonefile-sync: -1\n"
            "    zonefile-load: whole\n"
            "    journal-content: none\n"
            "    semantic-checks: off\n" + ("zone:\n" + zone_lines if zone_lines else "")
        )

    # -- process ---------------------------------------------------------------------------------

    def _start(self) -> None:
        log = self._log.open("ab")
        try:
            self._proc = subprocess.Popen([_tool("knotd"), "-c", str(self._conf)], stdout=log, stderr=log)
        finally:
            log.close()
        try:
            self._wait_until_serving(time.monotonic() + STARTUP_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _wait_until_serving(self, deadline: float) -> None:
        """Block until every zone answers SOA authoritatively with the serial of its zone text."""
        pending = {zone: _serial(zone, text) for zone, text in self._zones.items()}
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise KnotError(f"knotd exited with {self._proc.returncode}:\n{self.log()}")
            for zone, serial in list(pending.items()):
                found = self._soa_serial(zone)
                # Signing bumps the serial (Knot's serial-policy increment).
                if found == serial or (zone in self._signed and found is not None and found > serial):
                    del pending[zone]
            if not pending and (self._zones or self._socket.exists()):
                return
            if time.monotonic() > deadline:
                raise KnotError(f"knotd did not serve {sorted(pending)} on {self.address}@{self.port}:\n{self.log()}")
            time.sleep(0.02)

    def _soa_serial(self, zone: str) -> int | None:
        query = dns.message.make_query(zone, dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, self.address, port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return None
        if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA or not response.answer:
            return None
        return int(response.answer[0][0].serial)

    def _control(self, *args: str) -> None:
        result = subprocess.run(
            [self._knotc, "-c", str(self._conf), "-s", str(self._socket), *args],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise KnotError(f"knotc {' '.join(args)} failed: {result.stdout}{result.stderr}\n{self.log()}")

    def request_counts(self) -> dict[str, int]:
        """Requests served so far by transport (`udp4`, `tcp4`, ...); needs `stats=True`."""
        result = subprocess.run(
            [self._knotc, "-c", str(self._conf), "-s", str(self._socket), "stats", "mod-stats.request-protocol"],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise KnotError(f"knotc stats failed: {result.stdout}{result.stderr}")
        # Lines look like `mod-stats.request-protocol[udp4] = 1810`; a transport never used is absent.
        counts: dict[str, int] = {}
        for line in result.stdout.splitlines():
            name, sep, value = line.partition("] = ")
            if sep and "[" in name:
                counts[name.rsplit("[", 1)[1]] = int(value)
        return counts

    def replace_zones(self, zones: Mapping[str, str]) -> None:
        """Serve `zones` instead of the current ones (config + zone reload through knotc)."""
        self._write(zones)
        self._control("reload")
        if self._zones:
            # `reload` skips zone files whose mtime looks unchanged within the same second; a
            # forced blocking zone-reload makes the new text live before we return.
            self._control("-b", "-f", "zone-reload", *sorted(self._zones))
        self._wait_until_serving(time.monotonic() + STARTUP_TIMEOUT)

    def dnskey(self, zone: str) -> list[str]:
        """The zone's DNSKEY records in presentation form (`example.com. 3600 IN DNSKEY 257 3 13 ...`)."""
        query = dns.message.make_query(zone, dns.rdatatype.DNSKEY)
        response = dns.query.tcp(query, self.address, port=self.port, timeout=2)
        return [f"{rrset.name} {rrset.ttl} IN DNSKEY {rd}" for rrset in response.answer for rd in rrset]

    def log(self) -> str:
        """knotd's log so far (for failure messages)."""
        try:
            return self._log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Stop knotd and remove its directory; safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._dir)

    def __enter__(self) -> KnotServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
