"""The check groups of `verify`: each asks the live DNS or a mail port and turns the answers into findings.

The rules behind the verdicts are pure functions in mailstack.verify; the transports are
mailstack.verify.dnsclient and mailstack.verify_probes. mailstack.verify picks the groups and runs them.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.reversename

from mailstack.verify.blocklist import blocklist_meaning, dbl_name, zen_name
from mailstack.verify.dkim import dkim_key, short_key
from mailstack.verify.dmarc import (
    organizational_domain,
    parse_dmarc,
    report_authorization_name,
    report_domain,
    tree_walk_targets,
)
from mailstack.verify.dnsclient import DEFAULT_CONCURRENCY, DnsClient, Endpoint, Reply
from mailstack.verify.findings import Finding, Status
from mailstack.verify.hosts import is_cloudflare
from mailstack.verify.outputs import DEFAULT_DMARC, DEFAULT_SPF, ExpectedRecord, StackOutputs, publish_txt
from mailstack.verify.probes import MAIL_PORTS, probe_port, tls_context
from mailstack.verify.records import judge_record, unexpected_values
from mailstack.verify.spf import (
    SPF_LOOKUP_LIMIT,
    SPF_VOID_LIMIT,
    Answer,
    lookup_addresses,
    spf_budget,
    spf_result,
    walk_spf,
)
from mailstack.verify.values import Value, txt_kind

DEFAULT_TIMEOUT = 3.0
DEFAULT_EXPIRY_DAYS = 14


@dataclass(frozen=True)
class Options:
    """What to check and where (built from the command line by mailstack.verify)."""

    resolver: Endpoint
    nameservers: tuple[Endpoint, ...] = ()
    """Overrides NS discovery for every zone (tests, split-horizon)."""
    ns_port: int = 53
    """Port used for nameservers found by NS discovery."""
    timeout: float = DEFAULT_TIMEOUT
    skip: frozenset[str] = frozenset()
    blocklist: bool = False
    port_map: dict[int, int] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()
    """Addresses to connect to for the port checks instead of the public IPs."""
    cafile: str | None = None
    expiry_days: int = DEFAULT_EXPIRY_DAYS
    concurrency: int = DEFAULT_CONCURRENCY
    web_address: Endpoint | None = None
    """Where to connect for the HTTPS documents instead of resolving their hosts (tests, split horizon)."""
    current_address: str | None = None
    """The host's current public IPv4 (`--current-address`), compared with what ddclient published."""

    def runs(self, group: str) -> bool:
        if group == "blocklist" and not self.blocklist:
            return False
        return group not in self.skip


@dataclass(frozen=True)
class Nameserver:
    label: str
    endpoint: Endpoint


class Checks:
    """The check groups for one stack's outputs: one `check_*` method per group, each returning findings.

    Lookups are shared: every identical DNS question is asked once (DnsClient), and the NS set of
    each zone is discovered once.
    """

    def __init__(self, outputs: StackOutputs, options: Options) -> None:
        self.outputs = outputs
        self.options = options
        self.dns = DnsClient(options.timeout, options.concurrency)
        self._zone_ns: dict[str, asyncio.Task[tuple[list[Nameserver], str | None]]] = {}
        self._mail_domains = frozenset(outputs.mail_domains)
        self._org_domains: dict[str, asyncio.Future[str]] = {}

    # shared lookups --------------------------------------------------------------------------------

    async def resolve(self, name: str, rdtype: str) -> Reply:
        return await self.dns.query(self.options.resolver, name, rdtype, recurse=True)

    async def lookup(self, name: str, rdtype: str) -> Answer:
        """Resolver lookup in the shape the SPF walk takes."""
        reply = await self.resolve(name, rdtype)
        if reply.error:
            return Answer(error=reply.error)
        if reply.rcode not in ("NOERROR", "NXDOMAIN"):
            return Answer(error=f"resolver answered {reply.rcode}")
        return Answer(tuple(v.text for v in reply.values), nxdomain=reply.rcode == "NXDOMAIN")

    async def addresses(self, name: str) -> Answer:
        return await lookup_addresses(self.lookup, name)

    def group_of(self, name: str) -> str:
        """Report group of a DNS name: the hostname, else the mail domain it belongs to, else itself."""
        if name == self.outputs.hostname:
            return name
        labels = name.split(".")
        # The longest mail domain that is the name or one of its parents.
        domains = self._mail_domains
        return next((".".join(labels[i:]) for i in range(len(labels)) if ".".join(labels[i:]) in domains), name)

    async def nameservers(self, zone: str) -> tuple[list[Nameserver], str | None]:
        if zone not in self._zone_ns:
            self._zone_ns[zone] = asyncio.ensure_future(self._discover(zone))
        return await self._zone_ns[zone]

    async def _discover(self, zone: str) -> tuple[list[Nameserver], str | None]:
        if self.options.nameservers:
            return [Nameserver(str(ep), ep) for ep in self.options.nameservers], None
        ns = await self.lookup(zone, "NS")
        if ns.error:
            return [], f"NS lookup of {zone} failed: {ns.error}"
        if not ns.values:
            return [], f"{zone} has no NS records at resolver {self.options.resolver}"
        found = await asyncio.gather(*(self.addresses(n) for n in ns.values))
        servers: list[Nameserver] = []
        for name, answer in zip(ns.values, found, strict=True):
            for ip in answer.values:
                endpoint = Endpoint(ip, self.options.ns_port)
                servers.append(Nameserver(f"{name} ({endpoint})", endpoint))
        if not servers:
            return [], f"none of the nameservers of {zone} ({', '.join(ns.values)}) has an address"
        return servers, None

    # records ---------------------------------------------------------------------------------------

    async def check_records(self) -> list[Finding]:
        rrsets: dict[tuple[str, str, str], list[ExpectedRecord]] = defaultdict(list)
        for record in self.outputs.records:
            rrsets[(record.zone, record.name, record.type)].append(record)
        zones = sorted({zone for zone, _, _ in rrsets})
        zone_findings, rrset_findings = await asyncio.gather(
            asyncio.gather(*(self._check_zone(z) for z in zones)),
            asyncio.gather(*(self._check_rrset(key, records) for key, records in rrsets.items())),
        )
        return [f for fs in (*zone_findings, *rrset_findings) for f in fs]

    async def _soa(self, zone: str) -> tuple[list[tuple[Nameserver, Reply]], str | None]:
        """The zone's nameservers that can be asked from here, each with its SOA reply; or why none are known."""
        servers, error = await self.nameservers(zone)
        replies = await asyncio.gather(*(self.dns.query(s.endpoint, zone, "SOA", False) for s in servers))
        # Without IPv6 connectivity here, the IPv6 addresses of a zone's nameservers cannot be
        # asked; that says nothing about the zone, so those servers are left out, not failed.
        return [(s, r) for s, r in zip(servers, replies, strict=True) if not _no_route(r, s)], error

    async def _check_zone(self, zone: str) -> list[Finding]:
        group = self.group_of(zone)
        subject = f"NS {zone}"
        replies, error = await self._soa(zone)
        if error:
            return [Finding(group, "nameservers", subject, Status.ERROR, error)]
        ok: list[str] = []
        failing: list[str] = []
        serials: dict[str, str] = {}
        for server, reply in replies:
            answer = reply.server_answer(server.label, direct=True)
            if answer.error or not answer.values:
                failing.append(f"{server.label}: {answer.error or 'no SOA'}")
                continue
            ok.append(server.label)
            serials[server.label] = answer.values[0].text.split()[2]
        if not ok:
            return [
                Finding(group, "nameservers", subject, Status.ERROR, "no nameserver answered: " + "; ".join(failing))
            ]
        detail = ", ".join(f"{label} serial {serials[label]}" for label in ok)
        if failing:
            return [
                Finding(
                    group,
                    "nameservers",
                    subject,
                    Status.FAIL,
                    f"answering: {detail}; failing: {'; '.join(failing)}",
                    "fix the failing nameserver or remove it from the zone's NS set at the registrar",
                )
            ]
        return [Finding(group, "nameservers", subject, Status.OK, detail)]

    async def _check_rrset(self, key: tuple[str, str, str], records: list[ExpectedRecord]) -> list[Finding]:
        zone, name, rtype = key
        if rtype == "A" and name == self.outputs.ddns:
            return []  # ddclient's address, not the stack's: check_host compares it with the host's
        routed, _ = await self._soa(zone)
        servers = [server for server, _ in routed]
        replies = await asyncio.gather(
            *(self.dns.query(s.endpoint, name, rtype, False) for s in servers), self.resolve(name, rtype)
        )
        authoritative = [r.server_answer(s.label, direct=True) for s, r in zip(servers, replies[:-1], strict=True)]
        resolver = replies[-1].server_answer(f"{self.options.resolver}", direct=False)
        group = self.group_of(name)
        findings = [judge_record(r, records, authoritative, resolver, group) for r in records]
        extras: dict[str, Value] = {}
        for answer in authoritative:
            if answer.error is None:
                extras.update({v.key: v for v in unexpected_values(records, answer)})
        for value in extras.values():
            findings.append(
                Finding(
                    group,
                    "records",
                    f"{rtype} {name}",
                    Status.DIFFERENT,
                    f"published but not in the stack: {value.text}",
                    f"delete {rtype} {value.text} at {name}",
                    found=(value.text,),
                )
            )
        return findings

    # SPF -------------------------------------------------------------------------------------------

    async def check_spf(self, domain: str) -> list[Finding]:
        subject = f"SPF {domain}"
        expected = self.outputs.txt(domain, "spf")
        publish = publish_txt(expected, domain, DEFAULT_SPF)
        node = await walk_spf(domain, self.lookup)
        if node.error and not node.records:
            return [Finding(domain, "spf", subject, Status.ERROR, f"TXT lookup failed: {node.error}")]
        if not node.records:
            return [Finding(domain, "spf", subject, Status.MISSING, "no v=spf1 TXT record", publish)]
        if len(node.records) > 1:
            return [
                Finding(
                    domain,
                    "spf",
                    subject,
                    Status.FAIL,
                    f"{len(node.records)} SPF records; RFC 7208 §3.2 makes that a permerror for every message",
                    f"delete all but one; keep exactly: {expected[0].zone_line()}"
                    if expected
                    else "merge them into one",
                    found=node.records,
                )
            ]
        budget = spf_budget(node)
        problems = list(budget.problems)
        # RFC 7208 §4.6.4: over 10 DNS-querying terms or 2 void lookups is a permerror.
        if budget.lookups > SPF_LOOKUP_LIMIT:
            problems.append(
                f"{budget.lookups} DNS-querying terms after includes and redirects (limit {SPF_LOOKUP_LIMIT})"
            )
        if budget.voids > SPF_VOID_LIMIT:
            problems.append(f"{budget.voids} void lookups (limit {SPF_VOID_LIMIT})")
        detail = f"{budget.lookups}/{SPF_LOOKUP_LIMIT} DNS lookups, {budget.voids}/{SPF_VOID_LIMIT} void"
        findings: list[Finding] = []
        if problems:
            findings.append(
                Finding(
                    domain,
                    "spf",
                    subject,
                    Status.FAIL,
                    f"{detail}: " + "; ".join(problems) + " (RFC 7208 §4.6.4: receivers return permerror)",
                    "remove includes you do not send through, or replace an include with its ip4:/ip6: ranges",
                    found=node.records,
                )
            )
        else:
            findings.append(Finding(domain, "spf", subject, Status.OK, detail, found=node.records))
        for ip in self.outputs.ips:
            result = spf_result(node, ip)
            fix = ""
            if result != "pass":
                add = "ip4" if ":" not in ip else "ip6"
                # Without an SPF in the stack, extend the published record rather than replace it.
                fix = publish if expected else f"add {add}:{ip} (or mx) to the SPF record of {domain}"
            findings.append(
                Finding(
                    domain,
                    "spf",
                    f"SPF {domain} permits {ip}",
                    Status.OK if result == "pass" else Status.FAIL,
                    f"SPF result for the server's address is {result}",
                    fix,
                )
            )
        return findings

    # DKIM ------------------------------------------------------------------------------------------

    async def check_dkim(self, record: ExpectedRecord) -> list[Finding]:
        selector = record.name.split("._domainkey.", 1)[0]
        group = self.group_of(record.name)
        subject = f"DKIM {selector} ({record.name})"
        answer = await self.lookup(record.name, "TXT")
        if answer.error:
            return [Finding(group, "dkim", subject, Status.ERROR, f"TXT lookup failed: {answer.error}")]
        keys = [t for t in answer.values if txt_kind(t) == "dkim"]
        publish = f"publish {record.zone_line()}"
        try:
            want = dkim_key(record.content)
        except ValueError as e:
            return [Finding(group, "dkim", subject, Status.ERROR, f"the stack's own DKIM record is unusable: {e}")]
        if not keys:
            return [Finding(group, "dkim", subject, Status.MISSING, "no DKIM key record: signatures fail", publish)]
        if len(keys) > 1:
            return [
                Finding(
                    group,
                    "dkim",
                    subject,
                    Status.FAIL,
                    f"{len(keys)} key records at one selector",
                    publish,
                    found=tuple(keys),
                )
            ]
        try:
            got = dkim_key(keys[0])
        except ValueError as e:
            return [Finding(group, "dkim", subject, Status.FAIL, f"published record does not parse: {e}", publish)]
        if got == want:
            return [Finding(group, "dkim", subject, Status.OK, f"p= matches the stack's key ({short_key(want)})")]
        if not got:
            return [Finding(group, "dkim", subject, Status.FAIL, "published key is revoked (empty p=)", publish)]
        return [
            Finding(
                group,
                "dkim",
                subject,
                Status.DIFFERENT,
                f"published p={short_key(got)} but the server signs with p={short_key(want)}: signatures fail",
                publish,
                expected=short_key(want),
                found=(short_key(got),),
            )
        ]

    # DMARC -----------------------------------------------------------------------------------------

    async def check_dmarc(self, domain: str) -> list[Finding]:
        name = f"_dmarc.{domain}"
        subject = f"DMARC {domain}"
        publish = publish_txt(self.outputs.txt(name, "dmarc"), name, DEFAULT_DMARC)
        answer = await self.lookup(name, "TXT")
        if answer.error:
            return [Finding(domain, "dmarc", subject, Status.ERROR, f"TXT lookup failed: {answer.error}")]
        records = [t for t in answer.values if txt_kind(t) == "dmarc"]
        if not records:
            return [Finding(domain, "dmarc", subject, Status.MISSING, f"no v=DMARC1 record at {name}", publish)]
        if len(records) > 1:
            # RFC 7489 §6.6.3: more than one record means no DMARC policy at all.
            return [
                Finding(
                    domain,
                    "dmarc",
                    subject,
                    Status.FAIL,
                    f"{len(records)} DMARC records: receivers ignore them all",
                    publish,
                    found=tuple(records),
                )
            ]
        parsed, problems = parse_dmarc(records[0])
        if parsed is None or problems:
            return [Finding(domain, "dmarc", subject, Status.FAIL, "; ".join(problems), publish, found=tuple(records))]
        findings = [Finding(domain, "dmarc", subject, Status.OK, f"p={parsed.tags.get('p')}", found=tuple(records))]
        destinations = list(dict.fromkeys(report_domain(a) for a in (*parsed.rua, *parsed.ruf)))
        # RFC 9990 §4: only a destination in another Organizational Domain (RFC 9989 §4.10.2, found
        # by DNS Tree Walk, not the Public Suffix List) must authorise the reports.
        orgs = await asyncio.gather(*(self.organizational_domain(d) for d in [domain, *destinations]))
        external = [d for d, org in zip(destinations, orgs[1:], strict=True) if org != orgs[0]]
        findings += await asyncio.gather(*(self._check_report_authorization(domain, d) for d in external))
        return findings

    async def organizational_domain(self, name: str) -> str:
        """RFC 9989 §4.10 DNS Tree Walk from `name`, then §4.10.2 selection (cached per name).

        A lookup that fails counts as "no record" for that name: verify reports DNS failures of
        the stack's own names elsewhere, and a walk must not stop at a resolver that refuses `_dmarc.com`.
        """
        if name not in self._org_domains:
            self._org_domains[name] = asyncio.ensure_future(self._tree_walk(name))
        return await self._org_domains[name]

    async def _tree_walk(self, name: str) -> str:
        found: list[tuple[str, str | None]] = []
        for target in tree_walk_targets(name):
            answer = await self.lookup(f"_dmarc.{target}", "TXT")
            records = [t for t in answer.values if txt_kind(t) == "dmarc"] if not answer.error else []
            if len(records) != 1:
                continue  # RFC 9989 §4.10 step 2: none, or several (all discarded)
            parsed, _ = parse_dmarc(records[0])
            if parsed is None:
                continue
            psd = parsed.tags.get("psd", "").lower() or None
            found.append((target, psd))
            if psd in ("n", "y"):
                break
        return organizational_domain(name, found)

    async def _check_report_authorization(self, domain: str, destination: str) -> Finding:
        name = report_authorization_name(domain, destination)
        subject = f"DMARC reports to {destination}"
        answer = await self.lookup(name, "TXT")
        if answer.error:
            return Finding(domain, "dmarc", subject, Status.ERROR, f"TXT lookup of {name} failed: {answer.error}")
        if any(t.startswith("v=DMARC1") for t in answer.values):
            return Finding(domain, "dmarc", subject, Status.OK, f"{name} authorizes the reports")
        return Finding(
            domain,
            "dmarc",
            subject,
            Status.FAIL,
            f"{destination} does not publish {name}: receivers drop the reports (RFC 9990 §4)",
            f'publish {name}. 3600 IN TXT "v=DMARC1" in the zone of {destination}',
        )

    # MX and host -------------------------------------------------------------------------------------

    async def check_mx(self, domain: str) -> list[Finding]:
        answer = await self.lookup(domain, "MX")
        if answer.error:
            return [Finding(domain, "mx", f"MX {domain}", Status.ERROR, f"MX lookup failed: {answer.error}")]
        hosts = [v.split()[-1] for v in answer.values if v.split()[-1] != "."]
        if not hosts:
            fix = f"publish {domain}. 3600 IN MX 10 {self.outputs.hostname}."
            return [Finding(domain, "mx", f"MX {domain}", Status.MISSING, "no mail exchanger", fix)]
        found = await asyncio.gather(*(self.addresses(h) for h in hosts))
        findings: list[Finding] = []
        for host, addresses in zip(hosts, found, strict=True):
            subject = f"MX {domain} → {host}"
            if addresses.error and not addresses.values:
                findings.append(
                    Finding(domain, "mx", subject, Status.ERROR, f"address lookup failed: {addresses.error}")
                )
            elif not addresses.values:
                fix = (
                    f"publish the A/AAAA records of {host}"
                    if host != self.outputs.hostname
                    else f"publish {host}. 3600 IN A {self.outputs.ipv4 or '<public IPv4>'}"
                )
                findings.append(Finding(domain, "mx", subject, Status.FAIL, f"{host} has no A/AAAA record", fix))
            else:
                proxied = [a for a in addresses.values if is_cloudflare(a)]
                if proxied:
                    findings.append(_proxied(domain, subject, host, proxied))
                else:
                    findings.append(Finding(domain, "mx", subject, Status.OK, ", ".join(addresses.values)))
        return findings

    async def check_host(self) -> list[Finding]:
        host = self.outputs.hostname
        wanted = (("A", self.outputs.ipv4), ("AAAA", self.outputs.ipv6))
        answers = await asyncio.gather(*(self.lookup(host, rtype) for rtype, _ in wanted))
        findings: list[Finding] = []
        for (rtype, configured), answer in zip(wanted, answers, strict=True):
            subject = f"{rtype} {host}"
            if answer.error:
                findings.append(Finding(host, "mx", subject, Status.ERROR, f"lookup failed: {answer.error}"))
                continue
            if rtype == "A" and host == self.outputs.ddns:
                findings.append(self._ddns_address(subject, tuple(answer.values)))
                continue
            found = tuple(answer.values)
            proxied = [a for a in found if is_cloudflare(a)]
            publish = f"publish {host}. 3600 IN {rtype} {configured}" if configured else ""
            if proxied:
                findings.append(_proxied(host, subject, host, proxied))
            elif configured is None:
                if found:
                    findings.append(
                        Finding(
                            host,
                            "mx",
                            subject,
                            Status.WARN,
                            f"resolves to {', '.join(found)} but the stack has no public {rtype} address",
                            found=found,
                        )
                    )
            elif not found:
                findings.append(Finding(host, "mx", subject, Status.MISSING, "does not resolve", publish, configured))
            elif set(found) != {configured}:
                findings.append(
                    Finding(
                        host,
                        "mx",
                        subject,
                        Status.DIFFERENT,
                        f"resolves to {', '.join(found)}, the stack says {configured}",
                        f"{publish} (replacing {', '.join(a for a in found if a != configured)})",
                        configured,
                        found,
                    )
                )
            else:
                findings.append(Finding(host, "mx", subject, Status.OK, configured, expected=configured, found=found))
        return findings

    def _ddns_address(self, subject: str, found: tuple[str, ...]) -> Finding:
        """The hostname's A under `ddns`: ddclient's to keep, so it is compared with the host's current
        address when verify is told it (`--current-address`), not with the stack's first one."""
        host = self.outputs.hostname
        current = self.options.current_address
        fix = "on the host: systemctl status ddclient; journalctl -u ddclient; ddclient -daemon=0 -verbose -force"
        if not found:
            return Finding(host, "mx", subject, Status.MISSING, "does not resolve (ddclient keeps this record)", fix)
        if current is None:
            return Finding(
                host,
                "mx",
                subject,
                Status.OK,
                f"{', '.join(found)}, kept current by ddclient (pass --current-address to compare it with the host's)",
                found=found,
            )
        if set(found) != {current}:
            return Finding(
                host,
                "mx",
                subject,
                Status.DIFFERENT,
                f"published {', '.join(found)}, but the host's current address is {current}: ddclient has not "
                "updated it (yet: resolvers may also still hold the old answer for its TTL)",
                fix,
                current,
                found,
            )
        return Finding(host, "mx", subject, Status.OK, f"{current}, the host's current address (ddclient)", found=found)

    async def check_ptr(self, ip: str) -> list[Finding]:
        host = self.outputs.hostname
        subject = f"PTR {ip}"
        fix = f"set PTR of {ip} to {host} at your ISP or hosting provider (whoever owns the address block)"
        reverse = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
        answer, forward = await asyncio.gather(self.lookup(reverse, "PTR"), self.addresses(host))
        if answer.error:
            return [Finding(host, "ptr", subject, Status.ERROR, f"PTR lookup failed: {answer.error}")]
        names = tuple(n.lower() for n in answer.values)
        if not names:
            return [
                Finding(host, "ptr", subject, Status.MISSING, "no PTR record: many receivers reject such mail", fix)
            ]
        if host not in names:
            return [
                Finding(
                    host,
                    "ptr",
                    subject,
                    Status.DIFFERENT,
                    f"PTR is {', '.join(names)}, not {host}",
                    fix,
                    expected=host,
                    found=names,
                )
            ]
        if ip not in forward.values and forward.error:
            detail = f"address lookup of {host} failed: {forward.error}"
            return [Finding(host, "ptr", subject, Status.ERROR, detail, found=names)]
        if ip not in forward.values:
            return [
                Finding(
                    host,
                    "ptr",
                    subject,
                    Status.FAIL,
                    f"PTR names {host}, but {host} does not resolve back to {ip} (forward-confirmed rDNS fails)",
                    f"publish {host}. 3600 IN {'AAAA' if ':' in ip else 'A'} {ip}",
                    found=names,
                )
            ]
        return [Finding(host, "ptr", subject, Status.OK, f"{ip} → {host} → {ip}", expected=host, found=names)]

    # blocklists ------------------------------------------------------------------------------------

    async def check_blocklists(self) -> list[Finding]:
        host = self.outputs.hostname
        queries = [(host, f"Spamhaus ZEN {ip}", zen_name(ip), False) for ip in self.outputs.ips]
        queries += [(d, f"Spamhaus DBL {d}", dbl_name(d), True) for d in (*self.outputs.mail_domains, host)]
        answers = await asyncio.gather(*(self.lookup(name, "A") for _, _, name, _ in queries))
        findings: list[Finding] = []
        for (group, subject, name, dbl), answer in zip(queries, answers, strict=True):
            if answer.error:
                findings.append(Finding(group, "blocklist", subject, Status.ERROR, f"{name}: {answer.error}"))
                continue
            listings, errors = blocklist_meaning(answer.values, dbl)
            if errors:
                findings.append(
                    Finding(
                        group,
                        "blocklist",
                        subject,
                        Status.ERROR,
                        "Spamhaus refused the query: " + "; ".join(errors),
                        "run again with --resolver pointing at your own recursive resolver (e.g. unbound on the host);"
                        " Spamhaus refuses queries from public resolvers such as 8.8.8.8 or 1.1.1.1",
                    )
                )
            elif listings:
                pbl = any("PBL" in item for item in listings)
                fix = (
                    "send outbound mail through the relay (mailstack:relay), or ask your ISP for a static business address"
                    if pbl
                    else "find the cause, then request removal at https://check.spamhaus.org/"
                )
                findings.append(Finding(group, "blocklist", subject, Status.FAIL, "; ".join(listings), fix))
            else:
                findings.append(Finding(group, "blocklist", subject, Status.OK, "not listed"))
        return findings

    # ports and TLS -----------------------------------------------------------------------------------

    async def check_ports(self) -> list[Finding]:
        addresses = self.options.addresses or self.outputs.ips
        if not addresses:
            return [
                Finding(
                    self.outputs.hostname,
                    "ports",
                    "ports",
                    Status.ERROR,
                    "the stack has no public IP and no --address was given",
                )
            ]
        context = tls_context(self.options.cafile)
        jobs = [self._check_port(address, port, context) for address in addresses for port in MAIL_PORTS]
        return [f for fs in await asyncio.gather(*jobs) for f in fs]

    async def _check_port(self, address: str, port: int, context: ssl.SSLContext) -> list[Finding]:
        host = self.outputs.hostname
        actual = self.options.port_map.get(port, port)
        where = f"{address}:{actual}" if ":" not in address else f"[{address}]:{actual}"
        subject = f"port {port} ({MAIL_PORTS[port]}) at {where}"
        probe = await probe_port(address, actual, host, context, starttls=port == 25, timeout=self.options.timeout)
        if probe.connect_error:
            fix = f"allow TCP {port} in the host firewall and forward it from the router to the server"
            if port == 25:
                fix += "; many home ISPs block inbound 25: ask them to open it, or use a VPS relay"
            return [Finding(host, "ports", subject, Status.FAIL, probe.connect_error, fix)]
        if probe.protocol_error:
            return [Finding(host, "ports", subject, Status.FAIL, probe.protocol_error, "check the mail server's logs")]
        findings = [Finding(host, "ports", subject, Status.OK, probe.greeting)]
        cert_subject = f"certificate on port {port} at {where}"
        if probe.tls_error:
            details = f" ({probe.cert_summary})" if probe.cert_summary else ""
            findings.append(
                Finding(
                    host,
                    "tls",
                    cert_subject,
                    Status.FAIL,
                    f"{probe.tls_error}{details}",
                    f"install a certificate for {host} from a public CA (mailstack:tls mode letsencrypt)",
                )
            )
        elif probe.not_after is not None:
            days = (probe.not_after - time.time()) / 86400
            if days < self.options.expiry_days:
                findings.append(
                    Finding(
                        host,
                        "tls",
                        cert_subject,
                        Status.FAIL,
                        f"valid for {host} but expires in {days:.1f} days (limit {self.options.expiry_days})",
                        "renew it now; check that the certbot container runs and its logs",
                    )
                )
            else:
                findings.append(
                    Finding(host, "tls", cert_subject, Status.OK, f"valid for {host}, expires in {int(days)} days")
                )
        return findings


def _proxied(group: str, subject: str, host: str, addresses: Sequence[str]) -> Finding:
    return Finding(
        group,
        "mx",
        subject,
        Status.FAIL,
        f"{host} resolves to Cloudflare proxy address(es) {', '.join(addresses)}: SMTP/IMAP never reach the server",
        f"set the record of {host} to 'DNS only' (grey cloud) at Cloudflare; mail records must not be proxied",
        found=tuple(addresses),
    )


def _no_route(reply: Reply, server: Nameserver) -> bool:
    return ":" in server.endpoint.host and reply.error is not None and "unreachable" in reply.error.lower()
