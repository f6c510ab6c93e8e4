"""Adopt existing Cloudflare records: list the live records that block the stack's creates, print the imports.

Cloudflare refuses to create a record when the zone already holds the same record (error 81058) or
an A/AAAA/CNAME clash at the name (81053), and provider v6 has no "overwrite" switch. A zone that
already receives mail (an MX, an SPF TXT, an old DKIM key) therefore stops the first `pulumi up`.
The fix that needs no dashboard is to import each blocking record into the stack, so Pulumi owns
it and the next `pulumi up` updates it in place:

    python -m mailstack.adopt --stack prod                 # live records from the Cloudflare API
    python -m mailstack.adopt --stack prod --live live.json  # or from a saved API answer (offline)

Desired records come from the stack's config files (no Pulumi CLI, no passphrase needed); live
records come from `GET /zones/<id>/dns_records` with the token in CLOUDFLARE_API_TOKEN, or from a
JSON file of that answer. rfc2136 zones are read by AXFR (below); DigitalOcean, Hetzner and Route 53
zones through their REST APIs (mailstack/adopt_backends.py). See docs/dns.md.

Exit code (mailstack.cli): 0 nothing stands in the way of `pulumi up` (live MX records the stack
does not publish are listed, they do not block it); 1 records still block it (the output lists the
imports and deletions), or the stack's configuration has problems (each listed with its fix);
2 adopt could not check (unreadable stack file or --live file, no API token, an API failure).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception

from mailstack.cli import EXIT_CANNOT, EXIT_FIX, EXIT_OK, print_error
from mailstack.config import ConfigError, MailSettings, load_settings, rfc2136
from mailstack.config.records import RecordSpec, dkim_record, dkim_selectors, parse_txt, static_records
from mailstack.stackfile import StackConfig, StackFileError, load_stack, read_passphrase

API = "https://api.cloudflare.com/client/v4"
TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
RECORD_TYPE = "cloudflare:index/dnsRecord:DnsRecord"
COMPONENT_TYPE = "mailstack:index:MailDns"
DEFAULT_COMPONENT = "dns"
"""The MailDns resource name in __main__.py; record resources are named `<component>-<record key>`."""


class AdoptError(Exception):
    """Input that cannot be used: no stack file, bad JSON, no token, an API error (exit 2)."""

    exit_code = EXIT_CANNOT


class AdoptConfigError(AdoptError):
    """The stack's configuration has problems; the message lists each with its fix (exit 1)."""

    exit_code = EXIT_FIX


@dataclass(frozen=True)
class Backend:
    """How one record-per-resource backend names its resources, imports and deletes a live record."""

    title: str
    record_type: str
    """The Pulumi resource type MailDns registers for each record."""
    import_id: Callable[[LiveRecord], str]
    """The id `pulumi import` takes for the record, in the provider's own import format."""
    delete_command: Callable[[LiveRecord], str]


@dataclass(frozen=True)
class LiveRecord:
    """A record as the Cloudflare API lists it, with its content in the logical form of RecordSpec."""

    id: str
    zone: str
    zone_id: str
    name: str
    type: str
    content: str
    priority: int | None
    comment: str

    @property
    def key(self) -> str:
        return RecordSpec(self.zone, self.name, self.type, self.content, self.priority, 0, "").key

    def describe(self) -> str:
        prio = f"{self.priority} " if self.priority is not None and self.type in ("MX", "SRV") else ""
        return f"{self.type} {self.name} {prio}{self.content}"


@dataclass
class Plan:
    """What to do about each live record that stands in the way."""

    imports: list[tuple[RecordSpec, LiveRecord]] = field(default_factory=list)
    """Live records with the identity of a desired record: import, then `pulumi up` updates them."""
    deletes: list[tuple[LiveRecord, str]] = field(default_factory=list)
    """Live records that must go (a CNAME where mail records go, a second copy): record and reason."""
    stale: list[LiveRecord] = field(default_factory=list)
    """Live MX records at a mail domain that the stack does not publish (an old provider?)."""


# -- inputs --------------------------------------------------------------------------------------


TSIG_SECRET_PATH = "mailstack:dns.rfc2136.keySecret"


def stack_settings(project_dir: Path, stack: str, environ: Mapping[str, str] | None = None) -> tuple[MailSettings, str]:
    """The stack's resolved settings and project name, read from its config files.

    Secrets stay closed unless the environment holds the stack's passphrase (PULUMI_CONFIG_PASSPHRASE
    or _FILE, as for the Pulumi CLI): only rfc2136 zones need one, for the TSIG key of the transfer.
    """
    settings, config = stack_config(project_dir, stack, environ)
    return settings, config.project


def stack_config(
    project_dir: Path, stack: str, environ: Mapping[str, str] | None = None
) -> tuple[MailSettings, StackConfig]:
    """`stack_settings`, with the stack's raw configuration (provider credentials such as `hcloud:token`)."""
    try:
        passphrase = read_passphrase(environ or {})
        config = load_stack(project_dir, stack, passphrase=passphrase)
    except StackFileError as err:
        raise AdoptError(str(err)) from None
    if TSIG_SECRET_PATH in config.undecrypted:
        raise AdoptError(
            "rfc2136 zones are listed by a TSIG-signed zone transfer: set PULUMI_CONFIG_PASSPHRASE (or "
            "PULUMI_CONFIG_PASSPHRASE_FILE) so adopt can open mailstack:dns.rfc2136.keySecret"
        )
    try:
        settings = load_settings(config.raw, secret_keys=config.secret_keys, stack=stack)
    except ConfigError as err:
        raise AdoptConfigError(str(err)) from None
    return settings, config


def desired_records(settings: MailSettings) -> list[RecordSpec]:
    """Every record the stack creates; DKIM content is left empty (its identity does not depend on it)."""
    dkim = [
        dkim_record(settings, domain, selector, "")
        for domain in settings.domains
        for selector in dkim_selectors(domain)
    ]
    return [*static_records(settings), *dkim]


def _zone_of(name: str, zones: Iterable[str]) -> str | None:
    matches = [z for z in zones if name == z or name.endswith("." + z)]
    return max(matches, key=len) if matches else None


def live_record(item: Mapping[str, Any], zones: Iterable[str], zone_ids: Mapping[str, str]) -> LiveRecord | None:
    """One API record in logical form; None for records outside the stack's zones.

    Raises:
        AdoptError: the record lacks `id`, `name` or `type`.
    """
    try:
        record_id, name, rtype = str(item["id"]), str(item["name"]).rstrip(".").lower(), str(item["type"]).upper()
    except KeyError as err:
        raise AdoptError(f"live record without {err}: {json.dumps(item)[:200]}") from None
    zone = str(item.get("zone_name") or "") or _zone_of(name, zones)
    if zone is None or zone not in zones:
        return None
    zone_id = str(item.get("zone_id") or zone_ids.get(zone, ""))
    content = str(item.get("content") or "")
    priority = item.get("priority")
    data = item.get("data") or {}
    if rtype == "TXT":
        # Content that is not valid quoted strings is kept as stored.
        with contextlib.suppress(dns.exception.DNSException):
            content = parse_txt(content)
    elif rtype in ("MX", "CNAME"):
        content = content.rstrip(".").lower()
    elif rtype == "SRV":
        if data:
            priority = data.get("priority", priority)
            content = f"{int(data.get('weight', 0))} {int(data.get('port', 0))} {str(data.get('target', '.')).rstrip('.') or '.'}"
        else:
            # Cloudflare lists SRV content as "<weight> <port> <target>" (tab or space separated).
            parts = content.split()
            if len(parts) == 3:
                content = f"{parts[0]} {parts[1]} {parts[2].rstrip('.') or '.'}"
    return LiveRecord(
        id=record_id,
        zone=zone,
        zone_id=zone_id,
        name=name,
        type=rtype,
        content=content,
        priority=int(priority) if isinstance(priority, (int, float)) and rtype in ("MX", "SRV") else None,
        comment=str(item.get("comment") or ""),
    )


def parse_live(data: object, zones: Iterable[str], zone_ids: Mapping[str, str]) -> list[LiveRecord]:
    """Live records from JSON: a list of API records, an API answer (`{"result": [...]}`), or zone → either.

    Raises:
        AdoptError: the JSON has none of these shapes.
    """
    zones = list(zones)
    items: list[Mapping[str, Any]] = []

    def collect(value: object, zone: str | None) -> None:
        if isinstance(value, Mapping) and "result" in value:
            collect(value["result"], zone)
        elif isinstance(value, list):
            for item in value:
                if not isinstance(item, Mapping):
                    raise AdoptError(f"live records: expected objects, found {type(item).__name__}")
                items.append({**item, "zone_name": item.get("zone_name") or zone} if zone else item)
        elif isinstance(value, Mapping) and zone is None:
            for key, sub in value.items():
                collect(sub, str(key).rstrip(".").lower())
        else:
            raise AdoptError("live records: expected a list of records, an API answer or zone → records")

    collect(data, None)
    out = [live_record(item, zones, zone_ids) for item in items]
    return [r for r in out if r is not None]


Fetch = Callable[[str, str], Any]
"""(url, token) → decoded JSON answer."""


def http_get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace")[:500]
        raise AdoptError(f"Cloudflare API {err.code} for {url}: {body}") from None
    except urllib.error.URLError as err:
        raise AdoptError(f"Cloudflare API unreachable ({err.reason})") from None


def fetch_live(
    zones: Iterable[str], zone_ids: Mapping[str, str], token: str, fetch: Fetch = http_get
) -> list[LiveRecord]:
    """Every record of the zones from the API (zone ids looked up by name where the config has none)."""
    zones = sorted(zones)
    ids = dict(zone_ids)
    for zone in zones:
        if zone not in ids:
            answer = fetch(f"{API}/zones?{urllib.parse.urlencode({'name': zone})}", token)
            results = answer.get("result") or []
            if not results:
                raise AdoptError(f"zone {zone} is not visible with this token (needs Zone:Zone:Read)")
            ids[zone] = str(results[0]["id"])
    records: list[LiveRecord] = []
    for zone in zones:
        page = 1
        while True:
            query = urllib.parse.urlencode({"per_page": 100, "page": page})
            answer = fetch(f"{API}/zones/{ids[zone]}/dns_records?{query}", token)
            items = [{**item, "zone_name": zone, "zone_id": ids[zone]} for item in answer.get("result") or []]
            records += parse_live(items, zones, ids)
            info = answer.get("result_info") or {}
            if page >= int(info.get("total_pages") or 1):
                break
            page += 1
    return records


# -- the plan ------------------------------------------------------------------------------------


def managed_comment(stack: str) -> str:
    """The comment MailDns puts on every record it creates (components/mail_dns.py)."""
    return f"managed by mailstack (stack {stack})"


def make_plan(desired: Sequence[RecordSpec], live: Sequence[LiveRecord], stack: str) -> Plan:
    """Match live records to desired ones by identity (type, name, MX exchange, TXT `v=` tag).

    Records this stack created itself (its comment) are already in the state and are left alone.
    """
    plan = Plan()
    by_key = {r.key: r for r in desired}
    desired_names = {r.name for r in desired}
    mx_names = {r.name for r in desired if r.type == "MX"}
    taken: set[str] = set()
    for record in sorted(live, key=lambda r: (r.zone, r.name, r.type, r.content, r.id)):
        if record.comment == managed_comment(stack):
            continue
        want = by_key.get(record.key)
        if want is not None:
            if record.key in taken:
                plan.deletes.append((record, f"a second {record.type} with the identity of {want.name}'s record"))
            else:
                taken.add(record.key)
                plan.imports.append((want, record))
        elif record.type == "CNAME" and record.name in desired_names:
            plan.deletes.append((record, "a CNAME cannot coexist with the mail records at this name (RFC 1034 §3.6.2)"))
        elif record.type == "MX" and record.name in mx_names:
            plan.stale.append(record)
    return plan


# -- output --------------------------------------------------------------------------------------


def component_urn(stack: str, project: str, component: str) -> str:
    return f"urn:pulumi:{stack}::{project}::{COMPONENT_TYPE}::{component}"


def import_command(stack: str, project: str, component: str, want: RecordSpec, live: LiveRecord) -> str:
    """`pulumi import` for one Cloudflare record, into the MailDns component, as the program names it."""
    return import_line(
        stack,
        project,
        component,
        resource_type=RECORD_TYPE,
        name=f"{component}-{want.key}",
        import_id=cloudflare_import_id(live),
    )


def import_line(stack: str, project: str, component: str, *, resource_type: str, name: str, import_id: str) -> str:
    """`pulumi import` for one resource into the MailDns component."""
    parent = f"{component}={component_urn(stack, project, component)}"
    return shlex.join(
        [
            "pulumi",
            "import",
            "--stack",
            stack,
            resource_type,
            name,
            import_id,
            "--parent",
            parent,
            # The program does not protect DNS records; an imported record should not differ.
            "--protect=false",
            "--generate-code=false",
        ]
    )


def import_file(plan: Plan, component: str, backend: Backend | None = None) -> dict[str, object]:
    """A `pulumi import --file` document that also creates the MailDns component as a placeholder.

    For a stack that has never run `pulumi up`: `--parent` needs the component in the state, an
    import file can create it (pulumi/pulumi#14461, #15633).
    """
    return import_document(component, import_resources(plan, component, backend or CLOUDFLARE))


def import_resources(plan: Plan, component: str, backend: Backend) -> list[dict[str, object]]:
    """The import-file entries of a plan's imports."""
    return [
        {
            "type": backend.record_type,
            "name": f"{component}-{want.key}",
            "id": backend.import_id(live),
            "parent": component,
        }
        for want, live in plan.imports
    ]


def import_document(component: str, resources: Sequence[Mapping[str, object]]) -> dict[str, object]:
    placeholder: dict[str, object] = {"type": COMPONENT_TYPE, "name": component, "component": True}
    return {"resources": [placeholder, *resources]}


def cloudflare_import_id(record: LiveRecord) -> str:
    # `<zone id>/<record id>`: the DnsRecord import format (pulumi_cloudflare/dns_record.py, "## Import").
    return f"{record.zone_id}/{record.id}"


def _delete_command(record: LiveRecord) -> str:
    url = f"{API}/zones/{record.zone_id}/dns_records/{record.id}"
    return f'curl -fsS -X DELETE -H "Authorization: Bearer ${TOKEN_ENV}" {shlex.quote(url)}'


CLOUDFLARE = Backend("Cloudflare", RECORD_TYPE, cloudflare_import_id, _delete_command)


def import_instructions(
    imports: Sequence[tuple[str, str]],
    *,
    stack: str,
    project: str,
    component: str,
    resource_type: str,
    file: str | None,
) -> list[str]:
    """The report's import lines for (record key, import id) pairs: one `pulumi import --file` with an
    import file, else one `pulumi import --parent` per resource (every backend's report ends the same way)."""
    if file is not None:
        return [
            f"# {file} holds them with the MailDns component as a placeholder parent, for a stack",
            "# that has never run `pulumi up`:",
            shlex.join(
                ["pulumi", "import", "--stack", stack, "--file", file, "--protect=false", "--generate-code=false"]
            ),
        ]
    return [
        "# (--parent needs the MailDns component in the state: it is there once `pulumi up` has",
        "#  run, even a failed one; before the first `pulumi up`, use --import-file instead)",
        *(
            import_line(
                stack, project, component, resource_type=resource_type, name=f"{component}-{key}", import_id=import_id
            )
            for key, import_id in imports
        ),
    ]


def render_plan(
    plan: Plan, *, stack: str, project: str, component: str, file: str | None = None, backend: Backend | None = None
) -> str:
    """The report: conflicts, the exact commands, and what to do next."""
    backend = backend or CLOUDFLARE
    lines: list[str] = []
    at = "" if backend is CLOUDFLARE else f" at {backend.title}"
    if not (plan.imports or plan.deletes or plan.stale):
        return f"# stack {stack}: no live record{at} conflicts with the records the stack creates; run `pulumi up`.\n"
    if plan.imports:
        lines.append(f"# {len(plan.imports)} live record(s){at} have the identity of a record stack {stack} creates;")
        lines.append("# import them so the stack owns them (the next `pulumi up` then updates them in place):")
        for want, live in plan.imports:
            lines.append(f"#   {live.describe()}  (id {live.id})  ->  {want.type} {want.name}: {want.purpose}")
        lines += import_instructions(
            [(want.key, backend.import_id(live)) for want, live in plan.imports],
            stack=stack,
            project=project,
            component=component,
            resource_type=backend.record_type,
            file=file,
        )
    if plan.deletes:
        lines.append("# These live records must be removed before the stack can create its own:")
        for live, reason in plan.deletes:
            lines.append(f"#   {live.describe()}: {reason}")
            lines.append(backend.delete_command(live))
    if plan.stale:
        lines.append("# Live MX records the stack does not publish (an old mail provider?); mail delivered there")
        lines.append("# never reaches this server. Remove them unless they are a backup MX you forgot to configure:")
        for live in plan.stale:
            lines.append(f"#   {live.describe()}")
            lines.append(f"# {backend.delete_command(live)}")
    lines.append(f"# Then: pulumi up --stack {stack}")
    return "\n".join(lines) + "\n"


# -- rfc2136 -------------------------------------------------------------------------------------


def rfc2136_live(settings: MailSettings, zones: Iterable[str], transfer: Transfer | None = None) -> list[LiveRecord]:
    """Every record of the zones, by TSIG-signed AXFR from the stack's update server (config/rfc2136.py)."""
    server = settings.rfc2136
    if server is None:
        raise AdoptError("dns.rfc2136 is not configured")  # config/checks.py reports it first
    target = rfc2136.Server(
        server.server, server.port, server.key_name, server.key_algorithm, server.key_secret.get_secret_value()
    )
    fetch = transfer or rfc2136.transfer_zone
    out: list[LiveRecord] = []
    for zone in sorted(zones):
        try:
            records = fetch(target, zone)
        except rfc2136.Rfc2136Error as err:
            raise AdoptError(str(err)) from None
        out += [LiveRecord("", zone, "", r.name, r.type, r.content, r.priority, "") for r in records]
    return out


Transfer = Callable[["rfc2136.Server", str], list[RecordSpec]]


def render_rfc2136_plan(plan: Plan, settings: MailSettings, stack: str) -> tuple[str, bool]:
    """The report for rfc2136 zones, and whether anything blocks `pulumi up`.

    Nothing is imported there: the provider's create replaces the live RR of the same identity in
    the same update that adds its own (config/rfc2136.py), so an old SPF text or MX preference is
    simply taken over. What does block is a CNAME at a name the stack writes: the server would
    ignore the add (RFC 2136 §3.4.2.2), so create refuses it.
    """
    server = settings.rfc2136
    assert server is not None
    lines: list[str] = []
    changes = [(want, live) for want, live in plan.imports if not _same(want, live)]
    if changes:
        lines.append(f"# {len(changes)} live record(s) have the identity of a record stack {stack} writes; `pulumi up`")
        lines.append("# replaces each in the same update that adds the stack's own (nothing to import):")
        for want, live in changes:
            lines.append(f"#   {live.describe()}  ->  {want.type} {want.name}: {want.purpose}")
    cnames = [(live, reason) for live, reason in plan.deletes if live.type == "CNAME"]
    if cnames:
        lines.append("# These CNAME records must be removed first (the server would ignore the stack's records")
        lines.append('# beside them); with the TSIG key in a file for nsupdate(1) (`key "<name>" { algorithm ...;')
        lines.append('# secret "..."; };`), never on the command line:')
        for live, reason in cnames:
            lines.append(f"#   {live.describe()}: {reason}")
        body = "".join(f"update delete {live.name}. CNAME\n" for live, _ in cnames)
        lines.append(f"nsupdate -k <key file> <<'EOF'\nserver {server.server} {server.port}\n{body}send\nEOF")
    if plan.stale:
        lines.append("# Live MX records the stack does not publish (an old mail provider?); remove them unless")
        lines.append("# they are a backup MX you forgot to configure:")
        lines += [f"#   {live.describe()}" for live in plan.stale]
    if not lines:
        return f"# stack {stack}: no live record conflicts with the records the stack writes; run `pulumi up`.\n", False
    lines.append(f"# Then: pulumi up --stack {stack}")
    return "\n".join(lines) + "\n", bool(cnames)


def _same(want: RecordSpec, live: LiveRecord) -> bool:
    if not want.content:  # a DKIM record before its key is known: compared by identity only
        return False
    return (want.content, want.priority) == (live.content, live.priority if want.type in ("MX", "SRV") else None)


# -- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mailstack.adopt",
        description="List live DNS records (Cloudflare, DigitalOcean, Hetzner, Route 53, rfc2136) that block the "
        "stack's records and print the `pulumi import` commands that adopt them.",
        epilog="Exit code: 0 nothing blocks `pulumi up`, 1 records still block it (or the configuration has "
        "problems; each line says how to fix it), 2 could not check.",
    )
    parser.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--project-dir", default=".", help="directory holding Pulumi.yaml (default: .)")
    parser.add_argument(
        "--live",
        metavar="FILE",
        help="JSON of the zones' live records (a Cloudflare list-records answer, a list of records, or zone → "
        f"records); without it, the API is asked with the token in {TOKEN_ENV}",
    )
    parser.add_argument(
        "--import-file",
        metavar="FILE",
        help="write a `pulumi import --file` document (with the MailDns component as placeholder) instead of "
        "one command per record: for a stack that has never run `pulumi up`",
    )
    parser.add_argument("--component", default=DEFAULT_COMPONENT, help="name of the MailDns resource (default: dns)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    fetch: Fetch = http_get,
    transfer: Transfer | None = None,
    endpoints: Mapping[str, str] | None = None,
) -> int:
    """Args: endpoints: API base per backend (`digitalocean`, `hetzner`, `route53`), for tests on loopback."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        settings, config = stack_config(Path(args.project_dir), args.stack, env)
        project = config.project
        providers = settings.zone_providers
        all_desired = desired_records(settings)
        blocked = False
        resources: list[dict[str, object]] = []
        if "rfc2136" in providers.values():
            zones = sorted(z for z, p in providers.items() if p == "rfc2136")
            desired = [r for r in all_desired if r.zone in zones]
            plan = make_plan(desired, rfc2136_live(settings, zones, transfer), args.stack)
            text, blocked = render_rfc2136_plan(plan, settings, args.stack)
            sys.stdout.write(text)
        for provider in sorted(set(providers.values()) - LISTED):
            sys.stdout.write(_not_listed(provider, args.stack))
        for provider in REST_BACKENDS:
            if provider not in providers.values():
                continue
            from mailstack import adopt_backends  # imports this module: loaded only when needed

            zones = sorted(z for z, p in providers.items() if p == provider)
            found = adopt_backends.section(
                provider,
                settings,
                [r for r in all_desired if r.zone in zones],
                zones,
                config=config,
                env=env,
                stack=args.stack,
                component=args.component,
                file=args.import_file,
                endpoints=endpoints,
            )
            sys.stdout.write(found.text)
            blocked |= found.blocked
            resources += found.resources
        if "cloudflare" in providers.values():
            plan = cloudflare_plan(settings, all_desired, args, env, fetch)
            blocked |= bool(plan.imports or plan.deletes)
            resources += import_resources(plan, args.component, CLOUDFLARE)
            sys.stdout.write(
                render_plan(plan, stack=args.stack, project=project, component=args.component, file=args.import_file)
            )
        if args.import_file and resources:
            document = import_document(args.component, resources)
            Path(args.import_file).write_text(json.dumps(document, indent=2) + "\n")
    except AdoptError as err:
        print_error("adopt", str(err))
        return err.exit_code
    # Stale MX records are advice (a forgotten backup MX is legitimate); they do not block `pulumi up`.
    return EXIT_FIX if blocked else EXIT_OK


REST_BACKENDS = ("digitalocean", "hetzner", "route53")
"""Listed through their REST APIs (mailstack/adopt_backends.py)."""
LISTED = frozenset({"cloudflare", "rfc2136", *REST_BACKENDS})


def cloudflare_plan(
    settings: MailSettings,
    all_desired: Sequence[RecordSpec],
    args: argparse.Namespace,
    env: Mapping[str, str],
    fetch: Fetch,
) -> Plan:
    providers = settings.zone_providers
    desired = [r for r in all_desired if providers.get(r.zone) == "cloudflare"]
    zones = sorted({r.zone for r in desired})
    zone_ids = {d.zone: d.zone_id for d in settings.domains if d.zone_id}
    if args.live:
        try:
            data = json.loads(Path(args.live).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise AdoptError(f"{args.live}: {err}") from None
        live = parse_live(data, zones, zone_ids)
    else:
        token = env.get(TOKEN_ENV)
        if not token:
            raise AdoptError(f"set {TOKEN_ENV} (Zone:DNS:Read and Zone:Zone:Read), or pass --live FILE")
        live = fetch_live(zones, zone_ids, token, fetch)
    missing = sorted({r.zone for r in live if not r.zone_id})
    if missing:
        raise AdoptError(f"no zone id for {', '.join(missing)}: set mailstack:domains.<d>.zoneId or include zone_id")
    return make_plan(desired, live, args.stack)


def _not_listed(provider: str, stack: str) -> str:
    """Backends adopt does not list, and what to do there instead."""
    assert provider == "manual", provider
    return f"# stack {stack} uses manual DNS: nothing to adopt (publish the zoneFile output yourself).\n"


if __name__ == "__main__":
    sys.exit(main())
