"""ddclient on the mail host: keeps the hostname's address current (`mailstack:ddns`, config/ddns.py).

Pulumi's part ends with the first address: MailDns creates the hostname's A record once and
ignores its content afterwards (`ignore_changes`), so a `pulumi up` after the address changed does
not put the old one back. ddclient (Debian's package, installed here) owns it from then on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.host_target import HostTarget
from mailstack.config import ddns
from mailstack.config.settings import MailSettings


@dataclass(frozen=True)
class DdnsArgs:
    settings: MailSettings
    """Validated settings; `settings.ddns` must be set."""
    host: HostTarget
    """Where ddclient is installed (an SSH target: config/ddns.py refuses a local one)."""
    cloudflare_token: pulumi.Input[str] | None = None
    """`cloudflare:apiToken`, for a hostname in a Cloudflare zone (ddclient's `cloudflare` protocol)."""
    after: list[pulumi.Resource] = field(default_factory=list)
    """The DNS records: ddclient only updates the A record, so it must exist first."""


class Ddns(pulumi.ComponentResource):
    """ddclient.conf (and the TSIG key file for an rfc2136 zone), written from stdin with mode 0600."""

    info: pulumi.Output[dict[str, object]]
    """The `ddns` stack output: who keeps which name current (nothing secret)."""

    def __init__(self, name: str, args: DdnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mailstack:index:Ddns", name, None, opts)
        settings, host = args.settings, args.host
        d = settings.ddns
        assert d is not None
        child = pulumi.ResourceOptions(parent=self, depends_on=args.after)
        written: list[pulumi.Resource] = []
        if d.provider == "rfc2136":
            assert settings.rfc2136 is not None
            key = pulumi.Output.secret(ddns.tsig_key_file(settings.rfc2136))
            written.append(host.write_file(f"{name}-tsig-key", ddns.TSIG_KEY_PATH, key, child))
            secret: pulumi.Input[str] = ""
        elif d.provider == "cloudflare":
            assert args.cloudflare_token is not None  # config/checks.py requires cloudflare:apiToken
            secret = args.cloudflare_token
        else:
            assert d.password is not None  # config/ddns.py requires it
            secret = pulumi.Output.secret(d.password.get_secret_value())
        text: pulumi.Output[str] = pulumi.Output.from_input(secret).apply(
            lambda value: ddns.ddclient_conf(d, value, rfc2136=settings.rfc2136)
        )

        host.run(
            f"{name}-ddclient",
            create=ddns.install_script(nsupdate=d.provider == "rfc2136"),
            delete=ddns.remove_script(),
            stdin=text,  # made secret by host.run
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=written)),
        )
        self.info = pulumi.Output.from_input(
            {
                "hostname": d.hostname,
                "provider": d.provider,
                "updater": "ddclient",
                "config": ddns.CONF_PATH,
                "status": "systemctl status ddclient; cat /var/cache/ddclient/ddclient.cache",
            }
        )
        self.register_outputs({"info": self.info})
