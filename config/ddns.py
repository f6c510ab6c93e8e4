"""`mailstack:ddns`: a home address that changes, kept current by ddclient (Debian's `ddclient`) on the host.

Who owns what: Pulumi creates the hostname's A record once, with `publicIPv4`, and then ignores its
address (`ignore_changes`, components/mail_dns.py); ddclient owns the address from then on. Where it
is published:

- `provider: dns`: the hostname's own zone, through that zone's backend: Cloudflare (ddclient's
  `cloudflare` protocol with the stack's API token) or an RFC 2136 server (ddclient's `nsupdate`
  protocol with the stack's TSIG key, in a key file beside the config).
- `dynu`, `noip` (dyndns2 / No-IP update protocol) or `duckdns`: a DDNS service that holds the
  hostname itself (e.g. `mail.example.duckdns.org`), outside the stack's zones.

Pure: this module builds ddclient.conf and checks the settings; components/ddns.py installs them.
The config format is ddclient 3.10's (`ddclient -help`, which documents each protocol's keys):
`key=value` pairs joined by commas, the host name last; values with commas, spaces or quotes are
single-quoted with backslash escapes, except `password=`, which ddclient takes verbatim from
between single quotes (see `_password`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from mailstack.config.errors import Problem, key_path, problem, set_command
from mailstack.config.model import RawSettings
from mailstack.config.records import DDNS_TTL
from mailstack.config.settings import DdnsSettings, Rfc2136Settings

CONF_PATH = "/etc/ddclient.conf"
"""Where Debian's ddclient service reads its config (ddclient.service, /etc/default/ddclient)."""
TSIG_KEY_PATH = "/etc/ddclient/mailstack-tsig.key"
"""nsupdate's `-k` key file for `provider: dns` on an rfc2136 zone (BIND key-file syntax)."""
DDNS_BACKENDS = ("cloudflare", "rfc2136")
"""Stack DNS backends that ddclient 3.10 can update (its `cloudflare` and `nsupdate` protocols)."""
SERVICES: Mapping[str, tuple[str, str]] = {
    # provider → (ddclient protocol, update server); servers as each service documents for ddclient.
    "dynu": ("dyndns2", "api.dynu.com"),
    "noip": ("noip", "dynupdate.no-ip.com"),
    "duckdns": ("duckdns", "www.duckdns.org"),
}
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@+-]*$")


def _zone_of(hostname: str, zones: Mapping[str, str]) -> str | None:
    matches = [z for z in zones if hostname == z or hostname.endswith("." + z)]
    return max(matches, key=len) if matches else None


def resolve(raw: RawSettings, hostname: str, zones: Mapping[str, str]) -> DdnsSettings | None:
    """The resolved `ddns` block (zone → backend from the resolved domains); None when disabled."""
    d = raw.ddns
    if not d.enabled:
        return None
    zone = _zone_of(hostname, zones)
    provider = zones.get(zone or "", "manual") if d.provider == "dns" else d.provider
    return DdnsSettings(
        provider=provider,
        hostname=hostname,
        zone=zone if d.provider == "dns" else None,
        username=d.username,
        password=d.password,
        interval=d.interval,
        ip_source=d.ip_source,
    )


def checks(raw: RawSettings, *, secret: bool) -> Iterator[Problem]:
    """Every problem of the `ddns` block at once (the settings' other blocks passed their shape checks)."""
    d = raw.ddns
    if not d.enabled:
        return
    if raw.target.kind != "ssh":
        yield problem(
            ["ddns", "enabled"],
            "ddclient is installed on the mail host over SSH; a local target has no home address to keep",
            f"pulumi config rm --path '{key_path(['ddns', 'enabled'])}'",
        )
    hostname = raw.hostname.strip().rstrip(".").lower()
    stack_provider = raw.dns.provider
    zones = {
        (dom.zone or name).lower().rstrip("."): dom.dns.provider or stack_provider for name, dom in raw.domains.items()
    }
    zone = _zone_of(hostname, zones)
    if d.provider == "dns":
        if zone is None:
            yield problem(
                ["ddns", "provider"],
                f"{hostname} is in none of the stack's zones, so there is no zone of its own to update; "
                "use a DDNS service that holds the hostname",
                value="dynu",
            )
        elif zones[zone] not in DDNS_BACKENDS:
            yield problem(
                ["ddns", "provider"],
                f"{hostname}'s zone {zone} is published by {zones[zone]}, which ddclient cannot update "
                "(Debian's ddclient 3.10 speaks to Cloudflare and RFC 2136 servers); move the zone, or use a DDNS "
                "service that holds the hostname",
                value="dynu",
            )
        if raw.public_ipv4 is None:
            yield problem(
                ["publicIPv4"],
                "is required with ddns: Pulumi creates the hostname's A record once with it (the current address); "
                "ddclient keeps it current afterwards",
                value="<the current public IPv4>",
            )
        if d.username is not None or d.password is not None:
            field = "username" if d.username is not None else "password"
            yield problem(
                ["ddns", field],
                "only applies to a DDNS service; provider dns uses the zone backend's own credentials",
                f"pulumi config rm --path '{key_path(['ddns', field])}'",
            )
    else:
        if zone is not None:
            yield problem(
                ["ddns", "provider"],
                f"{hostname} is in the stack's zone {zone}: the stack publishes its address there, where {d.provider} "
                "cannot update it; use provider dns, or a hostname that the DDNS service holds",
                value="dns",
            )
        if d.provider == "duckdns" and not hostname.endswith(".duckdns.org"):
            yield problem(
                ["hostname"],
                f"'{hostname}' is not a duckdns.org name; Duck DNS only updates its own names",
                value="mail.<yours>.duckdns.org",
            )
        if d.provider in ("dynu", "noip") and not d.username:
            yield problem(["ddns", "username"], f"is required by {d.provider}: the account login", value="<login>")
        what = "the Duck DNS token" if d.provider == "duckdns" else f"the {d.provider} password"
        fix = set_command(["ddns", "password"], "<secret>", secret=True)
        if d.password is None:
            yield problem(["ddns", "password"], f"is required: {what}", fix)
        elif not secret:
            yield problem(["ddns", "password"], f"is stored in plain text; {what} must be set with --secret", fix)
    source = d.ip_source
    if not (_SOURCE_NAME.match(source) or source.startswith(("https://", "http://"))):
        yield problem(
            ["ddns", "ipSource"],
            f"'{source}' is neither a ddclient web source name (e.g. ipify-ipv4) nor an http(s) URL",
            value="ipify-ipv4",
        )


def _value(text: str) -> str:
    """A ddclient.conf value: bare when plain, else single-quoted with `\\` and `'` escaped."""
    if _PLAIN_VALUE.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _password(text: str) -> str:
    """ddclient reads `password=` specially: everything between the line's first and last single quote,
    verbatim, before comments and escapes are processed (`_read_config` in ddclient 3.10), so any
    password without a newline survives when it is single-quoted on a line of its own."""
    if "\n" in text or "\r" in text:
        raise ValueError("a ddclient password cannot contain a line break")
    return f"'{text}'"


def ddclient_conf(
    ddns: DdnsSettings,
    secret: str,
    *,
    rfc2136: Rfc2136Settings | None = None,
    server: str | None = None,
    ssl: bool = True,
    tsig_key_path: str = TSIG_KEY_PATH,
    ca_file: str | None = None,
) -> str:
    """ddclient.conf for one host.

    Args:
        ddns: the resolved settings.
        secret: the Cloudflare API token (cloudflare), the service password or token (dynu, noip,
            duckdns); unused for rfc2136 (the key file holds the TSIG secret).
        rfc2136: the stack's update server, for an rfc2136 zone.
        server: another update server (a self-hosted dyndns2 endpoint; the tests' loopback one).
        ssl: https to the update server (always, except the tests' loopback endpoint).
        tsig_key_path: where the key file is on the host.
        ca_file: CA bundle for https (the tests' loopback Cloudflare API); default: the system's.
    """
    lines = [
        "# Written by mailstack (components/ddns.py); edit the stack config, not this file.",
        f"daemon={ddns.interval}",
        "syslog=yes",
        f"ssl={'yes' if ssl else 'no'}",
        *([f"ssl_ca_file={_value(ca_file)}"] if ca_file else []),
        # IPv4 only: mailstack publishes AAAA only with a static, Docker-routed IPv6 (config/checks.py).
        f"use=web, web={_value(ddns.ip_source)}",
    ]
    fields: list[tuple[str, str]]
    host = ddns.hostname
    if ddns.provider == "cloudflare":
        assert ddns.zone is not None
        # login=token: `password` is an API token, not a global key (ddclient -help, 'cloudflare').
        # ddclient 3.10 only PATCHes the record's content (nic_cloudflare_update): the record must
        # exist, which is why Pulumi creates it once; its TTL stays as Pulumi set it.
        fields = [("protocol", "cloudflare"), ("zone", ddns.zone), ("login", "token")]
        fields.append(("password", secret))
    elif ddns.provider == "rfc2136":
        assert ddns.zone is not None and rfc2136 is not None
        # nsupdate reads `server <host> <port>` (nsupdate(1)); ddclient passes the value through.
        where = rfc2136.server if rfc2136.port == 53 else f"{rfc2136.server} {rfc2136.port}"
        fields = [
            ("protocol", "nsupdate"),
            ("server", where),
            ("zone", ddns.zone),
            ("ttl", str(DDNS_TTL)),
            ("tcp", "yes"),
            ("login", "/usr/bin/nsupdate"),
            ("password", tsig_key_path),
        ]
    else:
        protocol, default_server = SERVICES[ddns.provider]
        fields = [("protocol", protocol), ("server", server or default_server)]
        if ddns.provider == "duckdns":
            host = host.removesuffix(".duckdns.org")  # ddclient wants the Duck DNS label ('duckdns')
        else:
            fields.append(("login", ddns.username or ""))
        fields.append(("password", secret))
    if server is not None and ddns.provider == "cloudflare":
        fields.append(("server", server))
    body = ", \\\n".join(f"{key}={_password(value) if key == 'password' else _value(value)}" for key, value in fields)
    return "\n".join(lines) + "\n" + body + " \\\n" + host + "\n"


def tsig_key_file(rfc2136: Rfc2136Settings) -> str:
    """The TSIG key in BIND's key-file syntax, which `nsupdate -k` reads (nsupdate(1))."""
    return (
        f'key "{rfc2136.key_name}" {{\n'
        f"\talgorithm {rfc2136.key_algorithm};\n"
        f'\tsecret "{rfc2136.key_secret.get_secret_value()}";\n'
        "};\n"
    )


def install_script(*, nsupdate: bool) -> str:
    """Shell for the host: install Debian's ddclient, take its config from stdin (0600), (re)start it.

    debconf's questions are skipped (noninteractive): mailstack writes the whole config itself.
    The config arrives on stdin, so no secret is on a command line.
    """
    packages = "ddclient bind9-dnsutils" if nsupdate else "ddclient"
    return (
        "set -eu; export DEBIAN_FRONTEND=noninteractive; "
        f"dpkg-query -W -f='${{Status}}' {packages} 2>/dev/null | grep -q 'install ok installed' "
        f"|| {{ apt-get update -q && apt-get install -y -q --no-install-recommends {packages}; }}; "
        f'umask 077; tmp=$(mktemp {CONF_PATH}.XXXXXX); cat >"$tmp"; chmod 0600 "$tmp"; mv -f "$tmp" {CONF_PATH}; '
        # Debian's unit runs ddclient as a daemon; its interval comes from the config's `daemon=`.
        "sed -i 's/^run_daemon=.*/run_daemon=\"true\"/' /etc/default/ddclient 2>/dev/null || :; "
        "systemctl enable ddclient >/dev/null 2>&1 || :; systemctl restart ddclient"
    )


def remove_script() -> str:
    return f"systemctl disable --now ddclient >/dev/null 2>&1 || :; rm -f {CONF_PATH} {TSIG_KEY_PATH}"
