"""A real validating resolver (Unbound) on loopback, in front of tests/dnsserver.py's knotd.

Usage::

    with KnotServer(zones, signed={"example.com"}) as ns, Unbound(ns, anchors=ns.dnskey("example.com")) as r:
        ...  # r.address, r.port: answers for example.com carry the AD bit, the others do not

Unbound forwards nothing: a stub zone per served zone points at the knotd, and the only trust
anchors are the ones given (no root key: every other zone is insecure by construction).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query

from tests.dnsserver import KnotServer, free_port
from tests.tools import require

STARTUP_TIMEOUT = 10.0


class Unbound:
    def __init__(
        self, upstream: KnotServer, zones: Sequence[str], *, anchors: Sequence[str], address: str = "127.0.0.1"
    ) -> None:
        self.address = address
        self.port = free_port(address)
        self._upstream = upstream
        self._zones = zones
        self._anchors = anchors
        self._dir = Path(tempfile.mkdtemp(prefix="unbound-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Unbound:
        binary = require("unbound", package="unbound")
        anchors = "".join(f'  trust-anchor: "{a}"\n' for a in self._anchors)
        stubs = "".join(
            f'stub-zone:\n  name: "{z}"\n  stub-addr: {self._upstream.address}@{self._upstream.port}\n'
            for z in self._zones
        )
        conf = self._dir / "unbound.conf"
        conf.write_text(
            "server:\n"
            f"  interface: {self.address}@{self.port}\n"
            "  do-daemonize: no\n"
            '  username: ""\n'
            '  chroot: ""\n'
            f'  directory: "{self._dir}"\n'
            '  pidfile: ""\n'
            "  use-syslog: no\n"
            f'  logfile: "{self._dir / "unbound.log"}"\n'
            "  do-not-query-localhost: no\n"
            '  module-config: "validator iterator"\n'
            "  num-threads: 1\n"
            "  verbosity: 1\n" + anchors + stubs
        )
        self._proc = subprocess.Popen(
            [binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        query = dns.message.make_query(self._zones[0], "SOA")
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"unbound exited: {self.log()}")
            try:
                dns.query.udp(query, self.address, port=self.port, timeout=0.3)
                return self
            except (dns.exception.Timeout, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"unbound did not answer: {self.log()}") from None

    def log(self) -> str:
        path = self._dir / "unbound.log"
        return path.read_text() if path.exists() else ""

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
