"""inbound.spfFail: the files mailstack writes, judged by the software DMS runs on them (Debian packages).

- minimal profile: the real policyd-spf (postfix-policyd-spf-python, the package DMS installs)
  answers Postfix policy requests with the generated policyd-spf.conf, resolving through a knotd
  on loopback: `reject` refuses the failing sender, `junk` only prepends `Received-SPF: Fail`;
  Pigeonhole's `sieve-test` then runs the generated before.dovecot.sieve on a message carrying
  exactly that header, and files it into Junk;
- standard profile: `rspamadm configtest`/`configdump` with the generated force_actions.conf.

The end-to-end path (Postfix → policyd-spf → Dovecot LMTP → Sieve inside DMS) runs only on a
real DMS container (see the issue's closing note).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from mailstack.config import dms_files
from tests.conftest import require_tool
from tests.dnsserver import KnotServer

pytestmark = pytest.mark.integration

DEBIAN_POLICYD_CONF = Path("/etc/postfix-policyd-spf-python/policyd-spf.conf")
ZONE = """$ORIGIN sender.test.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 127.0.0.1
@ TXT "v=spf1 ip4:198.51.100.1 -all"
mta A 192.0.2.99
"""
# Runs Debian's policyd-spf (spf_engine) unchanged; only pydns, which pyspf uses without dnspython,
# is pointed at the test's nameserver instead of /etc/resolv.conf.
POLICYD = """
import sys
import spf, DNS
DNS.defaults["server"] = [sys.argv[1]]
DNS.defaults["port"] = int(sys.argv[2])
sys.argv = ["policyd-spf", sys.argv[3]]
from spf_engine.policyd_spf import main
main()
"""
FAIL_HEADER = (
    "Received-SPF: Fail (mailfrom) identity=mailfrom; client-ip=192.0.2.99; helo=mta.sender.test; "
    "envelope-from=alice@sender.test; receiver=example.org "
)


def _settings_lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def nameserver() -> Iterator[KnotServer]:
    require_tool("knotd")
    with KnotServer({"sender.test": ZONE}, address="127.0.0.1") as server:
        yield server


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """policyd-spf and sieve-test drop root: pytest's 0700 tmp_path is out of their reach."""
    path = Path(tempfile.mkdtemp(prefix="mailstack-spf-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def policy_answer(
    server: KnotServer, directory: Path, spf_fail: Literal["reject", "junk"], client: str = "192.0.2.99"
) -> str:
    require_tool("policyd-spf")
    conf = directory / "policyd-spf.conf"
    conf.write_text(dms_files.policyd_spf_conf(spf_fail))
    request = (
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        f"client_address={client}\nclient_name=unknown\nhelo_name=mta.sender.test\n"
        "sender=alice@sender.test\nrecipient=me@example.org\ninstance=1.2.3\n\n"
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-c", POLICYD, server.address, str(server.port), str(conf)],
        input=request,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_policyd_conf_is_the_image_default_with_only_the_reject_choice_changed() -> None:
    """DMS's image: Debian's file plus the Reason_Message line its Dockerfile appends."""
    image = [*_settings_lines(DEBIAN_POLICYD_CONF.read_text()), "Reason_Message = Message {rejectdefer} due to: {spf}."]
    assert _settings_lines(dms_files.policyd_spf_conf("reject")) == image
    junk = _settings_lines(dms_files.policyd_spf_conf("junk"))
    assert [(a, b) for a, b in zip(image, junk, strict=True) if a != b] == [
        ("HELO_reject = Fail", "HELO_reject = False"),
        ("Mail_From_reject = Fail", "Mail_From_reject = False"),
    ]


def test_policyd_spf_rejects_or_only_marks_a_failing_sender(nameserver: KnotServer, world_readable_dir: Path) -> None:
    assert policy_answer(nameserver, world_readable_dir, "reject") == (
        "action=550 5.7.23 Message rejected due to: SPF fail - not authorized."
    )
    assert policy_answer(nameserver, world_readable_dir, "junk") == f"action=prepend {FAIL_HEADER.rstrip()}"
    # An authorized sender passes either way.
    for mode in ("reject", "junk"):
        answer = policy_answer(nameserver, world_readable_dir, mode, client="198.51.100.1")  # type: ignore[arg-type]
        assert answer.startswith("action=prepend Received-SPF: Pass (mailfrom) identity=mailfrom;"), answer


@pytest.mark.parametrize(
    ("headers", "folder"),
    [
        pytest.param([FAIL_HEADER], "Junk", id="fail"),
        # A forged Pass below the header policyd-spf prepends does not hide the fail.
        pytest.param([FAIL_HEADER, "Received-SPF: Pass (mailfrom) identity=mailfrom"], "Junk", id="forged-pass-below"),
        pytest.param(["Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=198.51.100.1"], "INBOX", id="pass"),
        pytest.param(["Received-SPF: Softfail (mailfrom) identity=mailfrom"], "INBOX", id="softfail"),
        pytest.param([], "INBOX", id="no-header"),
    ],
)
def test_sieve_files_spf_failures_into_junk(headers: list[str], folder: str, world_readable_dir: Path) -> None:
    tool = require_tool("sieve-test")
    script = world_readable_dir / "before.dovecot.sieve"
    script.write_text(dms_files.spf_junk_sieve())
    message = world_readable_dir / "message.eml"
    message.write_text("".join(f"{h}\n" for h in headers) + "From: alice@sender.test\nSubject: hi\n\nHello.\n")
    conf = world_readable_dir / "dovecot.conf"
    conf.write_text(f"mail_uid = nobody\nmail_gid = nogroup\nmail_location = maildir:{world_readable_dir}/mail\n")
    done = subprocess.run(
        [tool, "-c", str(conf), str(script), str(message)], capture_output=True, text=True, check=True, timeout=30
    )
    stored = [line.strip() for line in done.stdout.splitlines() if "store message in folder" in line]
    assert stored == [f"* store message in folder: {folder}"], done.stdout


@pytest.mark.parametrize(
    ("spf_fail", "rule"),
    [
        (
            "reject",
            {
                "SPF_FAIL_REJECT": {
                    "expression": "R_SPF_FAIL",
                    "action": "reject",
                    "message": "SPF check failed (inbound.spfFail reject)",
                }
            },
        ),
        (
            "junk",
            {"SPF_FAIL_JUNK": {"expression": "R_SPF_FAIL", "action": "add header", "honor_action": ["reject"]}},
        ),
    ],
)
def test_rspamd_loads_the_force_actions_rule(
    spf_fail: Literal["reject", "junk"], rule: dict[str, object], tmp_path: Path
) -> None:
    tool = require_tool("rspamadm")
    etc = tmp_path / "etc"
    shutil.copytree("/etc/rspamd", etc)
    # DMS copies config/rspamd/override.d/* to /etc/rspamd/override.d/ at start and on change.
    (path, text), *_ = dms_files.inbound_files("standard", spf_fail).items()
    (etc / "override.d" / Path(path).name).write_text(text)

    def rspamadm(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [tool, f"--var=CONFDIR={etc}", f"--var=LOCAL_CONFDIR={etc}", *args, "-c", str(etc / "rspamd.conf")]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    test = rspamadm("configtest")
    assert (test.returncode, test.stdout.strip()) == (0, "syntax OK"), test.stderr
    dump = rspamadm("configdump", "-j", "force_actions")
    assert dump.returncode == 0, dump.stderr
    assert json.loads(dump.stdout)["rules"] == rule
