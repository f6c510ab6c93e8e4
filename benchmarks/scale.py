"""Scale benchmark: evaluate the whole program for growing numbers of domains and accounts.

Each size runs in its own Python process, so peak memory (ru_maxrss) of one size does not mix with
another's and every size pays the same start-up cost. Configs are the production example
(SSH target, Cloudflare DNS, Let's Encrypt, Brevo relay) with N generated domains, M accounts per
domain (given passwords, set as secrets) and 2 aliases per domain.

    python -m benchmarks.scale                 # print the table (Markdown)
    python -m benchmarks.scale --write         # also replace the table in docs/proofs.md
    python -m benchmarks.scale --repeat 9      # runs per size (default 5); the table shows the median
    python -m benchmarks.scale --one 100 10    # one size, JSON on stdout (what the parent runs)

Targets on a 2-core machine: 100 domains x 10 accounts in under 10 s and 400 MB; the resource count
grows with domains, not with accounts (the 10 x 100 row shows it).

Every size runs several times, each in a fresh process, and the table gives the median with the
range: on the 2-core VMs here one size's wall time varies by +-20 % from run to run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROOFS_DOC = ROOT / "docs" / "proofs.md"
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"
SIZES: tuple[tuple[int, int], ...] = ((1, 10), (10, 10), (100, 10), (10, 100))
"""(domains, accounts per domain)."""
ALIASES_PER_DOMAIN = 2
SECRET_KEYS = ("mailstack:accounts", "mailstack:relay", "cloudflare:apiToken")
REPEAT = 5
SDK_MODULES = ("pulumi_cloudflare", "pulumi_command", "pulumi_docker", "pulumi_random", "pulumi_tls")
"""Imported before the clock starts: importing them is the program's first lines, not its work.
pulumi_cloudflare alone takes ~2.3 s (it loads ~800 modules eagerly), the same for 1 or 100 domains."""


def domain_name(index: int) -> str:
    return f"domain{index:03d}.example.org"


def scale_config(domains: int, accounts_per_domain: int) -> dict[str, str]:
    """The production example with generated domains, accounts (with passwords) and aliases."""
    from tools.harness import stack_config
    from tools.stacks import PROD_EXAMPLE

    config = stack_config(PROD_EXAMPLE)
    template = json.loads(config["mailstack:domains"])["example.com"]
    names = [domain_name(i) for i in range(domains)]
    config["mailstack:domains"] = json.dumps(
        {d: {**template, "dmarc": {**template["dmarc"], "rua": [f"mailto:postmaster@{d}"], "ruf": []}} for d in names}
    )
    config["mailstack:accounts"] = json.dumps(
        {
            f"user{j:03d}@{d}": {"password": f"passphrase {i}-{j} for the benchmark", "quota": "1G"}
            for i, d in enumerate(names)
            for j in range(accounts_per_domain)
        }
    )
    config["mailstack:aliases"] = json.dumps(
        {alias: f"user000@{d}" for d in names for alias in (f"postmaster@{d}", f"abuse@{d}")[:ALIASES_PER_DOMAIN]}
    )
    relay = json.loads(config["mailstack:relay"])
    config["mailstack:relay"] = json.dumps({**relay, "username": f"relay@{names[0]}", "password": "xsmtpsib-bench"})
    config["cloudflare:apiToken"] = "cf-token-benchmark"
    return config


def measure_one(domains: int, accounts_per_domain: int) -> dict[str, Any]:
    """Evaluate one size in this process; return counts, wall and CPU time and peak memory.

    tools.evaluate is tools.harness.run_program with the proof mocks (see tools/__init__.py).
    """
    import importlib

    from tools import evaluate, example_home, harness

    # Not what is measured: SDK imports and the mock's RSA key pool (pulumi-tls generates keys in
    # the provider, not in the program).
    for module in ("components.mail_dns", "components.mail_server", *SDK_MODULES):
        importlib.import_module(module)
    for index in range(harness.KEY_POOL_SIZE):
        harness.rsa_key_pem(2048, index)
    config = scale_config(domains, accounts_per_domain)
    with example_home():
        start, cpu_start = time.perf_counter(), time.process_time()
        result = evaluate(config, SECRET_KEYS, stack="prod")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if result.error is not None:
        raise SystemExit(f"evaluation failed: {result.error}")
    # Linux reports ru_maxrss in KiB. RUSAGE_CHILDREN's ru_maxrss is no use for the hash workers: a
    # child keeps its parent's high-water mark across fork and exec. Their CPU time is exact.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "domains": domains,
        "accounts": domains * accounts_per_domain,
        "aliases": domains * ALIASES_PER_DOMAIN,
        "resources": len(result.resources),
        "custom_resources": sum(1 for r in result.resources if r.custom),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "worker_cpu_seconds": round(children.ru_utime + children.ru_stime, 2),
        "peak_rss_mb": round(own, 1),
    }


def measure_baseline(count: int) -> dict[str, Any]:
    """The mock runtime alone: `count` bare DnsRecords (tests/programs/proofs_baseline.py), nothing computed."""
    import pulumi_cloudflare

    from tools import evaluate

    assert pulumi_cloudflare
    start = time.perf_counter()
    result = evaluate({"proofs:count": str(count)}, program=ROOT / "tests" / "programs" / "proofs_baseline.py")
    seconds = time.perf_counter() - start
    if result.error is not None:
        raise SystemExit(f"evaluation failed: {result.error}")
    return {"resources": len(result.resources), "seconds": round(seconds, 2)}


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _repeated(args: tuple[str, ...], repeat: int) -> dict[str, Any]:
    """Run one child `repeat` times; medians of the times, the largest memory, each run's seconds."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        runs.append({**_child(*args), "process_seconds": round(time.perf_counter() - start, 2)})
    row = dict(runs[0])
    for key in ("seconds", "process_seconds", "cpu_seconds", "worker_cpu_seconds"):
        if key in row:
            row[key] = round(statistics.median(r[key] for r in runs), 2)
    if "peak_rss_mb" in row:
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    row["runs"] = sorted(r["seconds"] for r in runs)
    return row


def run_sizes(sizes: tuple[tuple[int, int], ...] = SIZES, repeat: int = REPEAT) -> list[dict[str, Any]]:
    return [_repeated(("--one", str(domains), str(accounts)), repeat) for domains, accounts in sizes]


def render(rows: list[dict[str, Any]], baseline: dict[str, Any] | None = None, load: float | None = None) -> str:
    with_one = next((r for r in rows if r["domains"] == 1), None)
    repeat = len(rows[0]["runs"])
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} Linux, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}); `python -m benchmarks.scale`, "
        f"{repeat} runs per size, each in a fresh process"
        + (f"; 1-minute load average {load:.1f} when it started." if load is not None else "."),
        "",
        "| domains | accounts | aliases | resources | resources per domain | evaluation, median (s) |"
        " evaluation, all runs (s) | CPU: program / hash workers (s) | whole process (s) | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['domains']} | {r['accounts']} | {r['aliases']} | {r['resources']} | "
            f"{r['resources'] / r['domains']:.1f} | {r['seconds']:.2f} | {', '.join(f'{s:.2f}' for s in r['runs'])} | "
            f"{r['cpu_seconds']:.2f} / {r['worker_cpu_seconds']:.2f} | {r['process_seconds']:.2f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    largest = max(rows, key=lambda r: r["domains"])
    if with_one is not None and largest["domains"] > 1:
        fixed = with_one["resources"]
        per_domain = (largest["resources"] - fixed) / (largest["domains"] - 1)
        lines += [
            "",
            "Evaluation is the wall time of one run of `__main__.py` under the mock runtime (validation, "
            "password hashing, every resource registration, the stack outputs), after the SDK imports "
            f"({', '.join(SDK_MODULES)}) and the mock's RSA key pool; whole process adds Python start-up, "
            "those imports and the key pool. CPU is the program's own process (all threads) and the "
            "password-hashing worker processes (from 128 accounts on, one per CPU). Peak RSS is the largest "
            "`ru_maxrss` of the benchmark process over the runs; a hash worker is a separate interpreter of "
            "about 11 MB (VmHWM of a running worker).",
            f"One domain costs {fixed} resources in total; each further domain adds {per_domain:g} "
            f"(from the {largest['domains']}-domain row). Accounts and aliases add none: they are lines in "
            "config files, not resources.",
        ]
    if baseline is not None:
        lines += [
            "",
            f"For scale: the mock runtime alone registers {baseline['resources']} bare `DnsRecord`s "
            f"(tests/programs/proofs_baseline.py, nothing computed) in {baseline['seconds']:.2f} s "
            f"(median of {len(baseline['runs'])}: {', '.join(f'{s:.2f}' for s in baseline['runs'])}).",
        ]
    return "\n".join(lines)


def write_doc(table: str) -> None:
    text = PROOFS_DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    PROOFS_DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mailstack scale benchmark")
    parser.add_argument("--one", nargs=2, type=int, metavar=("DOMAINS", "ACCOUNTS_PER_DOMAIN"))
    parser.add_argument("--baseline", type=int, metavar="RESOURCES", help="time the bare mock runtime instead")
    parser.add_argument("--write", action="store_true", help=f"replace the table in {PROOFS_DOC.relative_to(ROOT)}")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs per size (median reported)")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(*args.one)))
        return 0
    if args.baseline:
        print(json.dumps(measure_baseline(args.baseline)))
        return 0
    load = os.getloadavg()[0]
    rows = run_sizes(repeat=args.repeat)
    baseline = _repeated(("--baseline", str(max(r["resources"] for r in rows))), args.repeat)
    table = render(rows, baseline, load)
    print(table)
    if args.write:
        write_doc(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
