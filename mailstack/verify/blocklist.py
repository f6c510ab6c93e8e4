"""Blocklists (Spamhaus ZEN and DBL): query names and what the answers mean."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

ZEN_ZONE = "zen.spamhaus.org"
DBL_ZONE = "dbl.spamhaus.org"

# https://docs.spamhaus.com/datasets/docs/source/40-real-world-usage/PublicMirrors/MTAs/020-Policy.html
# return codes. 127.255.255.x are errors, not listings: most importantly .254, "query via a
# public/open resolver", which is what a check through 8.8.8.8/1.1.1.1 always gets.
_ZEN_CODES = {
    "127.0.0.2": "SBL (spam source)",
    "127.0.0.3": "SBL CSS (snowshoe spam)",
    "127.0.0.4": "XBL (exploited/infected host)",
    "127.0.0.9": "SBL DROP (hijacked netblock)",
    "127.0.0.10": "PBL (ISP: dynamic/residential range that should not send mail directly)",
    "127.0.0.11": "PBL (Spamhaus: range that should not send mail directly)",
}
_DBL_CODES = {
    "127.0.1.2": "DBL spam domain",
    "127.0.1.4": "DBL phishing domain",
    "127.0.1.5": "DBL malware domain",
    "127.0.1.6": "DBL botnet C&C domain",
}
SPAMHAUS_ERRORS = {
    "127.255.255.252": "typing error in the DNSBL name",
    "127.255.255.254": "query came through a public/open resolver, which Spamhaus refuses",
    "127.255.255.255": "excessive number of queries",
    "127.0.1.255": "IP queries are prohibited on the DBL",
}


def zen_name(ip: str) -> str:
    """Spamhaus ZEN query name: reversed octets (IPv4) or nibbles (IPv6) + zen.spamhaus.org."""
    reverse = ipaddress.ip_address(ip).reverse_pointer
    return reverse.rsplit(".", 2)[0] + "." + ZEN_ZONE


def dbl_name(domain: str) -> str:
    return f"{domain}.{DBL_ZONE}"


def blocklist_meaning(addresses: Iterable[str], dbl: bool) -> tuple[list[str], list[str]]:
    """(listings, errors) for the A records a ZEN or DBL query returned."""
    codes = _DBL_CODES if dbl else _ZEN_CODES
    listings: list[str] = []
    errors: list[str] = []
    for a in sorted(set(addresses), key=ipaddress.ip_address):
        if a in SPAMHAUS_ERRORS:
            errors.append(SPAMHAUS_ERRORS[a])
        elif a in codes:
            listings.append(codes[a])
        elif dbl and a.startswith("127.0.1.") and int(a.rsplit(".", 1)[1]) >= 102:
            listings.append("DBL abused legitimate domain")
        else:
            listings.append(f"listed ({a})")
    return listings, errors
