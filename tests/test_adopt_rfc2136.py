"""mailstack.adopt for rfc2136 zones: the live zones by a TSIG-signed AXFR from a real knotd on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.query
import dns.tsig
import dns.update
import pytest
import yaml

from mailstack import adopt
from mailstack.stackfile import new_encryption_salt, set_secret
from tests.conftest import PROD_EXAMPLE
from tests.dnsserver import KnotServer
from tests.harness import ROOT
from tests.test_rfc2136 import KEY

pytestmark = pytest.mark.integration  # a real knotd (Debian knot)

PASSPHRASE = "adopt test passphrase"
SOA = "@ SOA ns.invalid. hostmaster.{zone}. 1 3600 600 1209600 300\n@ NS ns.invalid.\n"
EXAMPLE_COM = (
    "$ORIGIN example.com.\n$TTL 3600\n"
    + SOA.format(zone="example.com")
    + """@ MX 5 mail.example.com.
@ MX 1 aspmx.l.google.com.
@ TXT "v=spf1 include:_spf.google.com ~all"
@ TXT "google-site-verification=abc"
mail CNAME ghs.googlehosted.com.
"""
)
ANOTHER_COM = (
    "$ORIGIN another.com.\n$TTL 3600\n"
    + SOA.format(zone="another.com")
    + """@ MX 10 mail.example.com.
_imaps._tcp SRV 0 1 993 mail.example.com.
"""
)


@pytest.fixture(scope="module")
def knot() -> Iterator[KnotServer]:
    with KnotServer({"example.com": EXAMPLE_COM, "another.com": ANOTHER_COM}, tsig=KEY) as server:
        yield server


def project(tmp_path: Path, knot: KnotServer) -> Path:
    """The production example on rfc2136 DNS, its secrets encrypted with PASSPHRASE as the CLI would."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    doc = yaml.safe_load(PROD_EXAMPLE.read_text())
    config = doc["config"]
    config["mailstack:dns"] = {
        "provider": "rfc2136",
        "rfc2136": {"server": knot.address, "port": knot.port, "keyName": KEY.name},
    }
    config["mailstack:tls"]["challenge"] = "http"
    state, crypter = new_encryption_salt(PASSPHRASE)
    doc["encryptionsalt"] = state
    set_secret(doc, "mailstack:dns", ("rfc2136", "keySecret"), KEY.secret, crypter)
    set_secret(doc, "mailstack:relay", ("password",), "relay key", crypter)
    for address in config["mailstack:accounts"]:
        set_secret(doc, "mailstack:accounts", (address, "password"), "a long passphrase", crypter)
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def test_axfr_lists_takeovers_and_the_cname_that_blocks(
    tmp_path: Path, knot: KnotServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--stack", "prod", "--project-dir", str(project(tmp_path, knot))]
    env = {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
    assert adopt.main(argv, environ=env) == 1
    assert (
        capsys.readouterr().out
        == f"""\
# 2 live record(s) have the identity of a record stack prod writes; `pulumi up`
# replaces each in the same update that adds the stack's own (nothing to import):
#   MX example.com 5 mail.example.com  ->  MX example.com: inbound mail for example.com goes to mail.example.com (RFC 5321 §5.1)
#   TXT example.com v=spf1 include:_spf.google.com ~all  ->  TXT example.com: SPF: the hosts allowed to send mail from example.com (RFC 7208)
# These CNAME records must be removed first (the server would ignore the stack's records
# beside them); with the TSIG key in a file for nsupdate(1) (`key "<name>" {{ algorithm ...;
# secret "..."; }};`), never on the command line:
#   CNAME mail.example.com ghs.googlehosted.com: a CNAME cannot coexist with the mail records at this name (RFC 1034 §3.6.2)
nsupdate -k <key file> <<'EOF'
server {knot.address} {knot.port}
update delete mail.example.com. CNAME
send
EOF
# Live MX records the stack does not publish (an old mail provider?); remove them unless
# they are a backup MX you forgot to configure:
#   MX example.com 1 aspmx.l.google.com
# Then: pulumi up --stack prod
"""
    )
    # The same deletion as that nsupdate script, sent with the key: then nothing blocks any more.
    out_of_band_delete_cname(knot)
    assert adopt.main(argv, environ=env) == 0
    assert "CNAME" not in capsys.readouterr().out


def out_of_band_delete_cname(knot: KnotServer) -> None:
    keyring = {dns.name.from_text(KEY.name): dns.tsig.Key(KEY.name, KEY.secret, KEY.algorithm)}
    message = dns.update.UpdateMessage("example.com", keyring=keyring)
    message.delete(dns.name.from_text("mail.example.com"), "CNAME")
    assert dns.query.tcp(message, knot.address, port=knot.port, timeout=2).rcode() == 0


def test_without_the_passphrase_adopt_says_what_it_needs(
    tmp_path: Path, knot: KnotServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--stack", "prod", "--project-dir", str(project(tmp_path, knot))]
    assert adopt.main(argv, environ={}) == 2
    assert capsys.readouterr().err == (
        "mailstack adopt: error: rfc2136 zones are listed by a TSIG-signed zone transfer: set "
        "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) so adopt can open "
        "mailstack:dns.rfc2136.keySecret\n"
    )
