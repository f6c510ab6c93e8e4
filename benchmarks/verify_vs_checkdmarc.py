"""`verify` vs checkdmarc on the same 100 mail domains, served by one local knotd.

    python benchmarks/verify_vs_checkdmarc.py [--domains 100] [--rounds 7] [--json-too]

Whole processes, as a user runs them: every round starts each tool as a fresh process
(`python -m mailstack.verify --outputs FILE ...` with its default output, and the `checkdmarc`
command), so neither has a warm DNS cache (checkdmarc keeps one per process) and both pay their
start-up and imports. The order alternates between rounds (interleaved) so that a slow moment of
this shared machine does not fall on one tool only. Standard output goes to a pipe, as in
`verify ... | less` or a CI log.

Both tools ask the same knotd on 127.0.0.2 port 53 (it answers authoritatively for every zone, so
it also serves as the "resolver"); nothing leaves loopback. The questions are counted by the
server itself (Knot's mod-stats, per transport), so UDP and TCP count alike and neither tool's
code is patched. Port 53 needs root (the checkdmarc command line takes no port); the benchmark
says so when it cannot bind it.

verify checks more per domain (every expected record at the zone's nameservers and at the
resolver, DKIM key match, PTR); checkdmarc checks SOA, NS, DNSSEC, MTA-STS, TLS-RPT and BIMI that
verify does not. The point is the wall-clock time of "check 100 domains", each tool doing its
normal job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.dnsserver import KnotServer  # noqa: E402 - after the path setup above
from tests.verify_zones import HOST, domain_records, host_records, outputs, reverse_zones, zone  # noqa: E402

ADDRESS = "127.0.0.2"
PORT = 53


def stack(count: int) -> tuple[dict[str, Any], dict[str, str]]:
    """`count` mail domains d000.test… served by the one server, plus the host and PTR zones."""
    records = list(host_records())
    zones = dict(reverse_zones())
    for i in range(count):
        domain = f"d{i:03d}.test"
        own = domain_records(domain)
        records += own
        zones[domain] = zone(domain, own)
    zones["example.com"] = zone("example.com", records)
    return outputs(records), zones


@dataclass(frozen=True)
class Run:
    seconds: float
    udp: int
    tcp: int
    lines: int
    exit_code: int


def measure(command: Sequence[str], server: KnotServer) -> Run:
    """One fresh process: wall time from start to exit, questions the server saw, output lines."""
    before = server.request_counts()
    env = {**os.environ, "COLUMNS": "80"}  # what a pipe gets anyway; fixed so line counts compare
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, cwd=ROOT, env=env, check=False)
    seconds = time.perf_counter() - started
    after = server.request_counts()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    if result.returncode not in (0, 1):
        sys.stderr.write(result.stderr.decode(errors="replace"))
    return Run(
        seconds,
        delta.get("udp4", 0) + delta.get("udp6", 0),
        delta.get("tcp4", 0) + delta.get("tcp6", 0),
        result.stdout.count(b"\n"),
        result.returncode,
    )


def spread(runs: Sequence[Run]) -> str:
    times = [r.seconds for r in runs]
    return f"min {min(times):6.3f}  median {statistics.median(times):6.3f}  max {max(times):6.3f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7, help="fresh processes per tool (default 7)")
    parser.add_argument("--json-too", action="store_true", help="also time `verify --json`")
    args = parser.parse_args()
    checkdmarc = shutil.which("checkdmarc", path=str(Path(sys.executable).parent)) or shutil.which("checkdmarc")
    if checkdmarc is None:
        print("checkdmarc is not installed (pip install -r requirements-dev.txt)", file=sys.stderr)
        return 2
    # What Python does on a user's first run (and pip at install time): byte-compile mailstack. The
    # installed checkdmarc has its .pyc files already; with PYTHONDONTWRITEBYTECODE set (as on CI
    # machines), verify would otherwise compile its own modules again in every round.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mailstack")], check=True)
    data, zones = stack(args.domains)
    domains = [r["name"] for r in data["dnsRecords"] if r["type"] == "MX"]
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as tmp:
        outputs_file = Path(tmp) / "outputs.json"
        outputs_file.write_text(json.dumps(data))
        verify = [
            sys.executable,
            "-m",
            "mailstack.verify",
            "--outputs",
            str(outputs_file),
            "--resolver",
            f"{ADDRESS}:{PORT}",
            "--ns-port",
            str(PORT),
            "--skip",
            "ports",  # nothing listens on 25/465/993 here
        ]
        tools: dict[str, list[str]] = {
            "verify": verify,
            "checkdmarc": [checkdmarc, *domains, "-n", ADDRESS],  # -n takes a list: it goes last
        }
        if args.json_too:
            tools["verify --json"] = [*verify, "--json"]
        runs: dict[str, list[Run]] = {name: [] for name in tools}
        try:
            server = KnotServer(zones, address=ADDRESS, port=PORT, stats=True)
        except OSError as e:
            print(f"cannot serve DNS on {ADDRESS}:{PORT} ({e}): run as root", file=sys.stderr)
            return 2
        with server:
            names = list(tools)
            for round_ in range(args.rounds):
                # Interleaved: the first tool of a round alternates.
                order = names if round_ % 2 == 0 else names[::-1]
                for name in order:
                    runs[name].append(measure(tools[name], server))
    print(f"{len(domains)} domains + {HOST}, one knotd on {ADDRESS}:{PORT}, {args.rounds} rounds, a fresh process each")
    for name, results in runs.items():
        first = results[0]
        print(
            f"  {name:<14} {spread(results)}  ({first.udp} UDP + {first.tcp} TCP questions,"
            f" {first.lines} output lines, exit {first.exit_code})"
        )
    ratios = [c.seconds / v.seconds for v, c in zip(runs["verify"], runs["checkdmarc"], strict=True)]
    print("  per round      " + "  ".join(f"{r:.2f}x" for r in ratios) + "  (checkdmarc time / verify time)")
    print(f"  ratio          min {min(ratios):.2f}x  median {statistics.median(ratios):.2f}x  max {max(ratios):.2f}x")
    return 0 if all(r.exit_code == 0 for r in runs["verify"]) else 1


if __name__ == "__main__":
    sys.exit(main())
