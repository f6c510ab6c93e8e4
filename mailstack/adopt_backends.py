"""`adopt` for DigitalOcean, Hetzner and Route 53 zones: list the live records through each REST API.

Like Cloudflare (mailstack/adopt.py), each provider refuses or duplicates what is already there, so
an existing record stops (or breaks) the first `pulumi up`:

- DigitalOcean keeps one resource per record (pulumi-digitalocean `DnsRecord`): live records with
  the identity of a stack record are imported, a CNAME where mail records go must be deleted, old
  MX records are listed. Records come from `GET /v2/domains/{domain}/records`, paginated by
  `links.pages.next` (DigitalOcean API reference, Domain Records: domains_list_records).
- Hetzner and Route 53 keep one resource per RRset (name and type; pulumi-hcloud `ZoneRrset`,
  pulumi-aws `route53.Record`). Creating an RRset that exists fails (Route 53's CREATE action,
  Hetzner's `POST /zones/{zone}/rrsets`), so each live RRset at a name and type the stack writes is
  imported; the values it holds that the stack does not publish are listed, since the next
  `pulumi up` replaces the whole RRset.
  Hetzner: `GET https://api.hetzner.cloud/v1/zones/{id or name}/rrsets?page=&per_page=`, paginated
  by `meta.pagination.next_page` (hcloud-go hcloud/zone_rrset.go `ListRRSets`, hcloud/schema/meta.go).
  Route 53: `ListHostedZonesByName` for the zone id, then `ListResourceRecordSets`, paginated by
  `NextRecordName`/`NextRecordType`/`NextRecordIdentifier` (Route 53 API reference, 2013-04-01),
  each request signed with SigV4 (mailstack/sigv4.py).

Credentials: the provider's own environment variable (what its Pulumi provider reads) or the stack's
provider config key (`digitalocean:token`, `hcloud:token`, `aws:accessKey`/`aws:secretKey`), opened
with the stack's passphrase when it is a secret.

None of these record stores carries an owner mark adopt could read (Cloudflare's comment), so a
record or RRset this stack created in an earlier `pulumi up` is listed too: `pulumi import` then
answers that the resource already exists in the stack, and that line can be skipped.
"""

from __future__ import annotations

import configparser
import contextlib
import datetime
import json
import re
import shlex
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from mailstack import sigv4
from mailstack.adopt import (
    AdoptError,
    Backend,
    LiveRecord,
    Plan,
    import_instructions,
    import_resources,
    make_plan,
    render_plan,
)
from mailstack.config import MailSettings
from mailstack.config.dns_formats import RRset, rrsets
from mailstack.config.records import RecordSpec
from mailstack.config.rfc2136 import logical
from mailstack.stackfile import StackConfig

ENDPOINTS = {
    "digitalocean": "https://api.digitalocean.com/v2",
    "hetzner": "https://api.hetzner.cloud/v1",
    "route53": "https://route53.amazonaws.com/2013-04-01",
}
"""The public API bases; tests point them at a loopback server."""

DO_TOKEN_ENVS = ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN")
"""What pulumi-digitalocean reads (terraform-provider-digitalocean digitalocean/provider.go `token`)."""
HCLOUD_TOKEN_ENV = "HCLOUD_TOKEN"
"""What pulumi-hcloud reads (terraform-provider-hcloud internal/provider `token`)."""
ROUTE53_NS = "{https://route53.amazonaws.com/doc/2013-04-01/}"
ROUTE53_SIGNING_REGION = "us-east-1"
"""Route 53 is a global service signed for us-east-1 (AWS General Reference, Route 53 endpoints)."""
PAGE_SIZE = 100


@dataclass(frozen=True)
class Section:
    """One backend's part of the report."""

    text: str
    blocked: bool
    resources: list[dict[str, object]] = field(default_factory=list)
    """`pulumi import --file` entries."""


Http = Callable[[str, Mapping[str, str]], bytes]
"""(url, headers) → the answer's body; raises AdoptError on an HTTP error (with the API's message)."""


def http_get(url: str, headers: Mapping[str, str]) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as err:
        raise ApiError(err.code, url, err.read()) from None
    except urllib.error.URLError as err:
        raise AdoptError(f"{urllib.parse.urlsplit(url).netloc} unreachable ({err.reason})") from None


class ApiError(AdoptError):
    def __init__(self, status: int, url: str, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.url, self.body = status, url, body


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        raise AdoptError(f"{what}: the answer is not JSON") from None


# -- credentials ---------------------------------------------------------------------------------


def _secret(config: StackConfig, key: str) -> str | None:
    """A provider config value; None when unset. An encrypted one needs the stack's passphrase."""
    value = config.raw.get(key)
    if not isinstance(value, str) or not value:
        return None
    if key in config.undecrypted:
        raise AdoptError(
            f"{key} is a secret: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) so adopt can "
            "open it, or put the credential in the environment"
        )
    return value


def token(config: StackConfig, env: Mapping[str, str], envs: Sequence[str], key: str, scope: str) -> str:
    for name in envs:
        if env.get(name):
            return env[name]
    value = _secret(config, key)
    if value is None:
        raise AdoptError(f"set {' or '.join(envs)} ({scope}), or `pulumi config set --secret {key} <token>`")
    return value


def aws_credentials(config: StackConfig, env: Mapping[str, str]) -> sigv4.Credentials:
    """As pulumi-aws resolves them: environment, then `aws:accessKey`/`aws:secretKey`, then a profile."""
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return sigv4.Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN"))
    key_id, secret = _secret(config, "aws:accessKey"), _secret(config, "aws:secretKey")
    if key_id and secret:
        return sigv4.Credentials(key_id, secret, _secret(config, "aws:token"))
    profile = env.get("AWS_PROFILE") or _secret(config, "aws:profile")
    if profile:
        path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials").expanduser()
        parser = configparser.ConfigParser()
        with contextlib.suppress(OSError, configparser.Error):
            parser.read_string(path.read_text())
        if parser.has_option(profile, "aws_access_key_id") and parser.has_option(profile, "aws_secret_access_key"):
            return sigv4.Credentials(
                parser.get(profile, "aws_access_key_id"),
                parser.get(profile, "aws_secret_access_key"),
                parser.get(profile, "aws_session_token", fallback=None),
            )
        raise AdoptError(f"AWS profile {profile}: no aws_access_key_id/aws_secret_access_key in {path}")
    raise AdoptError(
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (route53:ListHostedZonesByName and "
        "route53:ListResourceRecordSets), or aws:accessKey/aws:secretKey or aws:profile in the stack"
    )


# -- DigitalOcean --------------------------------------------------------------------------------

DO_RECORD_TYPE = "digitalocean:index/dnsRecord:DnsRecord"


def digitalocean_record(zone: str, item: Mapping[str, Any]) -> LiveRecord:
    """One `domain_records` entry in logical form (names are relative, `@` the apex; targets without a dot)."""
    rtype = str(item.get("type") or "").upper()
    name = str(item.get("name") or "@")
    fqdn = zone if name == "@" else f"{name}.{zone}".lower()
    data = str(item.get("data") or "")
    host = zone if data == "@" else data.rstrip(".").lower()
    priority = item.get("priority")
    content = data
    if rtype in ("MX", "CNAME"):
        content = host
    elif rtype == "SRV":
        content = f"{int(item.get('weight') or 0)} {int(item.get('port') or 0)} {host or '.'}"
    elif rtype == "CAA":
        content = f"{int(item.get('flags') or 0)} {item.get('tag')} {json.dumps(data.rstrip('.'))}"
    return LiveRecord(
        id=str(item.get("id")),
        zone=zone,
        zone_id=zone,
        name=fqdn,
        type=rtype,
        content=content,
        priority=int(priority) if isinstance(priority, int) and rtype in ("MX", "SRV") else None,
        comment="",
    )


def _do_message(err: ApiError) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(err.body).get("message") or "")
    return err.body.decode(errors="replace")[:300]


def digitalocean_live(zones: Sequence[str], tok: str, base: str, http: Http) -> list[LiveRecord]:
    headers = {"Authorization": f"Bearer {tok}", "Accept": "application/json"}
    out: list[LiveRecord] = []
    for zone in zones:
        url: str | None = f"{base}/domains/{urllib.parse.quote(zone)}/records?per_page={PAGE_SIZE}"
        while url:
            try:
                answer = _json(http(url, headers), f"DigitalOcean {url}")
            except ApiError as err:
                hint = " (the token needs the domain:read scope)" if err.status in (401, 403) else ""
                if err.status == 404:
                    hint = f" (no domain {zone} in this account)"
                raise AdoptError(f"DigitalOcean API {err.status} for {url}: {_do_message(err)}{hint}") from None
            out += [digitalocean_record(zone, item) for item in answer.get("domain_records") or []]
            url = ((answer.get("links") or {}).get("pages") or {}).get("next")
            if url and not url.startswith(base + "/"):
                # The token goes only to the API it belongs to.
                raise AdoptError(f"DigitalOcean API: next page {url} is outside {base}")
    return out


def _do_import_id(record: LiveRecord) -> str:
    # `<domain>,<record id>` (pulumi_digitalocean/dns_record.py, "## Import").
    return f"{record.zone},{record.id}"


def _do_delete(record: LiveRecord) -> str:
    url = f"{ENDPOINTS['digitalocean']}/domains/{record.zone}/records/{record.id}"
    return f'curl -fsS -X DELETE -H "Authorization: Bearer ${DO_TOKEN_ENVS[0]}" {shlex.quote(url)}'


DIGITALOCEAN = Backend("DigitalOcean", DO_RECORD_TYPE, _do_import_id, _do_delete)


def digitalocean_section(
    desired: Sequence[RecordSpec],
    zones: Sequence[str],
    *,
    config: StackConfig,
    env: Mapping[str, str],
    stack: str,
    component: str,
    file: str | None,
    base: str,
    http: Http,
) -> Section:
    tok = token(config, env, DO_TOKEN_ENVS, "digitalocean:token", "a token with domain:read")
    plan: Plan = make_plan(desired, digitalocean_live(zones, tok, base, http), stack)
    text = render_plan(plan, stack=stack, project=config.project, component=component, file=file, backend=DIGITALOCEAN)
    return Section(text, bool(plan.imports or plan.deletes), import_resources(plan, component, DIGITALOCEAN))


# -- RRset backends (Hetzner, Route 53) ----------------------------------------------------------


@dataclass(frozen=True)
class LiveSet:
    """A live RRset, its values in logical form, and how the provider imports and deletes it."""

    zone: str
    name: str
    type: str
    values: tuple[RecordSpec, ...]
    import_id: str
    delete_command: str
    blocker: str | None = None
    """Why it cannot be imported as the stack's RRset (a Route 53 alias or routing-policy set)."""

    def describe(self) -> str:
        return f"{self.type} {self.name} " + ", ".join(_value(r) for r in self.values)


def _value(record: RecordSpec) -> str:
    return f"{record.priority} {record.content}" if record.priority is not None else record.content


def parse_value(zone: str, name: str, rtype: str, value: str, ttl: int, *, origin: dns.name.Name) -> RecordSpec:
    """A presentation-form value (`10 mail.example.com.`, `"v=spf1 -all"`) in the logical form of RecordSpec."""
    try:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value, origin=origin, relativize=False
        )
    except (dns.exception.DNSException, ValueError):
        return RecordSpec(zone, name, rtype, value, None, ttl, "")  # kept as stored
    return logical(zone, name, rdata, ttl)


@dataclass
class SetPlan:
    imports: list[tuple[RRset, LiveSet, list[RecordSpec]]] = field(default_factory=list)
    """Desired RRset, the live one, and the live values the next `pulumi up` removes."""
    deletes: list[tuple[LiveSet, str]] = field(default_factory=list)


def make_set_plan(desired: Sequence[RecordSpec], live: Sequence[LiveSet]) -> SetPlan:
    plan = SetPlan()
    wanted = {(s.name, s.type): s for s in rrsets(desired)}
    names = {r.name for r in desired}
    for rrset in sorted(live, key=lambda s: (s.zone, s.name, s.type)):
        if rrset.type == "SOA" or (rrset.type == "NS" and rrset.name == rrset.zone):
            continue  # the provider's own
        want = wanted.get((rrset.name, rrset.type))
        if want is not None:
            if rrset.blocker:
                plan.deletes.append((rrset, rrset.blocker))
                continue
            keys = {r.key for r in want.records}
            plan.imports.append((want, rrset, [r for r in rrset.values if r.key not in keys]))
        elif rrset.type == "CNAME" and rrset.name in names:
            plan.deletes.append((rrset, "a CNAME cannot coexist with the mail records at this name (RFC 1034 §3.6.2)"))
    return plan


def render_set_plan(
    plan: SetPlan,
    *,
    title: str,
    resource_type: str,
    stack: str,
    project: str,
    component: str,
    file: str | None,
) -> str:
    if not (plan.imports or plan.deletes):
        return f"# stack {stack}: no live record set at {title} conflicts with the stack's records; run `pulumi up`.\n"
    lines: list[str] = []
    if plan.imports:
        lines.append(f"# {len(plan.imports)} live record set(s) at {title} have the name and type of one stack {stack}")
        lines.append("# creates; import them so the stack owns them (the next `pulumi up` then sets their values):")
        for want, live, dropped in plan.imports:
            lines.append(f"#   {live.describe()}  ->  {want.type} {want.name}: {want.records[0].purpose}")
            for record in dropped:
                keep = (
                    "an MX the stack does not publish (an old mail provider?)"
                    if record.type == "MX"
                    else "keep it by adding it to the domain's `records` in the stack config"
                )
                lines.append(f"#     `pulumi up` then removes {record.type} {_value(record)}: {keep}")
        lines += import_instructions(
            [(want.key, live.import_id) for want, live, _ in plan.imports],
            stack=stack,
            project=project,
            component=component,
            resource_type=resource_type,
            file=file,
        )
    if plan.deletes:
        lines.append("# These live record sets must be removed before the stack can create its own:")
        for live, reason in plan.deletes:
            lines.append(f"#   {live.describe()}: {reason}")
            lines.append(live.delete_command)
    lines.append(f"# Then: pulumi up --stack {stack}")
    return "\n".join(lines) + "\n"


def _set_resources(plan: SetPlan, component: str, resource_type: str) -> list[dict[str, object]]:
    return [
        {"type": resource_type, "name": f"{component}-{want.key}", "id": live.import_id, "parent": component}
        for want, live, _ in plan.imports
    ]


# -- Hetzner -------------------------------------------------------------------------------------

HCLOUD_RECORD_TYPE = "hcloud:index/zoneRrset:ZoneRrset"


def _hcloud_message(err: ApiError) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        error = json.loads(err.body).get("error") or {}
        return f"{error.get('code')}: {error.get('message')}"
    return err.body.decode(errors="replace")[:300]


def hetzner_live(zones: Mapping[str, str], tok: str, base: str, http: Http) -> list[LiveSet]:
    """Every RRset of each zone; `zones` maps the zone name to what the program passes as `zone` (id or name)."""
    headers = {"Authorization": f"Bearer {tok}", "Accept": "application/json"}
    out: list[LiveSet] = []
    for zone, ref in sorted(zones.items()):
        origin = dns.name.from_text(zone)
        page: int | None = 1
        while page:
            url = f"{base}/zones/{urllib.parse.quote(ref)}/rrsets?" + urllib.parse.urlencode(
                {"page": page, "per_page": PAGE_SIZE}
            )
            try:
                answer = _json(http(url, headers), f"Hetzner {url}")
            except ApiError as err:
                hint = " (a project API token of the project holding the zone)" if err.status in (401, 403) else ""
                raise AdoptError(f"Hetzner API {err.status} for {url}: {_hcloud_message(err)}{hint}") from None
            for item in answer.get("rrsets") or []:
                rel, rtype = str(item.get("name") or "@"), str(item.get("type") or "").upper()
                name = zone if rel == "@" else f"{rel}.{zone}".lower()
                ttl = int(item.get("ttl") or 0)
                values = tuple(
                    parse_value(zone, name, rtype, str(r.get("value") or ""), ttl, origin=origin)
                    for r in item.get("records") or []
                )
                rrset_id = str(item.get("id") or f"{rel}/{rtype}")
                url_del = f"{ENDPOINTS['hetzner']}/zones/{ref}/rrsets/{rrset_id}"
                out.append(
                    LiveSet(
                        zone,
                        name,
                        rtype,
                        values,
                        # `<zone id or name>/<rrset id>`, the rrset id being `<name>/<TYPE>`
                        # (terraform-provider-hcloud internal/zonerrset/resource.go `ImportState`).
                        import_id=f"{ref}/{rrset_id}",
                        delete_command=f'curl -fsS -X DELETE -H "Authorization: Bearer ${HCLOUD_TOKEN_ENV}" '
                        f"{shlex.quote(url_del)}",
                    )
                )
            pagination = (answer.get("meta") or {}).get("pagination") or {}
            page = pagination.get("next_page") or None
    return out


def hetzner_section(
    settings: MailSettings,
    desired: Sequence[RecordSpec],
    zones: Sequence[str],
    *,
    config: StackConfig,
    env: Mapping[str, str],
    stack: str,
    component: str,
    file: str | None,
    base: str,
    http: Http,
) -> Section:
    tok = token(config, env, (HCLOUD_TOKEN_ENV,), "hcloud:token", "a project API token")
    # The program passes `zoneId` when set, else the name (components/mail_dns.py `_hetzner`); the
    # import id must say the same, or the first `pulumi up` after the import shows a change.
    refs = {z: next((d.zone_id for d in settings.domains if d.zone == z and d.zone_id), z) for z in zones}
    plan = make_set_plan(desired, hetzner_live(refs, tok, base, http))
    text = render_set_plan(
        plan,
        title="Hetzner",
        resource_type=HCLOUD_RECORD_TYPE,
        stack=stack,
        project=config.project,
        component=component,
        file=file,
    )
    return Section(text, bool(plan.imports or plan.deletes), _set_resources(plan, component, HCLOUD_RECORD_TYPE))


# -- Route 53 ------------------------------------------------------------------------------------

ROUTE53_RECORD_TYPE = "aws:route53/record:Record"


def _route53_name(text: str) -> str:
    # Route 53 lists names with a final dot and escapes characters outside [a-z0-9-_] as octal `\ddd`
    # (Route 53 developer guide, "DNS domain name format").
    name = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
    return name.rstrip(".").lower()


def _route53_message(err: ApiError) -> str:
    with contextlib.suppress(ET.ParseError):
        root = ET.fromstring(err.body)
        code = root.findtext(f".//{ROUTE53_NS}Code") or ""
        message = root.findtext(f".//{ROUTE53_NS}Message") or ""
        if code or message:
            return f"{code}: {message}"
    return err.body.decode(errors="replace")[:300]


def _element_json(element: ET.Element) -> object:
    """A ResourceRecordSet element as the JSON the CLI's change batch takes (for the delete command)."""
    children = list(element)
    if not children:
        text = element.text or ""
        if text in ("true", "false"):
            return text == "true"
        return int(text) if text.isdigit() and element.tag.endswith(("TTL", "Weight")) else text
    if element.tag.endswith("ResourceRecords"):
        return [{"Value": child.findtext(f"{ROUTE53_NS}Value")} for child in children]
    return {child.tag.removeprefix(ROUTE53_NS): _element_json(child) for child in children}


class Route53:
    def __init__(self, credentials: sigv4.Credentials, base: str, http: Http, now: Callable[[], datetime.datetime]):
        self.credentials, self.base, self.http, self.now = credentials, base, http, now

    def get(self, path: str, query: Mapping[str, str]) -> ET.Element:
        url = f"{self.base}{path}?{urllib.parse.urlencode(sorted(query.items()))}"
        amz_date = self.now().astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        headers = sigv4.sign(
            "GET", url, self.credentials, region=ROUTE53_SIGNING_REGION, service="route53", amz_date=amz_date
        )
        try:
            body = self.http(url, headers)
        except ApiError as err:
            raise AdoptError(f"Route 53 API {err.status} for {url}: {_route53_message(err)}") from None
        try:
            # ElementTree resolves no external entities; Python's expat refuses entity expansion bombs.
            return ET.fromstring(body)
        except ET.ParseError as err:
            raise AdoptError(f"Route 53 API {url}: the answer is not XML ({err})") from None

    def zone_id(self, zone: str) -> str:
        answer = self.get("/hostedzonesbyname", {"dnsname": zone, "maxitems": "10"})
        for hosted in answer.iter(f"{ROUTE53_NS}HostedZone"):
            private = hosted.findtext(f"{ROUTE53_NS}Config/{ROUTE53_NS}PrivateZone") == "true"
            # The list starts at the name and goes on in order: only an exact, public match is the zone
            # (the program's lookup is `get_zone(name=zone, private_zone=False)`).
            if _route53_name(hosted.findtext(f"{ROUTE53_NS}Name") or "") == zone and not private:
                return (hosted.findtext(f"{ROUTE53_NS}Id") or "").removeprefix("/hostedzone/")
        raise AdoptError(
            f"Route 53 has no public hosted zone {zone} visible to these credentials (set mailstack:domains.<d>.zoneId "
            "or allow route53:ListHostedZonesByName)"
        )

    def record_sets(self, zone: str, zone_id: str) -> list[LiveSet]:
        out: list[LiveSet] = []
        query: dict[str, str] = {"maxitems": str(PAGE_SIZE)}
        while True:
            answer = self.get(f"/hostedzone/{urllib.parse.quote(zone_id)}/rrset", query)
            for item in answer.iter(f"{ROUTE53_NS}ResourceRecordSet"):
                out.append(_route53_set(zone, zone_id, item))
            if answer.findtext(f"{ROUTE53_NS}IsTruncated") != "true":
                return out
            query = {"maxitems": str(PAGE_SIZE), "name": answer.findtext(f"{ROUTE53_NS}NextRecordName") or ""}
            for key, tag in (("type", "NextRecordType"), ("identifier", "NextRecordIdentifier")):
                value = answer.findtext(f"{ROUTE53_NS}{tag}")
                if value:
                    query[key] = value


def _route53_set(zone: str, zone_id: str, item: ET.Element) -> LiveSet:
    name = _route53_name(item.findtext(f"{ROUTE53_NS}Name") or "")
    rtype = (item.findtext(f"{ROUTE53_NS}Type") or "").upper()
    ttl = int(item.findtext(f"{ROUTE53_NS}TTL") or 0)
    values = tuple(
        parse_value(zone, name, rtype, value.text or "", ttl, origin=dns.name.root)
        for value in item.iter(f"{ROUTE53_NS}Value")
    )
    blocker = None
    alias = item.findtext(f"{ROUTE53_NS}AliasTarget/{ROUTE53_NS}DNSName")
    set_id = item.findtext(f"{ROUTE53_NS}SetIdentifier")
    if alias:
        blocker = f"an alias to {alias.rstrip('.')}: the stack publishes a plain record set here"
        values = (RecordSpec(zone, name, rtype, f"alias {alias.rstrip('.')}", None, ttl, ""),)
    elif set_id:
        blocker = f"a routing-policy record set (SetIdentifier {set_id}): the stack publishes a simple one here"
    batch = {"Changes": [{"Action": "DELETE", "ResourceRecordSet": _element_json(item)}]}
    delete = shlex.join(
        [
            "aws",
            "route53",
            "change-resource-record-sets",
            "--hosted-zone-id",
            zone_id,
            "--change-batch",
            json.dumps(batch, separators=(",", ":")),
        ]
    )
    # `<zone id>_<name>_<TYPE>` (terraform-provider-aws internal/service/route53/record.go
    # `recordParseResourceID`: the name may hold underscores, the first part that is a record type ends it).
    return LiveSet(zone, name, rtype, values, f"{zone_id}_{name}_{rtype}", delete, blocker)


def route53_section(
    settings: MailSettings,
    desired: Sequence[RecordSpec],
    zones: Sequence[str],
    *,
    config: StackConfig,
    env: Mapping[str, str],
    stack: str,
    component: str,
    file: str | None,
    base: str,
    http: Http,
    now: Callable[[], datetime.datetime] | None = None,
) -> Section:
    client = Route53(aws_credentials(config, env), base, http, now or (lambda: datetime.datetime.now(datetime.UTC)))
    live: list[LiveSet] = []
    for zone in zones:
        configured = sorted({d.zone_id for d in settings.domains if d.zone == zone and d.zone_id})
        zone_id = configured[0] if configured else client.zone_id(zone)
        live += client.record_sets(zone, zone_id)
    plan = make_set_plan(desired, live)
    text = render_set_plan(
        plan,
        title="Route 53",
        resource_type=ROUTE53_RECORD_TYPE,
        stack=stack,
        project=config.project,
        component=component,
        file=file,
    )
    return Section(text, bool(plan.imports or plan.deletes), _set_resources(plan, component, ROUTE53_RECORD_TYPE))


def section(
    provider: str,
    settings: MailSettings,
    desired: Sequence[RecordSpec],
    zones: Sequence[str],
    *,
    config: StackConfig,
    env: Mapping[str, str],
    stack: str,
    component: str,
    file: str | None,
    endpoints: Mapping[str, str] | None = None,
    http: Http = http_get,
) -> Section:
    base = {**ENDPOINTS, **(endpoints or {})}[provider].rstrip("/")
    common: dict[str, Any] = {
        "config": config,
        "env": env,
        "stack": stack,
        "component": component,
        "file": file,
        "base": base,
        "http": http,
    }
    if provider == "digitalocean":
        return digitalocean_section(desired, zones, **common)
    if provider == "hetzner":
        return hetzner_section(settings, desired, zones, **common)
    return route53_section(settings, desired, zones, **common)
