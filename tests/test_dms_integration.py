"""The files mailstack writes, checked by the software that reads them in DMS (Debian packages).

- account hashes: Dovecot's own `doveadm pw -t`, for every generated line and tricky passwords;
- DKIM key (OpenDKIM profile): `openssl rsa -check`; libopendkim signs with it (`opendkim-testmsg`)
  and dkimpy verifies against the public key; `opendkim-testkey` reads the generated KeyTable, loads
  the key and compares it with the DNS record, served in a private network namespace (it resolves
  with libunbound from the root servers and has no resolver setting, so the namespace holds the
  root addresses and a small authoritative responder);
- Rspamd profile: `rspamadm configtest`/`configdump` with the generated dkim_signing.conf dropped
  into a copy of Debian's rspamd config, and `rspamadm mime sign` with the generated key.

Not covered here: the `opendkim` milter itself (Debian package `opendkim`, not among the test
packages) and DMS's own start-up copying; those run only in a real container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dkim
import pytest

from mailstack.config import dms_files
from mailstack.config.passwords import hash_password
from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, PROD_SECRETS, prod_config_values, require_tool
from tests.harness import ROOT, RunResult, plain, run_program, stack_config, with_values
from tests.tools import require, require_root

pytestmark = pytest.mark.integration

PROGRAM = ROOT / "tests" / "programs" / "server_only.py"
MESSAGE = (
    b"From: Me <me@example.com>\r\nTo: you@example.org\r\nSubject: mailstack DKIM test\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <dkim-test@example.com>\r\n\r\nHello.\r\n"
)


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path_factory.mktemp("home")
    (path / ".ssh").mkdir()
    (path / ".ssh" / "id_ed25519").write_text("FAKE KEY\n")
    monkeypatch.setenv("HOME", str(path))


def evaluate(config: dict[str, str], secret_keys: tuple[str, ...] = (), stack: str = "dev") -> RunResult:
    run = run_program(config, secret_keys, stack=stack, program=PROGRAM)
    assert run.error is None, run.error
    return run


def written_files(run: RunResult) -> dict[str, str]:
    """Path under the config dir → text, for every file the MailServer writes there."""
    out: dict[str, str] = {}
    for r in run.resources:
        if (
            r.type.startswith("command:")
            and r.name.startswith("mail-")
            and "/config/" in r.plain_inputs.get("create", "")
        ):
            path = r.plain_inputs["create"].rsplit(" ", 1)[1].split("/config/", 1)[1]
            out[path] = plain(r.inputs["stdin"])
    return out


def public_key(run: RunResult, domain: str, selector: str) -> str:
    return str(plain(run.named(f"dkim-{selector}-{domain}").state["publicKeyPem"]))


def dkim_record(public_pem: str) -> str:
    body = "".join(line for line in public_pem.splitlines() if "-----" not in line)
    return f"v=DKIM1; k=rsa; p={body}"


def dkim_verifies(signed: bytes, public_pem: str) -> bool:
    record = dkim_record(public_pem).encode()
    return bool(dkim.verify(signed, dnsfunc=lambda _name, timeout=5: record))


# --- account hashes: doveadm ---------------------------------------------------------------------


def doveadm_accepts(hashed: str, password: str) -> bool:
    doveadm = require_tool("doveadm")
    result = subprocess.run([doveadm, "pw", "-t", hashed, "-p", password], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        assert "(verified)" in result.stdout
    return result.returncode == 0


def account_lines(run: RunResult) -> list[tuple[str, str]]:
    text = written_files(run)["postfix-accounts.cf"]
    return [tuple(line.split("|", 1)) for line in text.removeprefix(dms_files.HEADER).splitlines()]  # type: ignore[misc]


def test_doveadm_verifies_every_prod_account_line() -> None:
    run = evaluate(prod_config_values(), PROD_SECRET_KEYS, stack="prod")
    lines = account_lines(run)
    assert [address for address, _ in lines] == ["me@another.com", "me@example.com"]
    for address, hashed in lines:
        assert doveadm_accepts(hashed, PROD_SECRETS[f"accounts/{address}/password"]), address
        assert not doveadm_accepts(hashed, "not the password"), address


def test_doveadm_verifies_generated_passwords() -> None:
    config = with_values(stack_config(DEV_STACK), **{f"accounts/user{i}@example.test": {} for i in range(5)})
    run = evaluate(config)
    generated = plain(run.outputs["generatedPasswords"])
    lines = account_lines(run)
    assert len(lines) == 6
    for address, hashed in lines:
        assert doveadm_accepts(hashed, generated[address]), address


@pytest.mark.parametrize(
    "password",
    ["pässwörd ✓ ünïcode", "spaces  and\ttab", "pipe|colon:semi;", "quotes '\"$`\\ backslash", "x" * 200],
)
def test_doveadm_verifies_tricky_passwords(password: str) -> None:
    hashed = hash_password(bytes(range(32)), "me@example.com", password)
    assert doveadm_accepts(hashed, password)


# --- OpenDKIM profile ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opendkim_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The prod example's OpenDKIM files in a temp dir laid out like DMS's /etc/opendkim."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("home-opendkim")
        (home / ".ssh").mkdir()
        (home / ".ssh" / "id_ed25519").write_text("FAKE KEY\n")
        mp.setenv("HOME", str(home))
        run = evaluate(prod_config_values(), PROD_SECRET_KEYS, stack="prod")
    root = tmp_path_factory.mktemp("opendkim")
    for path, text in written_files(run).items():
        if path.startswith("opendkim/"):
            target = root / path.removeprefix("opendkim/")
            target.parent.mkdir(parents=True, exist_ok=True)
            # DMS's copy: /tmp/docker-mailserver/opendkim/* -> /etc/opendkim/, keys chmod 0700.
            target.write_text(text.replace(dms_files.OPENDKIM_CONTAINER_DIR, str(root)))
            target.chmod(0o600)
    publics = {d: public_key(run, d, "mail") for d in ("example.com", "another.com")}
    return root, publics


def test_openssl_checks_the_installed_keys(opendkim_install: tuple[Path, dict[str, str]]) -> None:
    root, _ = opendkim_install
    openssl = require_tool("openssl")
    for domain in ("example.com", "another.com"):
        result = subprocess.run(
            [openssl, "rsa", "-check", "-noout", "-in", str(root / "keys" / domain / "mail.private")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode, result.stdout.strip()) == (0, "RSA key ok"), result.stderr


def test_libopendkim_signs_with_the_installed_key(opendkim_install: tuple[Path, dict[str, str]]) -> None:
    root, publics = opendkim_install
    testmsg = require_tool("opendkim-testmsg")
    key = root / "keys" / "example.com" / "mail.private"
    signed = subprocess.run(
        [testmsg, "-d", "example.com", "-s", "mail", "-k", str(key), "-C"],
        input=MESSAGE,
        capture_output=True,
        check=True,
    ).stdout
    assert signed.startswith(b"DKIM-Signature:") and b"d=example.com" in signed and b"s=mail" in signed
    assert dkim_verifies(signed, publics["example.com"])
    assert not dkim_verifies(signed, publics["another.com"])  # the check can fail


_NETNS_HELPER = r"""
import json, socket, subprocess, sys, threading
import dns.flags, dns.message, dns.name, dns.rdatatype, dns.rrset
records, command = json.loads(sys.argv[1]), json.loads(sys.argv[2])
# IPv4 addresses of the 13 root servers (IANA root hints): libunbound starts there.
ROOTS = ["198.41.0.4", "170.247.170.2", "192.33.4.12", "199.7.91.13", "192.203.230.10", "192.5.5.241",
         "192.112.36.4", "198.97.190.53", "192.36.148.17", "192.58.128.30", "193.0.14.129", "199.7.83.42",
         "202.12.27.33"]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for ip in ROOTS:
    subprocess.run(["ip", "addr", "add", ip + "/32", "dev", "lo"], check=True)
def answer(query):
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    name, rdtype = query.question[0].name, dns.rdatatype.to_text(query.question[0].rdtype)
    if rdtype == "TXT" and name.to_text() in records:
        response.answer.append(dns.rrset.from_text_list(name, 300, "IN", "TXT", [records[name.to_text()]]))
    elif name == dns.name.root and rdtype == "NS":
        response.answer.append(dns.rrset.from_text(".", 300, "IN", "NS", "a.root-servers.net."))
        response.additional.append(dns.rrset.from_text("a.root-servers.net.", 300, "IN", "A", ROOTS[0]))
    else:
        response.authority.append(dns.rrset.from_text(".", 300, "IN", "SOA", "a.root-servers.net. x. 1 1 1 1 1"))
    return response
def serve(sock):
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(answer(dns.message.from_wire(data)).to_wire(max_size=4096), peer)
for ip in ROOTS:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 53))
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
result = subprocess.run(command, capture_output=True, text=True, timeout=60)
print(json.dumps([result.returncode, result.stdout, result.stderr]))
"""


def run_with_dns(records: dict[str, str], command: list[str]) -> tuple[int, str, str]:
    """Run `command` in a new network namespace whose only DNS server answers `records`."""
    # A skip on a user's machine, a failure under CI=true (tests/tools.py).
    require_root("a private network namespace (unshare --net) for opendkim-testkey's resolver")
    unshare, ip = require("unshare"), require("ip")
    quoted = {name: " ".join(f'"{v[i : i + 255]}"' for i in range(0, len(v), 255)) for name, v in records.items()}
    env = {**os.environ, "PATH": f"{Path(ip).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [unshare, "--net", sys.executable, "-c", _NETNS_HELPER, json.dumps(quoted), json.dumps(command)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    code, out, err = json.loads(result.stdout)
    return int(code), str(out), str(err)


def test_opendkim_testkey_reads_the_key_table_and_matches_the_dns_record(
    opendkim_install: tuple[Path, dict[str, str]],
) -> None:
    root, publics = opendkim_install
    testkey = require_tool("opendkim-testkey")
    conf = root / "testkey.conf"
    conf.write_text(f"KeyTable {root}/KeyTable\n")
    records = {f"mail._domainkey.{d}.": dkim_record(pem) for d, pem in publics.items()}
    code, out, err = run_with_dns(records, [testkey, "-x", str(conf), "-vvv"])
    assert code == 0
    assert out.splitlines() == [
        "opendkim-testkey: key mail._domainkey.another.com: OK",
        "opendkim-testkey: key mail._domainkey.example.com: OK",
        "opendkim-testkey: 2 keys checked; 2 pass, 0 fail",
    ], err
    assert "checking key 'mail._domainkey.example.com'" in err and "checking key 'mail._domainkey.another.com'" in err
    # Negative control: swapped records make OpenDKIM report a mismatch.
    swapped = {
        "mail._domainkey.example.com.": records["mail._domainkey.another.com."],
        "mail._domainkey.another.com.": records["mail._domainkey.example.com."],
    }
    code, out, err = run_with_dns(swapped, [testkey, "-x", str(conf), "-vvv"])
    assert out.splitlines()[-1] == "opendkim-testkey: 2 keys checked; 0 pass, 2 fail"
    assert "keys do not match" in err


# --- Rspamd profile --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rspamd_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """Debian's rspamd config with the generated dkim_signing.conf, and the key files."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("home-rspamd")
        mp.setenv("HOME", str(home))
        config = with_values(stack_config(DEV_STACK), **{"profile": "standard", "domains/another.test": {}})
        run = evaluate(config)
    tmp = tmp_path_factory.mktemp("rspamd")
    etc = tmp / "etc"
    shutil.copytree("/etc/rspamd", etc)
    config_dir = tmp / "config"
    for path, text in written_files(run).items():
        if path.startswith("rspamd/"):
            target = config_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text.replace(dms_files.CONTAINER_CONFIG_DIR, str(config_dir)))
    # DMS copies config/rspamd/override.d/* to /etc/rspamd/override.d/ at start and on change.
    shutil.copy(config_dir / "rspamd/override.d/dkim_signing.conf", etc / "override.d" / "dkim_signing.conf")
    publics = {d: public_key(run, d, "mail") for d in ("example.test", "another.test")}
    return etc, config_dir, publics


def rspamadm(etc: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("rspamadm")
    return subprocess.run(
        [tool, f"--var=CONFDIR={etc}", f"--var=LOCAL_CONFDIR={etc}", *args, "-c", str(etc / "rspamd.conf")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_rspamd_accepts_the_generated_signing_config(rspamd_install: tuple[Path, Path, dict[str, Any]]) -> None:
    etc, config_dir, _ = rspamd_install
    test = rspamadm(etc, "configtest")
    assert (test.returncode, test.stdout.strip()) == (0, "syntax OK"), test.stderr
    dump = rspamadm(etc, "configdump", "-j", "dkim_signing")
    assert dump.returncode == 0, dump.stderr
    loaded = json.loads(dump.stdout)
    assert loaded["domain"] == {
        "another.test": {
            "path": f"{config_dir}/rspamd/dkim/rsa-2048-mail-another.test.private.txt",
            "selector": "mail",
        },
        "example.test": {
            "path": f"{config_dir}/rspamd/dkim/rsa-2048-mail-example.test.private.txt",
            "selector": "mail",
        },
    }
    assert (loaded["try_fallback"], loaded["use_domain"], loaded["check_pubkey"]) == (False, "header", False)
    # Negative control: a broken file is reported.
    conf = etc / "override.d" / "dkim_signing.conf"
    good = conf.read_text()
    try:
        conf.write_text(good.rstrip().removesuffix("}"))
        assert rspamadm(etc, "configtest").returncode == 1
    finally:
        conf.write_text(good)


def test_rspamd_signs_with_the_generated_key(rspamd_install: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    _, config_dir, publics = rspamd_install
    tool = require_tool("rspamadm")
    message = tmp_path / "message.eml"
    message.write_bytes(MESSAGE.replace(b"example.com", b"example.test"))
    key = config_dir / "rspamd/dkim/rsa-2048-mail-example.test.private.txt"
    signed = subprocess.run(
        [tool, "mime", "sign", "-d", "example.test", "-s", "mail", "-k", str(key), str(message)],
        capture_output=True,
        check=True,
    ).stdout
    assert signed.startswith(b"DKIM-Signature:") or b"\nDKIM-Signature:" in signed
    assert dkim_verifies(signed, publics["example.test"])
    assert not dkim_verifies(signed, publics["another.test"])
