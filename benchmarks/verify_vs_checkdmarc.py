"""`verify` vs checkdmarc on the same 100 mail domains, served by one local knotd.

    python benchmarks/verify_vs_checkdmarc.py [--domains 100] [--rounds 3]

Both tools ask the same knotd on 127.0.0.2 (it answers authoritatively for every zone, so it also
serves as the "resolver"); nothing leaves loopback. checkdmarc takes `dns.nameserver.Do53Nameserver`
objects in `nameservers=`, which carry a port, so no root-only port 53 is needed. verify checks
more per domain (every record at the zone's nameservers and the resolver, DKIM key match, PTR);
checkdmarc checks SOA, NS, DNSSEC, MTA-STS, TLS-RPT and BIMI that verify does not. The point is
the wall-clock time of "check 100 domains", with each tool doing its normal job.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import checkdmarc
import dns.nameserver
import dns.query

from mailstack.verify import run
from mailstack.verify_checks import Status, parse_outputs
from mailstack.verify_dns import Endpoint
from mailstack.verify_groups import Checks, Options
from tests.dnsserver import KnotServer
from tests.verify_zones import HOST, domain_records, host_records, outputs, reverse_zones, zone

ADDRESS = "127.0.0.2"


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


def run_verify(data: dict[str, Any], port: int) -> tuple[float, int, int, int]:
    """Seconds, DNS questions, findings, findings not ok (all groups but ports: nothing listens on 25/465/993)."""
    endpoint = Endpoint(ADDRESS, port)
    options = Options(resolver=endpoint, ns_port=port, skip=frozenset({"ports"}))
    started = time.perf_counter()
    checks = Checks(parse_outputs(data), options)
    findings = asyncio.run(run(checks))
    elapsed = time.perf_counter() - started
    return elapsed, checks.dns.questions, len(findings), sum(f.status != Status.OK for f in findings)


def run_checkdmarc(domains: list[str], port: int) -> tuple[float, int, int]:
    """Seconds, UDP queries sent and domain results of checkdmarc's library API against the same server."""
    nameserver = dns.nameserver.Do53Nameserver(ADDRESS, port)
    sent = 0
    udp = dns.query.udp

    def counting_udp(*args: Any, **kwargs: Any) -> Any:  # counts only; the query is checkdmarc's own
        nonlocal sent
        sent += 1
        return udp(*args, **kwargs)

    dns.query.udp = counting_udp
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # skip_tls is deprecated (it is the default now)
            results = checkdmarc.check_domains(domains, nameservers=[nameserver], skip_tls=True, timeout=2.0)
    finally:
        dns.query.udp = udp
    elapsed = time.perf_counter() - started
    return elapsed, sent, len(results) if isinstance(results, list) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="runs per tool; the median is reported")
    args = parser.parse_args()
    data, zones = stack(args.domains)
    domains = [r["name"] for r in data["dnsRecords"] if r["type"] == "MX"]
    with KnotServer(zones, address=ADDRESS) as server:
        verify_runs = [run_verify(data, server.port) for _ in range(args.rounds)]
        checkdmarc_runs = [run_checkdmarc(domains, server.port) for _ in range(args.rounds)]
    verify_time = statistics.median(r[0] for r in verify_runs)
    checkdmarc_time = statistics.median(r[0] for r in checkdmarc_runs)
    _, questions, findings, not_ok = verify_runs[0]
    _, sent, results = checkdmarc_runs[0]
    print(f"{len(domains)} domains + {HOST}, one knotd on {ADDRESS}, median of {args.rounds} runs")
    print(f"  verify     {verify_time:7.3f} s  ({questions} DNS questions, {findings} findings, {not_ok} not ok)")
    print(f"  checkdmarc {checkdmarc_time:7.3f} s  ({sent} DNS queries, {results} domain results)")
    print(f"  ratio      {checkdmarc_time / verify_time:7.1f}x (checkdmarc time / verify time)")
    return 0 if not_ok == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
