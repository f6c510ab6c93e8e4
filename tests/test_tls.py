"""Tls component: self-signed files, the certbot container (DNS-01 / HTTP-01), existing certificates."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mailstack.config import load_settings
from mailstack.config.containers import certbot_script
from tests.conftest import PROD_SECRET_KEYS, PROD_SECRETS, prod_config_values
from tests.harness import ROOT, RunResult, is_secret, plain, run_program, stack_config, with_values
from tools.secret_audit import walk_strings

PROGRAM = ROOT / "tests" / "programs" / "server_only.py"
DATA = "/mnt/dietpi_userdata/mailstack"
CF_TOKEN = PROD_SECRETS["cloudflare:apiToken"]


@pytest.fixture(autouse=True)
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("FAKE KEY\n")
    monkeypatch.setenv("HOME", str(tmp_path))


def prod(**changes: object) -> RunResult:
    run = run_program(with_values(prod_config_values(), **changes), PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert run.error is None, run.error
    return run


def test_self_signed_key_and_certificate_are_written_to_the_watched_ssl_dir(dev_config: dict[str, str]) -> None:
    run = run_program(dev_config, program=PROGRAM)
    assert run.error is None
    key = run.one("tls:index/privateKey:PrivateKey", "mail-tls-key")
    assert key.plain_inputs == {"algorithm": "RSA", "rsaBits": 2048}
    cert = run.one("tls:index/selfSignedCert:SelfSignedCert", "mail-tls-cert")
    inputs = cert.plain_inputs
    assert inputs["dnsNames"] == ["mail.example.test"]
    assert inputs["subject"] == {"commonName": "mail.example.test"}
    assert (inputs["validityPeriodHours"], inputs["earlyRenewalHours"]) == (8760, 720)
    assert inputs["allowedUses"] == ["key_encipherment", "digital_signature", "server_auth"]
    data = str(Path.home() / ".mailstack" / "dev")
    key_file = run.one("command:local:Command", "mail-tls-key-file")
    assert key_file.plain_inputs["create"].endswith(f'mv -f "$tmp" {data}/config/ssl/key.pem')
    assert is_secret(key_file.inputs["stdin"])
    assert plain(key_file.inputs["stdin"]) == plain(key.state["privateKeyPem"])
    cert_file = run.one("command:local:Command", "mail-tls-cert-file")
    assert cert_file.plain_inputs["create"].endswith(f'mv -f "$tmp" {data}/config/ssl/cert.pem')
    assert plain(cert_file.inputs["stdin"]) == cert.state["certPem"]
    container = run.one("docker:index/container:Container", "mail-container")
    assert key_file.urn in container.options["dependencies"] and cert_file.urn in container.options["dependencies"]
    assert "/etc/letsencrypt" not in {v["containerPath"] for v in container.plain_inputs["volumes"]}
    assert run.by_type("docker:index/container:Container") == [container]


def test_letsencrypt_dns_cloudflare_certbot_container() -> None:
    run = prod()
    certbot = run.one("docker:index/container:Container", "mail-tls-certbot")
    inputs = certbot.plain_inputs
    assert inputs["name"] == "mailstack-prod-certbot"
    assert inputs["entrypoints"] == ["/bin/sh", "-c"]
    assert inputs["command"] == [
        'extra=""; if grep -qs acme-staging /etc/letsencrypt/renewal/mail.example.com.conf; then extra="--force-renewal"; fi; '
        "certbot certonly -n --cert-name mail.example.com -d mail.example.com --agree-tos --email admin@example.com "
        "--dns-cloudflare --dns-cloudflare-credentials /run/mailstack/cloudflare.ini $extra || "
        '{ echo "mailstack: certbot certonly failed; next attempt in 1 h (Let\'s Encrypt allows 5 failed validations per hour)" >&2; '
        "sleep 3600; exit 1; }; trap exit TERM; while :; do certbot renew; sleep 12h & wait $!; done"
    ]
    assert inputs["volumes"] == [
        {"hostPath": f"{DATA}/letsencrypt", "containerPath": "/etc/letsencrypt"},
        {"hostPath": f"{DATA}/certbot", "containerPath": "/run/mailstack", "readOnly": True},
    ]
    assert inputs["ports"] == []
    assert inputs["healthcheck"] == {
        "tests": ["CMD-SHELL", "test -f /etc/letsencrypt/live/mail.example.com/fullchain.pem"],
        "interval": "10s",
        "timeout": "5s",
        # 600 s as the provider reads it back (Go's Duration.String()); "600s" diffs on every run.
        "startPeriod": "10m0s",
        "startInterval": "0s",
        "retries": 3,
    }
    # certbot traps TERM; Docker's default 10 s instead of the provider's SIGKILL at once.
    assert inputs["destroyGraceSeconds"] == 10
    assert (inputs["wait"], inputs["waitTimeout"], inputs["restart"], inputs["networkMode"]) == (
        True,
        600,
        "unless-stopped",
        "bridge",
    )
    assert certbot.options["delete_before_replace"] is True
    assert certbot.options["replace_on_changes"] == ["healthcheck"]
    image = run.one("docker:index/remoteImage:RemoteImage", "mail-tls-certbot-image")
    assert image.plain_inputs == {"name": "certbot/dns-cloudflare:v4.2.0", "keepLocally": True}
    assert inputs["image"] == plain(image.state["imageId"])

    credentials = run.one("command:remote:Command", "mail-tls-cloudflare-credentials")
    assert credentials.urn in certbot.options["dependencies"]
    assert is_secret(credentials.inputs["stdin"])
    assert plain(credentials.inputs["stdin"]) == f"dns_cloudflare_api_token = {CF_TOKEN}\n"
    assert credentials.plain_inputs["create"].endswith(f'mv -f "$tmp" {DATA}/certbot/cloudflare.ini')
    assert credentials.plain_inputs["logging"] == "none"
    assert CF_TOKEN not in credentials.plain_inputs["create"]
    for _, text, _ in walk_strings(certbot.inputs):
        assert CF_TOKEN not in text

    dms = run.one("docker:index/container:Container", "mail-container")
    assert certbot.urn in dms.options["dependencies"]
    assert {
        "hostPath": f"{DATA}/letsencrypt",
        "containerPath": "/etc/letsencrypt",
        "readOnly": True,
    } in dms.plain_inputs["volumes"]
    assert "SSL_TYPE=letsencrypt" in dms.plain_inputs["envs"]


def test_letsencrypt_http_challenge_publishes_port_80_and_staging() -> None:
    run = prod(**{"tls/challenge": "http", "tls/staging": True, "tls/email": None})
    certbot = run.one("docker:index/container:Container", "mail-tls-certbot")
    inputs = certbot.plain_inputs
    assert inputs["ports"] == [{"internal": 80, "external": 80, "protocol": "tcp"}]
    assert inputs["command"] == [
        "certbot certonly -n --cert-name mail.example.com -d mail.example.com --agree-tos "
        "--register-unsafely-without-email --staging --standalone || "
        '{ echo "mailstack: certbot certonly failed; next attempt in 1 h (Let\'s Encrypt allows 5 failed validations per hour)" >&2; '
        "sleep 3600; exit 1; }; trap exit TERM; while :; do certbot renew; sleep 12h & wait $!; done"
    ]
    assert inputs["volumes"] == [{"hostPath": f"{DATA}/letsencrypt", "containerPath": "/etc/letsencrypt"}]
    assert run.one("docker:index/remoteImage:RemoteImage", "mail-tls-certbot-image").plain_inputs["name"] == (
        "certbot/certbot:v4.2.0"
    )
    assert [r.name for r in run.resources if r.name == "mail-tls-cloudflare-credentials"] == []


def test_existing_certificates_are_mounted_read_only() -> None:
    run = prod(**{"tls": {"mode": "existing", "path": "/etc/letsencrypt"}})
    dms = run.one("docker:index/container:Container", "mail-container")
    assert {"hostPath": "/etc/letsencrypt", "containerPath": "/etc/letsencrypt", "readOnly": True} in dms.plain_inputs[
        "volumes"
    ]
    assert [r.name for r in run.by_type("docker:index/container:Container")] == ["mail-container"]
    assert run.by_type("tls:index/selfSignedCert:SelfSignedCert") == []


# --- the certbot script, run for real with a stub certbot -------------------------------------


def _settings(staging: bool) -> object:
    config = with_values(stack_config(ROOT / "examples" / "Pulumi.prod.yaml"), **PROD_SECRETS)
    config = with_values(config, **{"tls/staging": staging})
    return load_settings(config, secret_keys=PROD_SECRET_KEYS, stack="prod")


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_certbot_script_parses_in_posix_shells(shell: str) -> None:
    sh = shutil.which(shell)
    if sh is None:
        pytest.skip(f"{shell} not installed")
    for staging in (False, True):
        script = certbot_script(_settings(staging))  # type: ignore[arg-type]
        assert subprocess.run([sh, "-n", "-c", script], check=False).returncode == 0


def test_certbot_script_issues_once_then_renews_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`docker stop` sends SIGTERM to PID 1 (sh -c): the trap must end the loop at once."""
    calls = tmp_path / "calls"
    stub = tmp_path / "bin" / "certbot"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    script = certbot_script(_settings(False))  # type: ignore[arg-type]
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin"}
    proc = subprocess.Popen(["/bin/sh", "-c", script], env=env, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not calls.exists() or len(calls.read_text().splitlines()) < 2):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        # 143 = exit status 128+15 from `exit` in the trap; killed by the default action it would
        # be -15. In a container sh is PID 1, which has no default action: without the trap,
        # `docker stop` would wait the whole grace period and then SIGKILL.
        assert proc.wait(timeout=5) == 143
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned `sleep 12h`
    assert calls.read_text().splitlines() == [
        "certonly -n --cert-name mail.example.com -d mail.example.com --agree-tos --email admin@example.com "
        "--dns-cloudflare --dns-cloudflare-credentials /run/mailstack/cloudflare.ini",
        "renew",
    ]
