"""`python -m mailstack.verify`: check the live world against what the stack says should exist.

Reads the stack's outputs (`pulumi stack output --json`, or `--outputs FILE`), then checks
concurrently: every expected record at each authoritative nameserver and at a recursive
resolver, SPF/DKIM/DMARC rules, MX and host addresses, PTR, ports 25/465/993 with TLS, and
optionally Spamhaus. Exit code: 0 all good, 1 something wrong, 2 could not check.
See docs/verify.md.

This module is the command line and the orchestration. The package has one module per standard
(as checkdmarc and octodns organise theirs): the rules of each are pure functions there (spf, dkim,
dmarc, records, mta_sts, autoconfig, dane, dnssec, blocklist, ...); the groups that ask the live
world are in groups (the classic ones) or beside their rules (the newer ones); the transports are
dnsclient and probes, the report is report. Adding a check is adding a module and a line in `jobs`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import math
import time
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from mailstack.cli import print_error
from mailstack.verify import autoconfig, dane, dnssec, mta_sts
from mailstack.verify.backup import backup_findings, read_status
from mailstack.verify.dnsclient import DEFAULT_CONCURRENCY, Endpoint, check_port, parse_endpoint
from mailstack.verify.findings import EXIT_UNCHECKED, GROUPS, Finding, Status, exit_code
from mailstack.verify.groups import DEFAULT_EXPIRY_DAYS, DEFAULT_TIMEOUT, Checks, Options
from mailstack.verify.outputs import OutputsError, StackOutputs, parse_outputs
from mailstack.verify.probes import MAIL_PORTS
from mailstack.verify.report import print_text, render_json
from mailstack.verify.values import txt_kind

# -- running the checks --------------------------------------------------------------------------


Job = tuple[str, str, Awaitable[list[Finding]]]
"""(report group, check group, the check): the first two name the finding if the check crashes."""


def jobs(checks: Checks) -> list[Job]:
    """One job per selected check group and subject (domain, DKIM selector, address)."""
    options, outputs = checks.options, checks.outputs
    host = outputs.hostname
    selected: list[Job] = []
    if options.runs("records"):
        selected.append((host, "records", checks.check_records()))
    for domain in outputs.mail_domains:
        if options.runs("spf"):
            selected.append((domain, "spf", checks.check_spf(domain)))
        if options.runs("dmarc"):
            selected.append((domain, "dmarc", checks.check_dmarc(domain)))
        if options.runs("mx"):
            selected.append((domain, "mx", checks.check_mx(domain)))
    if options.runs("dkim"):
        for record in outputs.records:
            if record.type == "TXT" and "._domainkey." in record.name and txt_kind(record.content) == "dkim":
                selected.append((record.zone, "dkim", checks.check_dkim(record)))
    if options.runs("mx"):
        selected.append((host, "mx", checks.check_host()))
    if options.runs("ptr"):
        selected += [(host, "ptr", checks.check_ptr(ip)) for ip in outputs.ips]
    if options.runs("ports"):
        selected.append((host, "ports", checks.check_ports()))
    if options.runs("blocklist"):
        selected.append((host, "blocklist", checks.check_blocklists()))
    if options.runs("mta-sts"):
        selected += [(d, "mta-sts", mta_sts.check(checks, d, r)) for d, r in mta_sts.domains_with_policy(outputs)]
    if options.runs("autoconfig"):
        docs = [doc for doc in outputs.web_documents if not doc.host.startswith("mta-sts.")]
        selected += [(autoconfig.domain_of(doc), "autoconfig", autoconfig.check(checks, doc)) for doc in docs]
    # DANE and the DNSSEC it rests on are checked for stacks that publish TLSA (mailstack:dane).
    if any(r.type == "TLSA" for r in outputs.records):
        if options.runs("dane"):
            selected.append((host, "dane", dane.check(checks)))
        if options.runs("dnssec"):
            selected += [(d, "dnssec", dnssec.check(checks, d, d, "MX")) for d in outputs.mail_domains]
            selected.append((host, "dnssec", dnssec.check(checks, host, dane.tlsa_name(host), "TLSA")))
    return selected


async def guarded(domain: str, group: str, check: Awaitable[list[Finding]]) -> list[Finding]:
    """A check's findings, or one ERROR finding if it crashed: a bug in one check must not hide the
    other checks' results, nor turn "could not check" (exit 2) into "something is wrong" (exit 1)."""
    try:
        return await check
    except Exception as exc:  # noqa: BLE001 - reported as a finding, see above
        return [
            Finding(
                domain=domain,
                check=group,
                subject=f"{group} check",
                status=Status.ERROR,
                detail=f"the check crashed: {type(exc).__name__}: {exc}",
                fix="a mailstack bug: please report it with the output of --json",
            )
        ]


async def run(checks: Checks) -> list[Finding]:
    """Every selected check group, concurrently; the DNS sockets are closed at the end."""
    try:
        return [f for fs in await asyncio.gather(*(guarded(*job) for job in jobs(checks))) for f in fs]
    finally:
        await checks.dns.close()


def verify(outputs: StackOutputs, options: Options) -> list[Finding]:
    """Run every selected check and return the findings (the library entry point)."""
    if outputs.ddns is not None and outputs.ddns == outputs.hostname:
        # With ddns the stack's publicIPv4 is only the first address: SPF, PTR, blocklist and port
        # checks use the host's current one when verify is told it, and skip IPv4 otherwise.
        outputs = dataclasses.replace(outputs, ipv4=options.current_address)
    return asyncio.run(run(Checks(outputs, options)))


# -- inputs --------------------------------------------------------------------------------------


class InputError(Exception):
    """The outputs could not be read; verify exits 2."""


def read_outputs(stack: str | None, path: str | None) -> StackOutputs:
    """The stack outputs from a JSON file or from `pulumi stack output --json`.

    Raises:
        InputError: the file or the Pulumi CLI failed, or the JSON breaks the contract.
    """
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror}") from e
    else:
        import subprocess  # only here: most runs read --outputs, and every import is start-up time

        command = ["pulumi", "stack", "output", "--json", *(["--stack", stack] if stack else [])]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        except FileNotFoundError as e:
            raise InputError(
                f"the Pulumi CLI is not installed here; run `{' '.join(command)} > outputs.json`"
                " where it is, then `python -m mailstack.verify --outputs outputs.json`"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise InputError(f"`{' '.join(command)}` did not finish in 120 s") from e
        if result.returncode != 0:
            raise InputError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
        text = result.stdout
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"outputs are not JSON: {e}") from e
    try:
        return parse_outputs(data)
    except OutputsError as e:
        raise InputError(str(e)) from e


def parse_port_map(text: str) -> dict[int, int]:
    """`25=2525,465=4465` → {25: 2525, 465: 4465}.

    Raises:
        ValueError: an entry is not `<mail port>=<port>`.
    """
    mapping: dict[int, int] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        left, sep, right = item.partition("=")
        if not sep or not left.strip().isdigit() or not right.strip().isdigit():
            raise ValueError(f"`{item}` is not PORT=PORT")
        if int(left) not in MAIL_PORTS:
            raise ValueError(f"`{item}`: only {', '.join(map(str, MAIL_PORTS))} are checked")
        mapping[int(left)] = check_port(int(right), item)
    return mapping


RESOLV_CONF = "/etc/resolv.conf"


def system_resolver(path: str = RESOLV_CONF) -> Endpoint:
    """The first `nameserver` of /etc/resolv.conf (what this machine's own programs use).

    Read here rather than through dns.resolver, whose import pulls in the DNS-over-HTTPS/QUIC
    stack (13% of a 100-domain run). resolv.conf(5): `nameserver ADDRESS`, one per line, `#` or
    `;` starts a comment; a link-local IPv6 address keeps its `%scope` (the socket needs it).
    Entries that are not addresses are skipped, as the resolver library does.
    """
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        raise InputError(f"cannot read {path} ({e.strerror}); pass --resolver IP[:PORT]") from e
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                return Endpoint(str(ipaddress.ip_address(fields[1])))
            except ValueError:
                continue
    raise InputError(f"no nameserver in {path}; pass --resolver IP[:PORT]")


# -- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mailstack.verify",
        description="Check the live DNS, ports and certificates against what the stack says should exist.",
        epilog="Exit code: 0 all good, 1 something is wrong (each line says how to fix it), 2 could not check.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stack", help="stack whose outputs to read with `pulumi stack output --json`")
    source.add_argument("--outputs", metavar="FILE", help="JSON file of the stack outputs (no Pulumi CLI needed)")
    parser.add_argument("--resolver", metavar="IP[:PORT]", help="recursive resolver (default: /etc/resolv.conf)")
    parser.add_argument(
        "--nameserver",
        metavar="IP[:PORT]",
        action="append",
        default=[],
        help="authoritative server to ask instead of the zones' NS records (repeatable; split-horizon, tests)",
    )
    parser.add_argument("--ns-port", type=int, default=53, help="port of nameservers found by NS lookup (default 53)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per query or connection")
    parser.add_argument("--skip", default="", help=f"comma-separated groups to skip: {', '.join(GROUPS)}")
    parser.add_argument(
        "--blocklist", action="store_true", help="also check Spamhaus ZEN/DBL (needs your own resolver)"
    )
    parser.add_argument("--port-map", default="", metavar="25=2525,...", help="connect to other ports than 25/465/993")
    parser.add_argument("--smtp-port", type=int, help="port to use for the port-25 check")
    parser.add_argument("--smtps-port", type=int, help="port to use for the port-465 check")
    parser.add_argument("--imaps-port", type=int, help="port to use for the port-993 check")
    parser.add_argument("--address", action="append", default=[], help="connect here instead of the public IPs")
    parser.add_argument("--cafile", help="trust only the CA certificates in this PEM file (tests, private CAs)")
    parser.add_argument(
        "--web-address",
        metavar="IP[:PORT]",
        help="connect here for the MTA-STS and autoconfig URLs instead of resolving their hosts (default port 443)",
    )
    parser.add_argument(
        "--expiry-days", type=int, default=DEFAULT_EXPIRY_DAYS, help="fail certificates expiring sooner"
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="parallel DNS queries")
    parser.add_argument("--json", action="store_true", help="print JSON (every check) instead of the text report")
    parser.add_argument("--all", action="store_true", help="also list every check that passed")
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="leave out the summary lines of domains with nothing to report"
    )
    parser.add_argument(
        "--current-address",
        metavar="IPV4",
        help="the mail host's public IPv4 now (e.g. `ssh host curl -s https://api.ipify.org`): with ddns, "
        "reported when the published address differs",
    )
    parser.add_argument(
        "--backup-status", metavar="FILE", help="the backup job's status.json (`-`: stdin); warns when it is stale"
    )
    return parser


def options_from_args(args: argparse.Namespace) -> Options:
    """Options from parsed arguments.

    Raises:
        ValueError: a malformed flag value.
    """
    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    unknown = sorted(skip - set(GROUPS))
    if unknown:
        raise ValueError(f"--skip: unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    port_map = parse_port_map(args.port_map)
    for port, flag, value in (
        (25, "--smtp-port", args.smtp_port),
        (465, "--smtps-port", args.smtps_port),
        (993, "--imaps-port", args.imaps_port),
    ):
        if value is not None:
            port_map[port] = check_port(value, f"{flag} {value}")
    check_port(args.ns_port, f"--ns-port {args.ns_port}")
    for address in args.address:
        ipaddress.ip_address(address)
    current = None
    if args.current_address:
        current = ipaddress.IPv4Address(args.current_address).compressed
    # Every wait is bounded by --timeout, and no query starts without a --concurrency slot: an
    # infinite timeout or zero slots would make verify wait forever.
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise ValueError("--timeout must be a positive number of seconds")
    if args.concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    return Options(
        resolver=parse_endpoint(args.resolver) if args.resolver else system_resolver(),
        nameservers=tuple(parse_endpoint(n) for n in args.nameserver),
        ns_port=args.ns_port,
        timeout=args.timeout,
        skip=skip,
        blocklist=args.blocklist,
        port_map=port_map,
        addresses=tuple(args.address),
        cafile=args.cafile,
        expiry_days=args.expiry_days,
        concurrency=args.concurrency,
        web_address=parse_endpoint(args.web_address, 443) if args.web_address else None,
        current_address=current,
    )


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.stack and not args.outputs:
        parser.error("give --stack STACK (reads `pulumi stack output`) or --outputs FILE")
    try:
        options = options_from_args(args)
        outputs = read_outputs(args.stack, args.outputs)
        backup_status = read_status(args.backup_status) if args.backup_status else None
    except (InputError, ValueError, OSError) as e:
        print_error("verify", str(e))
        return EXIT_UNCHECKED
    started = time.monotonic()
    findings = verify(outputs, options)
    if backup_status is not None:
        findings += backup_findings(backup_status, hostname=outputs.hostname, now=datetime.now(UTC))
    code = exit_code(findings)
    elapsed = time.monotonic() - started
    if args.json:
        print(render_json(findings, code, outputs, elapsed))
    else:
        print_text(findings, code, outputs, elapsed, everything=args.all, quiet=args.quiet)
    return code
