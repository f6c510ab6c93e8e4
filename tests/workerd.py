"""The Cloudflare Workers runtime (workerd) on loopback, running a Worker script as Cloudflare would.

Usage::

    with Workerd(script_text) as worker:
        urllib.request.urlopen(worker.request("https://mta-sts.example.org/.well-known/mta-sts.txt"))

workerd comes from npm (`workerd`, the binary ships in @cloudflare/workerd-linux-64); `.ci/run`
installs the pinned version into `.ci/cache/npm`. A missing binary skips the test (fails under CI=true).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.tools import find, missing

ROOT = Path(__file__).resolve().parent.parent
LOCAL_BINARY = ROOT / ".ci" / "cache" / "npm" / "node_modules" / ".bin" / "workerd"
STARTUP_TIMEOUT = 20.0


def require_workerd() -> str:
    if LOCAL_BINARY.exists():
        return str(LOCAL_BINARY)
    path = find("workerd")
    if path is None:
        missing(
            "workerd is not installed: npm install --prefix .ci/cache/npm workerd@<version in .ci/run> "
            "(or run `bash .ci/run`, which installs it)"
        )
    assert path is not None
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "main")],
);

const worker :Workerd.Worker = (
  modules = [(name = "{module}", esModule = embed "{module}")],
  compatibilityDate = "{date}",
);
"""


class Workerd:
    """workerd serving one ES-module Worker over plain HTTP on 127.0.0.1 (TLS is Cloudflare's edge)."""

    def __init__(self, script: str, *, module: str, compatibility_date: str) -> None:
        self.script = script
        self.module = module
        self.date = compatibility_date
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Workerd:
        binary = require_workerd()
        self._dir = tempfile.TemporaryDirectory(prefix="mailstack-workerd-")
        work = Path(self._dir.name)
        (work / self.module).write_text(self.script)
        self.port = _free_port()
        config = CONFIG.format(port=self.port, module=self.module, date=self.date)
        (work / "config.capnp").write_text(config)
        log = (work / "workerd.log").open("wb")
        self._proc = subprocess.Popen(
            [binary, "serve", "config.capnp", "--verbose"], cwd=work, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"workerd exited: {(work / 'workerd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"workerd did not listen in {STARTUP_TIMEOUT} s: {(work / 'workerd.log').read_text()}")

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._dir is not None:
            self._dir.cleanup()

    def request(self, url: str, *, method: str = "GET", data: bytes | None = None) -> urllib.request.Request:
        """A request for `url` (the public https URL) sent to this workerd, its host in the Host header."""
        parts = urllib.parse.urlsplit(url)
        local = f"http://127.0.0.1:{self.port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        return urllib.request.Request(local, data=data, method=method, headers={"Host": parts.netloc})
