"""`python -m mailstack.render`: the dev stack and the production example rendered, checked with real tools,
and compared value by value with what the Pulumi program registers for the same settings."""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailstack import compose, render
from mailstack.config import MailSettings, load_settings
from mailstack.config.containers import go_duration
from mailstack.config.records import mail_records, static_records
from mailstack.config.zonefile import render_zone_files
from mailstack.stackfile import PLACEHOLDER_PREFIX, new_encryption_salt, set_secret
from tests.conftest import DEV_STACK, PROD_EXAMPLE, PROD_SECRET_KEYS, PROD_SECRETS, prod_config_values, require_tool
from tests.harness import ROOT, RunResult, plain, rsa_key_pem, run_program, stack_config, with_values
from tests.test_mail_dns import prod_config
from tests.tools import require, require_root, require_user

PASSPHRASE = "render test passphrase"


def _fast_state(settings: MailSettings) -> render.StackState:
    """fresh_state with keys from the harness's cached pool (RSA generation is the slow part)."""
    keys = iter(range(100))
    return render.fresh_state(settings, new_key=lambda bits: rsa_key_pem(bits, next(keys) % 6)[0])


def _prod_project(tmp_path: Path, *, encrypt: bool = True) -> Path:
    """The production example as a stack file with its secrets set the way its header says."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    doc = yaml.safe_load(PROD_EXAMPLE.read_text())
    state, crypter = new_encryption_salt(PASSPHRASE)
    doc["encryptionsalt"] = state
    for path, value in PROD_SECRETS.items():
        top, *rest = path.split("/")
        key = top if ":" in top else f"mailstack:{top}"
        set_secret(doc, key, rest, value, crypter)
    (project / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


def _main(args: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = render.main(args, environ=environ)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _modes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in sorted(out.rglob("*"))}


# -- the dev stack ---------------------------------------------------------------------------------


def test_dev_stack_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rendered"
    code, stdout, stderr = _main(["--stack", "dev", "--out", str(out), "--project-dir", str(ROOT)], {}, capsys)
    assert (code, stderr) == (0, "")
    # Directories 0755 as the stack's file writer makes them (services running as their own user,
    # Rspamd's `_rspamd`, must traverse them); secrets 0600; the state the next render reuses 0600.
    assert _modes(out) == {
        ".mailstack-render": 0o644,
        "compose.yaml": 0o644,
        "config": 0o755,
        "config/dovecot-quotas.cf": 0o644,
        "config/opendkim": 0o755,
        "config/opendkim/KeyTable": 0o644,
        "config/opendkim/SigningTable": 0o644,
        "config/opendkim/TrustedHosts": 0o644,
        "config/opendkim/keys": 0o755,
        "config/opendkim/keys/example.test": 0o755,
        "config/opendkim/keys/example.test/mail.private": 0o600,
        "config/postfix-accounts.cf": 0o600,
        "config/postfix-virtual.cf": 0o644,
        "config/ssl": 0o755,
        "config/ssl/cert.pem": 0o644,
        "config/ssl/key.pem": 0o600,
        "generated-passwords.txt": 0o600,
        "mailserver.env": 0o644,
        "records.md": 0o644,
        "render-state.json": 0o600,
        "zones": 0o755,
        "zones/example.test.zone": 0o644,
    }
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    flat = " ".join(stdout.split())
    assert "secrets: DKIM keys (mail._domainkey.example.test): generated here, kept in render-state.json" in flat
    assert "secrets: passwords of postmaster@example.test: generated here, kept in render-state.json" in flat
    assert "secrets: self-signed certificate: generated here" in flat
    # The configuration's warnings, with their fix (the dev stack publishes 127.0.0.1 on purpose).
    assert (
        "warning: mailstack:publicIPv4: 127.0.0.1 is a loopback address (127.0.0.0/8, RFC 1122): fine for a test "
        "stack, but the zone file publishes it as the address of mail.example.test, where no other mail server can "
        "reach it\n    fix: pulumi config set 'mailstack:publicIPv4' <the server's public address>"
    ) in stdout
    # The generated password is in its 0600 file, never on the terminal.
    password = (out / "generated-passwords.txt").read_text().splitlines()[-1].split()[1]
    assert len(password) == 24 and password.isalnum()
    assert password not in stdout
    compose_doc = yaml.safe_load((out / "compose.yaml").read_text())
    assert compose.schema_errors(compose_doc) == []


def test_self_signed_certificate_follows_the_stack_spec() -> None:
    """The rendered certificate has what the stack asks pulumi-tls for (config.containers.self_signed_cert_spec)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    settings = load_settings(stack_config(DEV_STACK), stack="dev", home="/h")
    state = _fast_state(settings)
    assert state.self_signed is not None
    files = {f.path: f for f in render.render_stack(settings, state).files}
    cert = x509.load_pem_x509_certificate(files["config/ssl/cert.pem"].text.encode())
    assert (files["config/ssl/key.pem"].text, files["config/ssl/key.pem"].secret) == (state.self_signed.key_pem, True)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mail.example.test"
    assert cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.test"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.key_encipherment, usage.key_cert_sign) == (True, True, False)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == 365 * 24 * 3600
    assert cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode() == render.public_key_pem(state.self_signed.key_pem)


@pytest.mark.integration
def test_dev_render_passes_kzonecheck_and_doveadm(tmp_path: Path) -> None:
    settings = load_settings(stack_config(DEV_STACK), stack="dev", home="/h")
    rendering = render.render_stack(settings, _fast_state(settings))
    render.write_rendering(rendering, tmp_path)
    _kzonecheck(tmp_path / "zones" / "example.test.zone", "example.test")
    password = (tmp_path / "generated-passwords.txt").read_text().splitlines()[-1].split()[1]
    _doveadm_verify(tmp_path / "config/postfix-accounts.cf", {"postmaster@example.test": password})


# -- the production example ------------------------------------------------------------------------


def test_prod_example_with_passphrase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, out = _prod_project(tmp_path), tmp_path / "rendered"
    code, stdout, stderr = _main(
        ["--stack", "prod", "--out", str(out), "--project-dir", str(project)],
        {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
        capsys,
    )
    assert (code, stderr) == (0, "")
    modes = _modes(out)
    assert {path for path, mode in modes.items() if mode == 0o600} == {
        "certbot/cloudflare.ini",
        "config/opendkim/keys/another.com/mail.private",
        "config/opendkim/keys/example.com/mail.private",
        "config/postfix-accounts.cf",
        "config/postfix-sasl-password.cf",
        "render-state.json",
    }
    assert (out / "config/postfix-sasl-password.cf").read_text().splitlines()[-1] == (
        "[smtp-relay.brevo.com]:587 me@example.com:xsmtpsib-brevo-smtp-key"
    )
    assert sorted(p.name for p in (out / "zones").iterdir()) == ["another.com.zone", "example.com.zone"]
    assert not (out / "generated-passwords.txt").exists()  # every account has its password in config
    for secret in PROD_SECRETS.values():
        assert secret not in stdout
    # Everything decrypted: nothing is incomplete.
    assert "incomplete" not in stdout
    assert (
        out / "certbot/cloudflare.ini"
    ).read_text() == f"dns_cloudflare_api_token = {PROD_SECRETS['cloudflare:apiToken']}\n"


@pytest.mark.integration
def test_prod_render_passes_kzonecheck_and_doveadm(tmp_path: Path) -> None:
    settings = load_settings(prod_config_values(), secret_keys=PROD_SECRET_KEYS, stack="prod", home="/h")
    rendering = render.render_stack(
        settings, _fast_state(settings), cloudflare_token=PROD_SECRETS["cloudflare:apiToken"]
    )
    render.write_rendering(rendering, tmp_path)
    for zone in ("example.com", "another.com"):
        _kzonecheck(tmp_path / "zones" / f"{zone}.zone", zone)
    _doveadm_verify(
        tmp_path / "config/postfix-accounts.cf",
        {
            "me@example.com": PROD_SECRETS["accounts/me@example.com/password"],
            "me@another.com": PROD_SECRETS["accounts/me@another.com/password"],
        },
    )


def test_prod_example_without_passphrase_marks_incomplete_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, out = _prod_project(tmp_path), tmp_path / "rendered"
    code, stdout, stderr = _main(["--stack", "prod", "--out", str(out), "--project-dir", str(project)], {}, capsys)
    assert (code, stderr) == (0, "")
    settings_rendering = _render_prod_without_passphrase(project)
    assert {f.path: f.incomplete for f in settings_rendering.incomplete} == {
        "config/postfix-accounts.cf": "encrypted password of me@another.com, me@example.com",
        "config/postfix-sasl-password.cf": "placeholder for mailstack:relay.password",
        "certbot/cloudflare.ini": "placeholder for cloudflare:apiToken",
    }
    assert {f.path: f.needs for f in settings_rendering.incomplete} == {
        "config/postfix-accounts.cf": (
            'mailstack:accounts["me@example.com"].password',
            'mailstack:accounts["me@another.com"].password',
        ),
        "config/postfix-sasl-password.cf": ("mailstack:relay.password",),
        "certbot/cloudflare.ini": ("cloudflare:apiToken",),
    }
    sasl = (out / "config/postfix-sasl-password.cf").read_text().splitlines()[-1]
    assert sasl.startswith(f"[smtp-relay.brevo.com]:587 me@example.com:{PLACEHOLDER_PREFIX}")
    assert "3 file(s) incomplete" in " ".join(stdout.split())
    assert "PULUMI_CONFIG_PASSPHRASE" in stdout


def _render_prod_without_passphrase(project: Path) -> render.Rendering:
    from mailstack.stackfile import load_stack

    stack = load_stack(project, "prod", passphrase=None)
    settings = load_settings(stack.raw, secret_keys=stack.secret_keys, stack="prod")
    token = stack.raw["cloudflare:apiToken"]
    assert isinstance(token, str)
    return render.render_stack(
        settings,
        _fast_state(settings),
        undecrypted=stack.undecrypted,
        cloudflare_token=token,
        placeholders=stack.placeholders,
    )


# -- exit codes and the output directory -----------------------------------------------------------


def test_config_problems_exit_1_with_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "Pulumi.bad.yaml").write_text("config:\n  mailstack:hostname: example.org\n")
    code, stdout, stderr = _main(
        ["--stack", "bad", "--out", str(tmp_path / "o"), "--project-dir", str(project)], {}, capsys
    )
    assert code == 1
    assert stdout == ""
    assert "the configuration of stack 'bad' has 3 problems" in stderr
    assert "mailstack:accounts: at least one account is required" in stderr
    assert not (tmp_path / "o").exists()


def test_errors_are_plain_and_never_wrapped_in_a_pipe(tmp_path: Path) -> None:
    """`mailstack render` as a user runs it with stderr to a pipe at 80 columns: the common error style,
    every fix command on one line (a terminal renderer used to wrap them mid-command)."""
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "Pulumi.bad.yaml").write_text("config:\n  mailstack:hostname: example.org\n")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "mailstack.render", "--stack", "bad"),
            *("--out", str(tmp_path / "o"), "--project-dir", str(project)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "80"},
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "mailstack render: error: the configuration of stack 'bad' has 3 problems (nothing was created):\n"
        "- mailstack:domains: at least one mail domain is required\n"
        "    fix: pulumi config set --path 'mailstack:domains[\"example.org\"].mx.priority' 10\n"
        "- mailstack:accounts: at least one account is required (DMS shuts down after ~2 minutes without one)\n"
        "    fix: pulumi config set --path --secret 'mailstack:accounts[\"postmaster@example.org\"].password'"
        " <password>\n"
        "- mailstack:hostname: 'example.org' has fewer than 3 labels; use a host name under a mail domain,"
        " e.g. mail.example.org\n"
        "    fix: pulumi config set 'mailstack:hostname' mail.example.org\n"
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "cannot read"),
        ({"PULUMI_CONFIG_PASSPHRASE_FILE": "/nonexistent/pass"}, "cannot read PULUMI_CONFIG_PASSPHRASE_FILE"),
    ],
    ids=["no-stack-file", "passphrase-file-missing"],
)
def test_unreadable_inputs_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], environ: dict[str, str], message: str
) -> None:
    code, _, stderr = _main(
        ["--stack", "nope", "--out", str(tmp_path / "o"), "--project-dir", str(ROOT)], environ, capsys
    )
    assert code == 2
    assert message in " ".join(stderr.split())


def test_wrong_passphrase_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = _prod_project(tmp_path)
    code, _, stderr = _main(
        ["--stack", "prod", "--out", str(tmp_path / "o"), "--project-dir", str(project)],
        {"PULUMI_CONFIG_PASSPHRASE": "wrong"},
        capsys,
    )
    assert code == 2
    assert "incorrect passphrase" in stderr


def test_refuses_a_foreign_directory_and_replaces_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    args = ["--stack", "dev", "--project-dir", str(ROOT), "--out"]
    code, _, stderr = _main([*args, str(foreign)], {}, capsys)
    assert code == 2
    assert "was not written by mailstack render" in " ".join(stderr.split())
    assert (foreign / "keep.txt").read_text() == "mine"

    own = tmp_path / "own"
    assert _main([*args, str(own)], {}, capsys)[0] == 0
    # A file an earlier render wrote (a since-removed domain's zone) goes; what the render did not
    # write (certbot's certificates, with --data-dir pointing here) stays.
    (own / "zones" / "removed.example.zone").write_text("left over from a removed domain")
    with (own / ".mailstack-render").open("a") as marker:
        marker.write("zones/removed.example.zone\n")
    (own / "letsencrypt" / "live" / "mail.example.test").mkdir(parents=True)
    (own / "letsencrypt" / "live" / "mail.example.test" / "fullchain.pem").write_text("cert")
    assert _main([*args, str(own)], {}, capsys)[0] == 0
    assert not (own / "zones" / "removed.example.zone").exists()
    assert (own / "letsencrypt" / "live" / "mail.example.test" / "fullchain.pem").read_text() == "cert"
    assert (own / "zones" / "example.test.zone").is_file()


def _snapshot(out: Path) -> dict[str, tuple[bytes, int, int, int]]:
    """path → (bytes, mode, inode, mtime_ns) of every file; of a directory, its mode and inode (its
    mtime moves whenever a temporary file comes and goes in it)."""
    snap = {}
    for p in sorted(out.rglob("*")):
        info = p.lstat()
        data = p.read_bytes() if p.is_file() else b""
        mtime = info.st_mtime_ns if p.is_file() else 0
        snap[str(p.relative_to(out))] = (data, stat.S_IMODE(info.st_mode), info.st_ino, mtime)
    return snap


def _dev_project(tmp_path: Path, **changes: Any) -> Path:
    """A copy of the dev stack, with `changes` applied to its config (`key: value` at the top level)."""
    project = tmp_path / "dev-project"
    project.mkdir(exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    doc = yaml.safe_load(DEV_STACK.read_text())
    for key, value in changes.items():
        doc["config"][f"mailstack:{key}"] = value
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


def test_rendering_twice_writes_identical_bytes_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rendered"
    args = ["--stack", "dev", "--out", str(out), "--project-dir", str(ROOT), "--json"]
    assert _main(args, {}, capsys)[0] == 0
    first = _snapshot(out)
    code, stdout, stderr = _main(args, {}, capsys)
    assert (code, stderr) == (0, "")
    # Same bytes, same inodes, same mtimes: nothing was rewritten, DKIM key and password included.
    assert _snapshot(out) == first
    report = json.loads(stdout)
    assert {f["status"] for f in report["files"]} == {"unchanged"}
    assert report["removed"] == []
    notes = " ".join(report["generatedSecrets"]["notes"])
    assert "kept from render-state.json" in notes
    assert "generated here" not in notes
    state = json.loads((out / "render-state.json").read_text())
    assert set(state["dkimPrivateKeys"]) == {"example.test/mail"}
    password = (out / "generated-passwords.txt").read_text().splitlines()[-1].split()[1]
    assert state["generatedPasswords"] == {"postmaster@example.test": password}
    assert (
        state["dkimPrivateKeys"]["example.test/mail"]
        == (out / "config/opendkim/keys/example.test/mail.private").read_text()
    )


def test_a_config_change_rewrites_only_the_changed_files_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rendered"
    project = _dev_project(tmp_path)
    args = ["--stack", "dev", "--out", str(out), "--project-dir", str(project), "--json"]
    assert _main(args, {}, capsys)[0] == 0
    before = _snapshot(out)
    _dev_project(tmp_path, aliases={"abuse@example.test": "postmaster@example.test"})
    code, stdout, _ = _main(args, {}, capsys)
    assert code == 0
    after = _snapshot(out)
    report = json.loads(stdout)
    assert sorted(f["path"] for f in report["files"] if f["status"] == "written") == ["config/postfix-virtual.cf"]
    changed = {p for p in after if after[p] != before[p]}
    # Only that file; the marker's list is the same.
    assert changed == {"config/postfix-virtual.cf"}
    assert b"abuse@example.test postmaster@example.test" in after["config/postfix-virtual.cf"][0]
    # The directory DMS mounts is the same directory (same inode), never removed and recreated.
    assert after["config"][2] == before["config"][2]
    assert not list(out.rglob("*.tmp"))


def test_a_render_failing_part_way_leaves_the_previous_render_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rendered"
    project = _dev_project(tmp_path)
    args = ["--stack", "dev", "--out", str(out), "--project-dir", str(project)]
    assert _main(args, {}, capsys)[0] == 0
    before = _snapshot(out)
    # A new domain changes many files (accounts, keys, zones, compose); the disk fills on the third.
    _dev_project(
        tmp_path,
        domains={"example.test": {}, "other.test": {}},
        aliases={"abuse@other.test": "postmaster@example.test"},
    )
    real_stage = render._stage
    calls = []

    def failing_stage(target: Path, data: bytes, mode: int) -> Path:
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_stage(target, data, mode)

    monkeypatch.setattr(render, "_stage", failing_stage)
    code, _, stderr = _main(args, {}, capsys)
    assert code == 2
    assert "No space left on device" in stderr
    assert len(calls) == 3
    assert _snapshot(out) == before  # every file as it was; no temporary file left behind


def test_a_removed_domain_s_files_go_after_the_new_ones_are_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rendered"
    project = _dev_project(tmp_path, domains={"example.test": {}, "other.test": {}})
    args = ["--stack", "dev", "--out", str(out), "--project-dir", str(project), "--json"]
    assert _main(args, {}, capsys)[0] == 0
    assert (out / "config/opendkim/keys/other.test/mail.private").is_file()
    config_inode = (out / "config").stat().st_ino
    _dev_project(tmp_path, domains={"example.test": {}})
    code, stdout, _ = _main(args, {}, capsys)
    assert code == 0
    assert sorted(json.loads(stdout)["removed"]) == [
        "config/opendkim/keys/other.test/mail.private",
        "zones/other.test.zone",
    ]
    assert not (out / "config/opendkim/keys/other.test").exists()  # emptied, below the mount: removed
    assert (out / "config").stat().st_ino == config_inode
    assert "other.test/mail" not in json.loads((out / "render-state.json").read_text())["dkimPrivateKeys"]


def test_a_broken_state_file_is_refused_not_regenerated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rendered"
    args = ["--stack", "dev", "--out", str(out), "--project-dir", str(ROOT)]
    assert _main(args, {}, capsys)[0] == 0
    key = (out / "config/opendkim/keys/example.test/mail.private").read_bytes()
    (out / "render-state.json").write_text("{not json")
    code, _, stderr = _main(args, {}, capsys)
    assert code == 2
    assert "is not a render state (Expecting property name" in " ".join(stderr.split())
    assert (out / "config/opendkim/keys/example.test/mail.private").read_bytes() == key


def test_state_reuse_follows_the_settings() -> None:
    """A key of another size, an account that now sets its password, a renamed host: new values."""
    settings = load_settings(stack_config(DEV_STACK), stack="dev", home="/h")
    first = _fast_state(settings)
    again = render.fresh_state(settings, previous=first, new_key=lambda bits: pytest.fail("no new key expected"))
    assert again == first
    bigger = load_settings(
        with_values(stack_config(DEV_STACK), **{"domains/example.test": {"dkim": {"bits": 1024}}}),
        stack="dev",
        home="/h",
    )
    changed = render.fresh_state(bigger, previous=first, new_key=lambda bits: rsa_key_pem(bits, 0)[0])
    assert render._rsa_bits(changed.dkim_private_keys[("example.test", "mail")]) == 1024
    assert (changed.passwords, changed.password_seed, changed.self_signed) == (
        first.passwords,
        first.password_seed,
        first.self_signed,
    )
    assert render.read_state_text(render.state_text(first)) == first


@pytest.mark.integration
def test_standard_profile_key_is_readable_by_rspamd_after_dms_start(tmp_path: Path) -> None:
    """What DMS v15.1.0 does at start, then what Rspamd and DMS's own permission check do, as `_rspamd`.

    DMS's start-up (target/scripts/start-mailserver.sh:183 runs `_setup_directory_and_file_permissions`
    before the Rspamd setup at :189) does `chown -R _rspamd:_rspamd /tmp/docker-mailserver/rspamd/dkim`
    and `chmod +x /tmp/docker-mailserver` (target/scripts/startup/setup-stack.sh:101-111). Then
    `__rspamd__check_dkim_permissions` (target/scripts/startup/setup.d/security/rspamd.sh:336-353)
    warns unless `find KEY ( -user _rspamd -or -group _rspamd -or -perm -o=r )` finds the key.
    Here the rendered config/ is bind-mounted in a private mount namespace, as the container sees it.
    """
    require_root("chown to _rspamd and a private mount namespace, as DMS's start-up does")
    user = require_user("_rspamd", package="rspamd")
    unshare, setpriv, rspamadm = require("unshare"), require("setpriv"), require("rspamadm")
    settings = load_settings(with_values(stack_config(DEV_STACK), profile="standard"), stack="dev", home="/h")
    out = tmp_path / "rendered"
    render.write_rendering(render.render_stack(settings, _fast_state(settings)), out)
    config = out / "config"
    key_rel = "rspamd/dkim/rsa-2048-mail-example.test.private.txt"
    assert _modes(out)["config/rspamd"] == 0o755
    for path in (config / "rspamd/dkim").rglob("*"):  # setup-stack.sh:104
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chown(config / "rspamd/dkim", user.pw_uid, user.pw_gid)
    config.chmod(config.stat().st_mode | 0o111)  # setup-stack.sh:111
    mount = tempfile.mkdtemp(prefix="mailstack-dms-")  # in /tmp (1777): traversable by _rspamd
    os.chmod(mount, 0o755)
    try:
        message = Path(mount + "-message.eml")
        message.write_bytes(b"From: me@example.test\r\nTo: you@example.org\r\nSubject: t\r\n\r\nbody\r\n")
        message.chmod(0o644)
        script = (
            f'mount --bind "$1" "$2" && '
            f"{setpriv} --reuid={user.pw_uid} --regid={user.pw_gid} --clear-groups "
            f'find "$2/{key_rel}" \\( -user _rspamd -or -group _rspamd -or -perm -o=r \\) && '
            f"{setpriv} --reuid={user.pw_uid} --regid={user.pw_gid} --clear-groups "
            f'{rspamadm} mime sign -d example.test -s mail -k "$2/{key_rel}" "$3"'
        )
        done = subprocess.run(
            [
                unshare,
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                str(config),
                mount,
                str(message),
            ],
            capture_output=True,
            check=False,
            cwd="/",  # _rspamd must be able to stay in the working directory (find restores it)
        )
        assert done.returncode == 0, done.stderr.decode()
        found, _, signed = done.stdout.partition(b"\n")
        assert found.decode() == f"{mount}/{key_rel}"  # DMS's check finds it: no warning
        assert b"DKIM-Signature:" in signed
        # A re-render that changes the key keeps its owner (Rspamd can still read it).
        state = _fast_state(settings)
        keys = dict(state.dkim_private_keys)
        keys[("example.test", "mail")] = rsa_key_pem(2048, 5)[0]
        render.write_rendering(render.render_stack(settings, replace(state, dkim_private_keys=keys)), out)
        info = (config / key_rel).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (user.pw_uid, user.pw_gid, 0o600)
    finally:
        os.rmdir(mount)
        Path(mount + "-message.eml").unlink(missing_ok=True)


# -- identical to what the Pulumi program registers ------------------------------------------------


def _state_from_run(result: RunResult, settings: MailSettings) -> render.StackState:
    """The DKIM keys, generated passwords, hash seed and self-signed certificate the mocked Pulumi run holds in its 'state'."""
    keys = {}
    for domain in settings.domains:
        for selector in (domain.dkim.selector, *domain.dkim.retired):
            reg = result.one("tls:index/privateKey:PrivateKey", f"dkim-{selector}-{domain.name}")
            keys[(domain.name, selector)] = plain(reg.state["privateKeyPem"])
    passwords = {
        a.address: plain(
            result.one("random:index/randomPassword:RandomPassword", f"accounts-password-{a.address}").state["result"]
        )
        for a in settings.accounts
        if a.password is None
    }
    seed = base64.b64decode(
        plain(result.one("random:index/randomBytes:RandomBytes", "accounts-hash-seed").state["base64"])
    )
    self_signed = None
    if settings.tls.mode == "self-signed":
        self_signed = render.SelfSignedCert(
            plain(result.one("tls:index/privateKey:PrivateKey", "mail-tls-key").state["privateKeyPem"]),
            plain(result.one("tls:index/selfSignedCert:SelfSignedCert", "mail-tls-cert").state["certPem"]),
        )
    return render.StackState(keys, passwords, seed, self_signed)


def _registered_files(result: RunResult, data_dir: str) -> dict[str, str]:
    """Path in the data dir → text of every file command (the path is the last word of its script)."""
    files = {}
    for reg in result.resources:
        if reg.type in ("command:local:Command", "command:remote:Command") and "stdin" in reg.inputs:
            path = shlex.split(plain(reg.inputs["create"]).rsplit(";", 1)[-1])[-1]
            if path.startswith(data_dir + "/"):
                files[path.removeprefix(data_dir + "/")] = plain(reg.inputs["stdin"])
    return files


REGISTERED_CONTAINERS = {
    "mailserver": ("mail-container", "mail-image"),
    "certbot": ("mail-tls-certbot", "mail-tls-certbot-image"),
}
"""Compose service → (container, image) resource names."""


def _unescape(value: Any) -> Any:
    """compose.yaml doubles `$` against interpolation; the container sees single ones."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def _as_container_inputs(service: dict[str, Any], volumes: dict[str, Any], env_text: str) -> dict[str, Any]:
    """A compose service in pulumi-docker's input shape (minus the image id and `wait`)."""
    duration = {
        "interval": "interval",
        "timeout": "timeout",
        "retries": "retries",
        "start_period": "startPeriod",
        "start_interval": "startInterval",
    }
    inputs: dict[str, Any] = {"name": service["container_name"]}
    if "hostname" in service:
        inputs["hostname"] = service["hostname"]
    if "env_file" in service:
        assert service["env_file"] == ["mailserver.env"]
        inputs["envs"] = env_text.splitlines()
    for key, target in (("entrypoint", "entrypoints"), ("command", "command")):
        if key in service:
            inputs[target] = service[key]
    if "ports" in service:
        inputs["ports"] = [
            {
                "internal": p["target"],
                "external": p["published"],
                "protocol": p["protocol"],
                **({"ip": p["host_ip"]} if "host_ip" in p else {}),
            }
            for p in service["ports"]
        ]
    inputs["volumes"] = [
        {
            **({"volumeName": volumes[v["source"]]["name"]} if v["type"] == "volume" else {"hostPath": v["source"]}),
            "containerPath": v["target"],
            **({"readOnly": True} if v.get("read_only") else {}),
        }
        for v in service["volumes"]
    ]
    if "cap_add" in service:
        inputs["capabilities"] = {"adds": service["cap_add"]}
    if "labels" in service:
        inputs["labels"] = [{"label": k, "value": v} for k, v in service["labels"].items()]
    inputs["restart"] = service["restart"]
    if "stop_grace_period" in service:
        inputs["stopTimeout"] = int(service["stop_grace_period"].removesuffix("s"))
    # `docker compose down` stops with stop_grace_period; the component's destroy waits as long
    # (Docker's own 10 s where the service has none).
    inputs["destroyGraceSeconds"] = inputs.get("stopTimeout", 10)
    if "mem_limit" in service:
        inputs["memory"] = int(service["mem_limit"].removesuffix("m"))
    if "memswap_limit" in service:
        inputs["memorySwap"] = service["memswap_limit"]
    inputs["networkMode"] = service["network_mode"]
    if "healthcheck" in service:
        check = service["healthcheck"]
        inputs["healthcheck"] = {"tests": check["test"], **{duration[k]: v for k, v in check.items() if k != "test"}}
    return inputs


def _prod_with(**changes: Any) -> Any:
    return lambda key: with_values(prod_config_values(), **{"target/privateKeyFile": key, **changes})


@pytest.mark.parametrize(
    ("config", "secret_keys", "stack"),
    [
        pytest.param(lambda key: stack_config(DEV_STACK), (), "dev", id="dev"),
        pytest.param(_prod_with(), PROD_SECRET_KEYS, "prod", id="prod"),
        pytest.param(
            _prod_with(**{"tls/challenge": "http", "tls/staging": True, "tls/email": None}),
            PROD_SECRET_KEYS,
            "prod",
            id="prod-http",
        ),
        pytest.param(
            _prod_with(tls={"mode": "existing", "path": "/srv/certs"}), PROD_SECRET_KEYS, "prod", id="prod-existing"
        ),
    ],
)
def test_rendered_values_equal_registered_values(tmp_path: Path, config: Any, secret_keys: Any, stack: str) -> None:
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("not a real key: HostTarget only reads it\n")
    raw = config(str(key_file))
    result = run_program(raw, secret_keys, stack=stack)
    assert result.error is None
    settings = load_settings(raw, secret_keys=set(secret_keys), stack=stack)
    state = _state_from_run(result, settings)
    rendering = render.render_stack(settings, state, cloudflare_token=raw.get("cloudflare:apiToken"))
    rendered = {f.path: f.text for f in rendering.files}

    # Files on the host (DMS config, certificate, certbot credentials): the same paths and texts.
    registered = _registered_files(result, settings.target.data_dir)
    assert registered == {p: t for p, t in rendered.items() if p.startswith(("config/", "certbot/"))}

    # DNS: the same records and zone files as the stack's outputs.
    outputs = result.plain_outputs
    public_keys = {key_id: render.public_key_pem(pem) for key_id, pem in state.dkim_private_keys.items()}
    records = [r.as_dict() for r in mail_records(settings, public_keys)]
    assert outputs["dnsRecords"] == records
    assert {f"zones/{zone}.zone": text for zone, text in outputs["zoneFile"].items()} == {
        p: t for p, t in rendered.items() if p.startswith("zones/")
    }

    # The container: env, ports, named volumes, capabilities, labels, memory, healthcheck command.
    container = result.one("docker:index/container:Container", "mail-container").plain_inputs
    document = _unescape(yaml.safe_load(rendered["compose.yaml"]))
    service = document["services"]["mailserver"]
    assert container["envs"] == rendered["mailserver.env"].splitlines()
    assert [(p["internal"], p["external"], p.get("ip")) for p in container["ports"]] == [
        (p["target"], p["published"], p.get("host_ip")) for p in service["ports"]
    ]
    assert [(v["volumeName"], v["containerPath"]) for v in container["volumes"] if "volumeName" in v] == [
        (document["volumes"][v["source"]]["name"], v["target"]) for v in service["volumes"] if v["type"] == "volume"
    ]
    assert container.get("capabilities", {}).get("adds", []) == service.get("cap_add", [])
    assert {label["label"]: label["value"] for label in container["labels"]} == service["labels"]
    assert f"{int(container['memory'])}m" == service["mem_limit"]
    assert container["healthcheck"]["tests"] == service["healthcheck"]["test"]

    # Every container, every input: name, restart, mounts, stop timeout, network mode, healthcheck,
    # certbot included; the image by reference, `wait` as DMS's depends_on.
    expected_services = {"mailserver"}
    if settings.tls.mode == "letsencrypt":
        expected_services.add("certbot")
    assert set(document["services"]) == expected_services
    waited_for = {
        dependency
        for s in document["services"].values()
        for dependency, condition in s.get("depends_on", {}).items()
        if condition == {"condition": "service_healthy"}
    }
    registered_containers = {r.name: r for r in result.by_type("docker:index/container:Container")}
    assert set(registered_containers) == {REGISTERED_CONTAINERS[name][0] for name in expected_services}
    for name, compose_service in document["services"].items():
        container_name, image_name = REGISTERED_CONTAINERS[name]
        inputs = registered_containers[container_name].plain_inputs
        image = result.one("docker:index/remoteImage:RemoteImage", image_name)
        assert inputs.pop("image") == plain(image.state["imageId"])
        assert image.plain_inputs["name"] == compose_service["image"]
        wait, wait_timeout = inputs.pop("wait", False), inputs.pop("waitTimeout", None)
        if name in waited_for:
            assert (wait, go_duration(int(wait_timeout))) == (True, compose_service["healthcheck"]["start_period"])
        else:
            assert (wait, wait_timeout) == (False, None)
        if inputs.get("ports") == []:
            del inputs["ports"]  # certbot (DNS-01) registers an empty list; Compose has no such thing
        assert inputs == _as_container_inputs(compose_service, document["volumes"], rendered["mailserver.env"]), name


def test_watchtower_stays_valid_for_render(tmp_path: Path) -> None:
    """The Pulumi program refuses `updates.watchtower` (tests/test_mail_server.py); `render` keeps it.

    compose.yaml names the image by reference and has no state a recreated container could fall out
    of, so Watchtower can pull the tag and recreate the service (docs/host.md, Updates).
    """
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("not a real key\n")
    raw = _prod_with(updates={"watchtower": True})(str(key_file))
    assert run_program(raw, PROD_SECRET_KEYS, stack="prod").error is not None
    settings = load_settings(raw, secret_keys=set(PROD_SECRET_KEYS), stack="prod")
    state = render.fresh_state(settings)
    rendering = render.render_stack(settings, state, cloudflare_token=raw.get("cloudflare:apiToken"))
    services = yaml.safe_load(next(f.text for f in rendering.files if f.path == "compose.yaml"))["services"]
    assert list(services) == ["mailserver", "certbot", "watchtower"]
    assert services["mailserver"]["image"] == "ghcr.io/docker-mailserver/docker-mailserver:15.1.0"
    assert services["mailserver"]["labels"]["com.centurylinklabs.watchtower.enable"] == "true"
    assert services["watchtower"]["image"] == "nickfedor/watchtower:1.21.0"


# -- real tools ------------------------------------------------------------------------------------


def _kzonecheck(path: Path, origin: str) -> None:
    done = subprocess.run(
        [require_tool("kzonecheck"), "-o", origin, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _doveadm_verify(accounts_file: Path, passwords: dict[str, str]) -> None:
    lines = [line for line in accounts_file.read_text().splitlines() if not line.startswith("#")]
    hashes = dict(line.split("|", 1) for line in lines)
    assert set(hashes) == set(passwords)
    for address, password in passwords.items():
        done = subprocess.run(
            [require_tool("doveadm"), "pw", "-t", hashes[address], "-p", password],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{address}: {done.stdout}{done.stderr}"
        assert "(verified)" in done.stdout


def test_manual_dns_renders_the_web_documents_and_says_where_they_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Manual DNS with MTA-STS and autoconfig on: `web/<host><path>` files, byte-exact, and a records.md table."""
    from mailstack.config.autoconfig import mobileconfig, thunderbird_xml
    from mailstack.config.mta_sts import policy_text

    project = _dev_project(
        tmp_path,
        autoconfig=True,
        domains={"example.test": {"dmarc": {"policy": "none"}, "mtaSts": {"mode": "enforce"}}},
    )
    out = tmp_path / "rendered"
    code, _, stderr = _main(["--stack", "dev", "--out", str(out), "--project-dir", str(project)], {}, capsys)
    assert (code, stderr) == (0, "")
    settings = load_settings(stack_config(project / "Pulumi.dev.yaml"), stack="dev")
    domain = settings.domain("example.test")
    web = out / "web"
    assert sorted(str(p.relative_to(web)) for p in web.rglob("*") if p.is_file()) == [
        "autoconfig.example.test/mail/config-v1.1.xml",
        "autoconfig.example.test/mail/config.mobileconfig",
        "autodiscover.example.test/autodiscover/autodiscover.xml",
        "mta-sts.example.test/.well-known/mta-sts.txt",
    ]
    # Bytes, not text: the policy's CRLF line ends must reach the file unchanged.
    assert (web / "mta-sts.example.test/.well-known/mta-sts.txt").read_bytes() == (
        b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 604800\r\n"
    )
    assert (web / "mta-sts.example.test/.well-known/mta-sts.txt").read_bytes().decode() == policy_text(settings, domain)
    assert (web / "autoconfig.example.test/mail/config-v1.1.xml").read_text() == thunderbird_xml(settings, domain)
    assert (web / "autoconfig.example.test/mail/config.mobileconfig").read_text() == mobileconfig(
        settings, domain, None
    )
    records_md = (out / "records.md").read_text()
    assert (
        "| https://mta-sts.example.test/.well-known/mta-sts.txt | `web/mta-sts.example.test/.well-known/mta-sts.txt`"
        " | text/plain | you | MTA-STS policy: sending servers fetch it over HTTPS (RFC 8461 §3.3) |"
    ) in records_md
    assert "nothing of mailstack's can serve them (their zone is not at Cloudflare)" in records_md
    assert "`_mta-sts.example.test`" not in records_md  # the TXT is in the records table, by name
    assert "| _mta-sts.example.test | TXT |" in records_md


def test_records_md_and_zone_files_say_who_publishes_each_zone() -> None:
    """One stack over two DNS hosts: records.md and each zone file name the zone's own backend."""
    aws = {"aws:region": "eu-west-1", "aws:profile": "mail"}

    def published(changes: dict[str, Any]) -> tuple[str, dict[str, str]]:
        settings = load_settings({**prod_config(**changes), **aws}, secret_keys=PROD_SECRET_KEYS, stack="prod")
        records = static_records(settings)
        zones = render_zone_files(records, stack="prod", provider=settings.zone_providers)
        return render.records_markdown(settings, records), {z: text.splitlines()[1] for z, text in zones.items()}

    md, headers = published({"domains/another.com/dns": {"provider": "route53"}})
    assert md.splitlines()[2].startswith("Each zone's section says where its records are published. TXT contents")
    assert "## another.com\n\nThe stack publishes these records at Route 53.\n\n| Name |" in md
    assert "## example.com\n\nThe stack publishes these records at Cloudflare.\n\n| Name |" in md
    assert headers == {
        "another.com": "; The stack publishes these records at Route 53; this file shows what it manages.",
        "example.com": "; The stack publishes these records at Cloudflare; this file shows what it manages.",
    }

    md, headers = published({"domains/another.com/dns": {"provider": "manual"}})
    assert "## another.com\n\nPublish these records at your DNS host, or import `zones/another.com.zone`.\n\n" in md
    assert headers["another.com"] == "; Publish these records at your DNS host (most accept a BIND zone-file import)."

    md, _ = published({})  # one host for every zone: said once, at the top
    assert md.splitlines()[2].startswith("The stack publishes these records at Cloudflare. TXT contents")
    assert "## example.com\n\n| Name |" in md
