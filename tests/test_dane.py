"""DANE (mailstack:dane): TLSA records, the SMTP key generations, DNSSEC at Cloudflare, the refusals,
and the certbot key swap run for real in sh with a stub certbot."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailstack.config import ConfigError, load_settings
from mailstack.config.containers import certbot_script
from mailstack.config.dane import key_swap_script, tlsa_text
from tests.conftest import PROD_SECRET_KEYS, prod_config_values
from tests.harness import RunResult, ecdsa_key_pem, plain, run_program, with_values
from tests.tools import require

DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"


def prod_dane(**changes: Any) -> dict[str, Any]:
    return with_values(prod_config_values(), dane="true", **changes)


def run(config: dict[str, Any]) -> RunResult:
    result = run_program(config, PROD_SECRET_KEYS, stack="prod")
    assert result.error is None, result.error
    return result


@pytest.mark.integration
def test_tlsa_is_the_sha256_of_the_subject_public_key_info_as_openssl_computes_it(tmp_path: Path) -> None:
    _, public = ecdsa_key_pem("any")
    (tmp_path / "pub.pem").write_text(public)
    openssl = require("openssl")
    der = subprocess.run(
        [openssl, "pkey", "-pubin", "-in", str(tmp_path / "pub.pem"), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert tlsa_text(public) == f"3 1 1 {hashlib.sha256(der).hexdigest()}"


def test_prod_with_dane_publishes_both_key_generations_and_signs_every_zone() -> None:
    result = run(prod_dane())
    keys = {r.name: r for r in result.by_type("tls:index/privateKey:PrivateKey") if r.name.startswith("dane-")}
    assert sorted(keys) == ["dane-0", "dane-1"]
    assert {k: r.plain_inputs for k, r in keys.items()} == {
        key: {"algorithm": "ECDSA", "ecdsaCurve": "P256"} for key in keys
    }
    tlsa = {r.name: r.plain_inputs for r in result.by_type(DNS_RECORD) if r.plain_inputs["type"] == "TLSA"}
    assert sorted(tlsa) == ["dns-tlsa-_25._tcp.mail.example.com-g0", "dns-tlsa-_25._tcp.mail.example.com-g1"]
    for generation in (0, 1):
        inputs = tlsa[f"dns-tlsa-_25._tcp.mail.example.com-g{generation}"]
        digest = tlsa_text(plain(keys[f"dane-{generation}"].state["publicKeyPem"])).split()[-1]
        assert inputs["name"] == "_25._tcp.mail.example.com"
        assert inputs["data"] == {"usage": 3, "selector": 1, "matchingType": 1, "certificate": digest}
        assert "content" not in inputs
    dnssec = {r.name: r for r in result.by_type("cloudflare:index/zoneDnssec:ZoneDnssec")}
    assert sorted(dnssec) == ["dnssec-another.com", "dnssec-example.com"]
    assert {r.plain_inputs["status"] for r in dnssec.values()} == {"active"}
    # Turning dane off must not unsign a zone whose DS is still at the registrar.
    assert {r.options["retain_on_delete"] for r in dnssec.values()} == {True}
    assert sorted(result.outputs["dnssecDs"]) == ["another.com", "example.com"]
    # The records output carries the TLSA too: verify compares it with port 25.
    exported = [r for r in result.outputs["dnsRecords"] if r["type"] == "TLSA"]
    assert [r["content"].split()[:3] for r in exported] == [["3", "1", "1"], ["3", "1", "1"]]


def test_letsencrypt_keeps_the_key_and_swaps_in_the_stacks() -> None:
    result = run(prod_dane())
    key_file = result.one("command:remote:Command", "mail-tls-dane-key")
    assert key_file.plain_inputs["create"].endswith(
        'mv -f "$tmp" /mnt/dietpi_userdata/mailstack/letsencrypt/mailstack-dane/key.pem'
    )
    assert plain(key_file.inputs["stdin"]) == plain(
        result.one("tls:index/privateKey:PrivateKey", "dane-0").state["privateKeyPem"]
    )
    certbot = result.one("docker:index/container:Container", "mail-tls-certbot")
    assert key_file.urn in certbot.options["dependencies"]
    script = certbot.plain_inputs["command"][0]
    assert "--reuse-key --key-type ecdsa --elliptic-curve secp256r1" in script
    assert key_swap_script("mail.example.com", "/etc/letsencrypt") in script


def test_a_rollover_keeps_the_published_next_key() -> None:
    """daneRollover 0 → 1: key 1 (published since the start) goes into use, key 2 is new, key 0 goes."""
    before, after = run(prod_dane()), run(prod_dane(daneRollover="1"))
    names = [sorted(r.name for r in x.by_type(DNS_RECORD) if r.plain_inputs["type"] == "TLSA") for x in (before, after)]
    assert names == [
        ["dns-tlsa-_25._tcp.mail.example.com-g0", "dns-tlsa-_25._tcp.mail.example.com-g1"],
        ["dns-tlsa-_25._tcp.mail.example.com-g1", "dns-tlsa-_25._tcp.mail.example.com-g2"],
    ]
    same = [x.one(DNS_RECORD, "dns-tlsa-_25._tcp.mail.example.com-g1").plain_inputs["data"] for x in (before, after)]
    assert same[0] == same[1]
    key_file = after.one("command:remote:Command", "mail-tls-dane-key")
    assert plain(key_file.inputs["stdin"]) == plain(
        after.one("tls:index/privateKey:PrivateKey", "dane-1").state["privateKeyPem"]
    )


def test_self_signed_certificates_carry_the_dane_key(dev_config: dict[str, str]) -> None:
    config = with_values(
        dev_config,
        dane="true",
        publicIPv4="93.184.215.14",
        **{"dns/provider": "cloudflare", "cloudflare:apiToken": "t"},
    )
    result = run_program(config, ("cloudflare:apiToken",), stack="dev")
    assert result.error is None, result.error
    cert = result.one("tls:index/selfSignedCert:SelfSignedCert", "mail-tls-cert")
    assert plain(cert.inputs["privateKeyPem"]) == plain(
        result.one("tls:index/privateKey:PrivateKey", "dane-0").state["privateKeyPem"]
    )
    assert [r.name for r in result.by_type("tls:index/privateKey:PrivateKey") if r.name == "mail-tls-key"] == []


def test_dane_is_refused_where_dnssec_or_the_key_is_out_of_reach() -> None:
    config = with_values(
        prod_config_values(),
        dane="true",
        hostname="mx.elsewhere.example.net",
        **{
            "dns/provider": "manual",
            "tls/mode": "existing",
            "tls/path": "/etc/letsencrypt",
            "tls/challenge": None,
            "tls/email": None,
        },
    )
    with pytest.raises(ConfigError) as err:
        load_settings(config, secret_keys=PROD_SECRET_KEYS, stack="prod")
    assert [(p.key, p.message, p.fix) for p in err.value.problems if p.key == "mailstack:dane"] == [
        (
            "mailstack:dane",
            "needs DNSSEC on every mail zone (RFC 7672 §2.2), which mailstack turns on only at Cloudflare; "
            "it cannot check or manage it for another.com (manual), example.com (manual)",
            "pulumi config rm mailstack:dane (or move the zones to Cloudflare: "
            "pulumi config set --path 'mailstack:dns.provider' cloudflare)",
        ),
        (
            "mailstack:dane",
            "the TLSA record _25._tcp.mx.elsewhere.example.net belongs in the zone of mx.elsewhere.example.net, "
            "which is not a zone of this stack",
            "pulumi config rm mailstack:dane",
        ),
        (
            "mailstack:dane",
            "with tls.mode existing the key is not mailstack's, so its TLSA could not follow a key change",
            "pulumi config rm mailstack:dane (or pulumi config set --path 'mailstack:tls.mode' letsencrypt)",
        ),
    ]


def _lineage(root: Path, host: str, key: bytes) -> Path:
    """/etc/letsencrypt as certbot lays it out: live/<host>/privkey.pem → ../../archive/<host>/privkey1.pem."""
    (root / "archive" / host).mkdir(parents=True)
    (root / "live" / host).mkdir(parents=True)
    (root / "archive" / host / "privkey1.pem").write_bytes(key)
    os.symlink(f"../../archive/{host}/privkey1.pem", root / "live" / host / "privkey.pem")
    return root / "archive" / host / "privkey1.pem"


def test_the_key_swap_moves_the_lineage_onto_the_stacks_key_once(tmp_path: Path) -> None:
    host = "mail.example.com"
    root = tmp_path / "letsencrypt"
    certbots_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    archive = _lineage(root, host, certbots_key)
    ours = ecdsa_key_pem("dane-0")[0].encode()
    (root / "mailstack-dane").mkdir()
    (root / "mailstack-dane" / "key.pem").write_bytes(ours)
    calls = tmp_path / "calls"
    stub = tmp_path / "bin" / "certbot"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin"}
    script = key_swap_script(host, str(root))
    for _ in range(2):  # the second round finds the key in place and does nothing
        subprocess.run(["/bin/sh", "-c", script], env=env, check=True)
    assert archive.read_bytes() == ours
    assert (root / "live" / host / "privkey.pem").is_symlink()
    assert calls.read_text().splitlines() == [f"renew -n --cert-name {host} --force-renewal --reuse-key"]


def test_the_key_swap_waits_for_a_lineage_and_a_key(tmp_path: Path) -> None:
    root = tmp_path / "letsencrypt"
    root.mkdir()
    script = key_swap_script("mail.example.com", str(root))
    assert subprocess.run(["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin"}, check=False).returncode == 0


def test_the_certbot_script_without_dane_is_unchanged() -> None:
    settings = load_settings(prod_config_values(), secret_keys=PROD_SECRET_KEYS, stack="prod")
    assert "reuse-key" not in certbot_script(settings)
    assert json.dumps(certbot_script(settings)).count("mailstack-dane") == 0
