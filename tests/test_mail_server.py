"""MailServer under Pulumi mocks: exact container inputs, protected volumes, file commands, secrets,
and zero downtime (account/password/alias/quota/relay-password changes never touch the container)."""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest

from components.mail_server import volume_options
from mailstack.config import dms_files
from mailstack.config.dms_files import DkimSigner
from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, PROD_SECRETS, prod_config_values
from tests.harness import (
    KEY_POOL_SIZE,
    ROOT,
    RecordingMocks,
    Registration,
    RunResult,
    is_secret,
    plain,
    run_program,
    stack_config,
    with_values,
)
from tools.secret_audit import walk_strings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from passlib.hash import sha512_crypt

PROGRAM = ROOT / "tests" / "programs" / "server_only.py"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ-FAKE-FOR-TESTS\n"
HEALTHCHECK = {
    "tests": ["CMD-SHELL", "ss --listening --ipv4 --tcp | grep --silent ':smtp' || exit 1"],
    # Every field, in Go's Duration.String() form: nothing is left for the image to fill in.
    "interval": "30s",
    "timeout": "3s",
    "startPeriod": "30s",
    "startInterval": "0s",
    "retries": 3,
}
PROD_ENV = [
    "ACCOUNT_PROVISIONER=FILE",
    "DEFAULT_RELAY_HOST=[smtp-relay.brevo.com]:587",
    "ENABLE_AMAVIS=0",
    "ENABLE_CLAMAV=0",
    "ENABLE_FAIL2BAN=0",
    "ENABLE_IMAP=1",
    "ENABLE_OPENDKIM=1",
    "ENABLE_OPENDMARC=1",
    "ENABLE_POLICYD_SPF=1",
    "ENABLE_POP3=0",
    "ENABLE_QUOTAS=1",
    "ENABLE_RSPAMD=0",
    "ENABLE_RSPAMD_REDIS=0",
    "ENABLE_SPAMASSASSIN=0",
    "PERMIT_DOCKER=none",
    "SSL_TYPE=letsencrypt",
]
DATA = "/mnt/dietpi_userdata/mailstack"


@pytest.fixture(autouse=True)
def stable_dkim_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each mocked key resource the same key in every run, as Pulumi state does for real keys.

    The harness hands out its pooled keys in registration order, which is asynchronous and varies
    between runs; two runs could then swap the keys of two domains and differ in the label.
    """
    original = RecordingMocks.new_resource

    def new_resource(self: RecordingMocks, args: Any) -> tuple[str, dict[str, Any]]:
        if args.typ == "tls:index/privateKey:PrivateKey":
            self._keys = zlib.crc32(args.name.encode()) % KEY_POOL_SIZE
        return original(self, args)

    monkeypatch.setattr(RecordingMocks, "new_resource", new_resource)


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("home")
    (path / ".ssh").mkdir()
    (path / ".ssh" / "id_ed25519").write_text(SSH_KEY)
    monkeypatch.setenv("HOME", str(path))
    return path


def prod(**changes: Any) -> RunResult:
    run = run_program(with_values(prod_config_values(), **changes), PROD_SECRET_KEYS, stack="prod", program=PROGRAM)
    assert run.error is None, run.error
    return run


def dev(**changes: Any) -> RunResult:
    run = run_program(with_values(stack_config(DEV_STACK), **changes), stack="dev", program=PROGRAM)
    assert run.error is None, run.error
    return run


_BASE: list[RunResult] = []


def prod_base() -> RunResult:
    """The unchanged prod example, evaluated once (under the fixtures of the first test using it)."""
    if not _BASE:
        _BASE.append(prod())
    return _BASE[0]


def container(run: RunResult) -> Registration:
    return run.one("docker:index/container:Container", "mail-container")


def expected_fingerprint(run: RunResult, profile: str, signers: list[DkimSigner]) -> str:
    keys = {
        dms_files.key_path(profile, s): plain(run.named(f"dkim-{s.selector}-{s.domain}").state["publicKeyPem"])  # type: ignore[arg-type]
        for s in signers
    }
    return dms_files.signer_fingerprint(dms_files.signer_files(profile, signers), keys)  # type: ignore[arg-type]


def file_commands(run: RunResult) -> list[Registration]:
    return [
        r
        for r in run.resources
        if r.type.startswith("command:") and r.name not in ("host-bootstrap", "mail-files-on-move")
    ]


# --- exact container inputs ----------------------------------------------------------------------


def test_dev_container_inputs(home: Path) -> None:
    run = dev()
    image = run.one("docker:index/remoteImage:RemoteImage", "mail-image")
    assert image.plain_inputs == {"name": "ghcr.io/docker-mailserver/docker-mailserver:15.1.0", "keepLocally": True}
    data = f"{home}/.mailstack/dev"
    assert container(run).plain_inputs == {
        "image": plain(image.state["imageId"]),
        "name": "mailstack-dev-mailserver",
        "hostname": "mail.example.test",
        "envs": [
            "ACCOUNT_PROVISIONER=FILE",
            "ENABLE_AMAVIS=0",
            "ENABLE_CLAMAV=0",
            "ENABLE_FAIL2BAN=0",
            "ENABLE_IMAP=1",
            "ENABLE_OPENDKIM=1",
            "ENABLE_OPENDMARC=1",
            "ENABLE_POLICYD_SPF=1",
            "ENABLE_POP3=0",
            "ENABLE_QUOTAS=1",
            "ENABLE_RSPAMD=0",
            "ENABLE_RSPAMD_REDIS=0",
            "ENABLE_SPAMASSASSIN=0",
            "PERMIT_DOCKER=none",
            "SSL_CERT_PATH=/tmp/docker-mailserver/ssl/cert.pem",
            "SSL_KEY_PATH=/tmp/docker-mailserver/ssl/key.pem",
            "SSL_TYPE=manual",
        ],
        "ports": [
            {"internal": 25, "external": 25, "ip": "127.0.0.1", "protocol": "tcp"},
            {"internal": 465, "external": 465, "ip": "127.0.0.1", "protocol": "tcp"},
            {"internal": 993, "external": 993, "ip": "127.0.0.1", "protocol": "tcp"},
        ],
        "volumes": [
            {"volumeName": "mailstack-dev-mail-data", "containerPath": "/var/mail"},
            {"volumeName": "mailstack-dev-mail-state", "containerPath": "/var/mail-state"},
            {"volumeName": "mailstack-dev-mail-logs", "containerPath": "/var/log/mail"},
            {"hostPath": f"{data}/config", "containerPath": "/tmp/docker-mailserver"},
            {"hostPath": "/etc/localtime", "containerPath": "/etc/localtime", "readOnly": True},
        ],
        "labels": [
            {
                "label": "mailstack.signer-config-sha256",
                "value": expected_fingerprint(run, "minimal", [DkimSigner("example.test", "mail", 2048)]),
            }
        ],
        "restart": "always",
        "stopTimeout": 60,
        # SIGTERM, then 60 s, on replace and destroy (the provider's Delete uses 0 otherwise).
        "destroyGraceSeconds": 60,
        "memory": 768,
        # As sent, as stored: Docker would store 1536 (or -1 without swap accounting) for none.
        "memorySwap": -1,
        "networkMode": "bridge",
        "healthcheck": HEALTHCHECK,
    }


def test_prod_container_inputs() -> None:
    run = prod_base()
    image = run.one("docker:index/remoteImage:RemoteImage", "mail-image")
    assert container(run).plain_inputs == {
        "image": plain(image.state["imageId"]),
        "name": "mailstack-prod-mailserver",
        "hostname": "mail.example.com",
        "envs": PROD_ENV,
        "ports": [
            {"internal": 25, "external": 25, "protocol": "tcp"},
            {"internal": 465, "external": 465, "protocol": "tcp"},
            {"internal": 993, "external": 993, "protocol": "tcp"},
        ],
        "volumes": [
            {"volumeName": "mailstack-prod-mail-data", "containerPath": "/var/mail"},
            {"volumeName": "mailstack-prod-mail-state", "containerPath": "/var/mail-state"},
            {"volumeName": "mailstack-prod-mail-logs", "containerPath": "/var/log/mail"},
            {"hostPath": f"{DATA}/config", "containerPath": "/tmp/docker-mailserver"},
            {"hostPath": "/etc/localtime", "containerPath": "/etc/localtime", "readOnly": True},
            {"hostPath": f"{DATA}/letsencrypt", "containerPath": "/etc/letsencrypt", "readOnly": True},
        ],
        "labels": [
            {
                "label": "mailstack.signer-config-sha256",
                "value": expected_fingerprint(
                    run, "minimal", [DkimSigner("another.com", "mail", 2048), DkimSigner("example.com", "mail", 2048)]
                ),
            }
        ],
        "restart": "always",
        "stopTimeout": 60,
        # SIGTERM, then 60 s, on replace and destroy (the provider's Delete uses 0 otherwise).
        "destroyGraceSeconds": 60,
        "memory": 768,
        # As sent, as stored: Docker would store 1536 (or -1 without swap accounting) for none.
        "memorySwap": -1,
        "networkMode": "bridge",
        "healthcheck": HEALTHCHECK,
    }


def test_container_options() -> None:
    run = prod_base()
    options = container(run).options
    assert options["delete_before_replace"] is True
    assert options["replace_on_changes"] == ["healthcheck"]
    assert options["protect"] is False
    assert options["provider"].startswith(run.one("pulumi:providers:docker", "host-docker").urn + "::")


def test_opt_in_ports_and_standard_profile() -> None:
    run = dev(
        **{"ports": {"submission": True, "imap": True, "pop3": True, "bindAddress": "127.0.0.1"}, "profile": "standard"}
    )
    inputs = container(run).plain_inputs
    assert [(p["internal"], p["ip"]) for p in inputs["ports"]] == [
        (25, "127.0.0.1"),
        (110, "127.0.0.1"),
        (143, "127.0.0.1"),
        (465, "127.0.0.1"),
        (587, "127.0.0.1"),
        (993, "127.0.0.1"),
        (995, "127.0.0.1"),
    ]
    assert inputs["capabilities"] == {"adds": ["NET_ADMIN"]}
    assert inputs["memory"] == 1536
    assert "ENABLE_RSPAMD=1" in inputs["envs"] and "ENABLE_POP3=1" in inputs["envs"]
    names = {r.name for r in file_commands(run)}
    assert {"mail-rspamd-dkim_signing-conf", "mail-dkim-mail-example.test"} <= names
    assert not any("opendkim" in n for n in names)
    key_file = run.named("mail-dkim-mail-example.test")
    assert key_file.plain_inputs["create"].endswith("/config/rspamd/dkim/rsa-2048-mail-example.test.private.txt")
    assert inputs["labels"][0]["value"] == expected_fingerprint(
        run, "standard", [DkimSigner("example.test", "mail", 2048)]
    )


def test_user_env_is_appended() -> None:
    run = dev(**{"env": {"ENABLE_SRS": True, "POSTFIX_MESSAGE_SIZE_LIMIT": 52428800}})
    envs = container(run).plain_inputs["envs"]
    assert "ENABLE_SRS=1" in envs and "POSTFIX_MESSAGE_SIZE_LIMIT=52428800" in envs


# --- volumes -------------------------------------------------------------------------------------


def test_mail_volumes_are_protected_and_retained() -> None:
    run = prod_base()
    volumes = run.by_type("docker:index/volume:Volume")
    assert [(v.name, v.plain_inputs) for v in volumes] == [
        ("mail-mail-data", {"name": "mailstack-prod-mail-data"}),
        ("mail-mail-logs", {"name": "mailstack-prod-mail-logs"}),
        ("mail-mail-state", {"name": "mailstack-prod-mail-state"}),
    ]
    for volume in volumes:
        assert (volume.options["protect"], volume.options["retain_on_delete"]) == (True, True), volume.name


def test_volume_options_helper() -> None:
    options = volume_options(parent=None, provider=None)  # type: ignore[arg-type]
    assert (options.protect, options.retain_on_delete) == (True, True)


# --- config files --------------------------------------------------------------------------------


def test_container_depends_on_every_config_file() -> None:
    for run in (prod_base(), dev()):
        deps = set(container(run).options["dependencies"])
        certbot = [r for r in run.resources if r.name == "mail-tls-certbot"]
        for command in file_commands(run):
            if command.name == "mail-tls-cloudflare-credentials":
                # certbot's file; DMS waits for certbot, which waits for it.
                assert certbot[0].urn in deps and command.urn in certbot[0].options["dependencies"]
            else:
                assert command.urn in deps, command.name


def test_file_command_names_and_paths() -> None:
    run = prod_base()
    paths = {r.name: r.plain_inputs["create"].rsplit(" ", 1)[1] for r in file_commands(run)}
    assert paths == {
        "mail-accounts": f"{DATA}/config/postfix-accounts.cf",
        "mail-aliases": f"{DATA}/config/postfix-virtual.cf",
        "mail-quotas": f"{DATA}/config/dovecot-quotas.cf",
        "mail-relay-credentials": f"{DATA}/config/postfix-sasl-password.cf",
        "mail-opendkim-keytable": f"{DATA}/config/opendkim/KeyTable",
        "mail-opendkim-signingtable": f"{DATA}/config/opendkim/SigningTable",
        "mail-opendkim-trustedhosts": f"{DATA}/config/opendkim/TrustedHosts",
        "mail-dkim-mail-another.com": f"{DATA}/config/opendkim/keys/another.com/mail.private",
        "mail-dkim-mail-example.com": f"{DATA}/config/opendkim/keys/example.com/mail.private",
        "mail-tls-cloudflare-credentials": f"{DATA}/certbot/cloudflare.ini",
    }


def test_every_file_command_takes_secret_stdin_and_logs_nothing() -> None:
    for run in (prod_base(), dev()):
        for command in file_commands(run):
            inputs = command.plain_inputs
            assert is_secret(command.inputs["stdin"]), command.name
            assert inputs["logging"] == "none"
            assert inputs["addPreviousOutputInEnv"] is False
            assert inputs["delete"] == f"rm -f {inputs['create'].rsplit(' ', 1)[1]}"
            assert "environment" not in inputs and "update" not in inputs
            assert {"stdout", "stderr"} <= set(command.options["additional_secret_outputs"])


def test_file_texts() -> None:
    run = prod_base()
    text = {r.name: plain(r.inputs["stdin"]) for r in file_commands(run)}
    assert text["mail-aliases"] == dms_files.HEADER + (
        "abuse@example.com me@example.com\n"
        "dmarc@example.com me@example.com\n"
        "postmaster@another.com me@another.com\n"
        "postmaster@example.com me@example.com\n"
        "# accounts of catch-all domains keep their own mail (listed before the catch-all)\n"
        "me@another.com me@another.com\n"
        "@another.com me@another.com\n"
    )
    assert text["mail-quotas"] == dms_files.HEADER + "me@another.com:5G\nme@example.com:10G\n"
    assert text["mail-relay-credentials"] == dms_files.HEADER + (
        f"[smtp-relay.brevo.com]:587 me@example.com:{PROD_SECRETS['relay/password']}\n"
    )
    assert text["mail-opendkim-signingtable"] == dms_files.HEADER + (
        "*@another.com mail._domainkey.another.com\n*@example.com mail._domainkey.example.com\n"
    )
    assert text["mail-dkim-mail-example.com"] == plain(run.named("dkim-mail-example.com").state["privateKeyPem"])


def test_accounts_file_hashes_verify_and_are_stable() -> None:
    run = prod_base()
    text = plain(run.named("mail-accounts").inputs["stdin"])
    lines = text.removeprefix(dms_files.HEADER).splitlines()
    assert [line.split("|")[0] for line in lines] == ["me@another.com", "me@example.com"]
    passwords = {
        "me@example.com": PROD_SECRETS["accounts/me@example.com/password"],
        "me@another.com": PROD_SECRETS["accounts/me@another.com/password"],
    }
    for line in lines:
        address, hashed = line.split("|")
        assert hashed.startswith("{SHA512-CRYPT}$6$") and "rounds=" not in hashed
        assert sha512_crypt.verify(passwords[address], hashed.removeprefix("{SHA512-CRYPT}"))
    # A second evaluation of the same configuration produces the same text: no diff, no rewrite.
    assert plain(prod().named("mail-accounts").inputs["stdin"]) == text


def test_generated_passwords_are_random_passwords_exported_as_a_secret() -> None:
    run = dev()
    password = run.one("random:index/randomPassword:RandomPassword")
    assert password.name == "accounts-password-postmaster@example.test"
    assert password.plain_inputs == {"length": 24, "special": False}
    # Until 2026-11-28 a child of the mail server: the alias keeps the password an upgrade finds in
    # state. The engine's URN of that parent omits the root stack's type (the mock's URNs do not).
    assert password.options["aliases"] == [
        {
            "name": "mail-password-postmaster@example.test",
            "parent_urn": "urn:pulumi:dev::mailstack::mailstack:index:MailServer::mail",
        }
    ]
    assert is_secret(run.outputs["generatedPasswords"])
    generated = plain(run.outputs["generatedPasswords"])
    assert generated == {"postmaster@example.test": plain(password.state["result"])}
    line = plain(run.named("mail-accounts").inputs["stdin"]).removeprefix(dms_files.HEADER).strip()
    address, hashed = line.split("|")
    assert address == "postmaster@example.test"
    assert sha512_crypt.verify(generated[address], hashed.removeprefix("{SHA512-CRYPT}"))
    assert plain(run.outputs["containerName"]) == "mailstack-dev-mailserver"
    assert not is_secret(run.outputs["containerName"])


def test_configured_passwords_generate_nothing() -> None:
    run = prod_base()
    assert run.by_type("random:index/randomPassword:RandomPassword") == []
    assert plain(run.outputs["generatedPasswords"]) == {}
    assert is_secret(run.outputs["generatedPasswords"])
    seed = run.one("random:index/randomBytes:RandomBytes")
    assert (seed.name, seed.plain_inputs) == ("accounts-hash-seed", {"length": 32})
    assert seed.options["aliases"] == [
        {"name": "mail-hash-seed", "parent_urn": "urn:pulumi:prod::mailstack::mailstack:index:MailServer::mail"}
    ]
    assert seed.parent == run.one("mailstack:index:Accounts").urn


# --- secrets -------------------------------------------------------------------------------------


def secret_needles(run: RunResult) -> dict[str, str]:
    """Every secret the run handles, as text that would show if it leaked."""
    needles: dict[str, str] = {}
    for key in ("base64", "hex"):
        needles[f"seed {key}"] = plain(run.one("random:index/randomBytes:RandomBytes").state[key])
    for r in run.by_type("random:index/randomPassword:RandomPassword"):
        needles[r.name] = plain(r.state["result"])
    for r in run.by_type("tls:index/privateKey:PrivateKey"):
        needles[r.name] = plain(r.state["privateKeyPem"]).splitlines()[1]
    accounts = plain(run.named("mail-accounts").inputs["stdin"]).removeprefix(dms_files.HEADER)
    for line in accounts.splitlines():
        address, hashed = line.split("|")
        needles[f"hash of {address}"] = hashed.split("$")[-1]
        needles[f"salt of {address}"] = hashed.split("$")[2]
    return needles


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_secret_outside_a_secret_wrapper(stack: str) -> None:
    run = prod_base() if stack == "prod" else dev()
    needles = secret_needles(run)
    if stack == "prod":
        needles |= {k: v for k, v in PROD_SECRETS.items()} | {"ssh key": SSH_KEY.splitlines()[1]}
    assert len(needles) >= 5
    places: list[tuple[str, Any]] = [(f"{r.name} inputs", r.inputs) for r in run.resources]
    places += [("stack outputs", run.outputs), ("component outputs", run.component_outputs)]
    for where, value in places:
        for path, text, under_secret in walk_strings(value):
            if under_secret:
                continue
            for what, needle in needles.items():
                assert needle not in text, f"{what} appears in {where}: {path}"
    for command in run.resources:
        if command.type.startswith("command:"):
            for field in ("create", "update", "delete"):
                text = str(command.plain_inputs.get(field, ""))
                for what, needle in needles.items():
                    assert needle not in text, f"{what} in {command.name}.{field}"
    for what, needle in needles.items():
        for _, text, _ in walk_strings(plain(container(run).inputs)):
            assert needle not in text, f"{what} in the container inputs"


# --- zero downtime -------------------------------------------------------------------------------

VARIANTS = {
    "an added account": {"accounts/new@example.com": {"password": "a new account's password", "quota": "1G"}},
    "a changed password": {"accounts/me@example.com/password": "a brand new passphrase"},
    "an added alias": {"aliases/abuse@another.com": "me@another.com"},
    "a changed quota": {"accounts/me@example.com/quota": "20G"},
    "a changed relay password": {"relay/password": "xsmtpsib-rotated-key"},
}


def docker_view(run: RunResult) -> dict[str, tuple[Any, dict[str, Any]]]:
    return {r.name: (r.plain_inputs, r.options) for r in run.resources if r.type.startswith("docker:")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_watched_changes_leave_the_container_untouched(variant: str) -> None:
    base = prod_base()
    changed = prod(**VARIANTS[variant])
    assert container(changed).plain_inputs == container(base).plain_inputs
    assert container(changed).options == container(base).options
    assert docker_view(changed) == docker_view(base)
    # ...while the file that DMS watches does change.
    differing = {
        r.name for r in file_commands(changed) if plain(r.inputs["stdin"]) != plain(base.named(r.name).inputs["stdin"])
    }
    expected = {
        "an added account": {"mail-accounts", "mail-quotas"},
        "a changed password": {"mail-accounts"},
        "an added alias": {"mail-aliases"},
        "a changed quota": {"mail-quotas"},
        "a changed relay password": {"mail-relay-credentials"},
    }[variant]
    assert differing == expected


def test_a_new_domain_replaces_the_container_through_the_label() -> None:
    base = prod_base()
    changed = prod(**{"domains/third.org": {}, "accounts/me@third.org": {"password": "third password"}})
    old, new = container(base).plain_inputs, container(changed).plain_inputs
    assert old["labels"] != new["labels"]
    assert {k: v for k, v in old.items() if k != "labels"} == {k: v for k, v in new.items() if k != "labels"}
    assert "mail-dkim-mail-third.org" in {r.name for r in file_commands(changed)}


def test_retired_selectors_are_published_not_installed() -> None:
    run = prod(**{"domains/example.com/dkim": {"selector": "s2026", "retired": ["mail"]}})
    names = {r.name for r in file_commands(run)}
    assert "mail-dkim-s2026-example.com" in names and "mail-dkim-mail-example.com" not in names
    assert run.named("dkim-mail-example.com").type == "tls:index/privateKey:PrivateKey"  # kept for DNS
    assert container(run).plain_inputs["labels"][0]["value"] == expected_fingerprint(
        run, "minimal", [DkimSigner("another.com", "mail", 2048), DkimSigner("example.com", "s2026", 2048)]
    )


# --- watchtower ----------------------------------------------------------------------------------


def test_watchtower_is_refused_for_the_pulumi_program() -> None:
    """Containers created from an image ID are never updated by Watchtower, and one it recreated would
    drop out of Pulumi's state (config.checks.watchtower_under_pulumi): the program refuses the key."""
    assert [r.name for r in prod_base().resources if "watchtower" in r.name] == []
    assert [label["label"] for label in container(prod_base()).plain_inputs["labels"]] == [
        "mailstack.signer-config-sha256"
    ]
    for program in (PROGRAM, ROOT / "__main__.py"):
        run = run_program(
            with_values(prod_config_values(), updates={"watchtower": True}),
            PROD_SECRET_KEYS,
            stack="prod",
            program=program,
        )
        assert str(run.error) == (
            "mailstack: the configuration of stack 'prod' has 1 problem (nothing was created):\n"
            "- mailstack:updates.watchtower: Watchtower cannot update containers Pulumi manages (they run a "
            "pinned image ID, and a container it recreated would fall out of Pulumi's state); bump "
            "`mailstack:image` and run `pulumi up` instead (docs/host.md, Updates)\n"
            "    fix: pulumi config set --path 'mailstack:updates.watchtower' false"
        )
        assert run.resources == []
    # `updates.watchtower: false` (and the image key alone) are fine.
    assert prod(updates={"watchtower": False, "image": "nickfedor/watchtower:1.21.0"}).error is None


def test_watchtower_is_listed_with_the_other_problems() -> None:
    """Every problem at once: the Watchtower refusal does not hide (or hide behind) a shape error."""
    run = run_program(
        with_values(prod_config_values(), updates={"watchtower": True}, **{"dns/ttl": 5}),
        PROD_SECRET_KEYS,
        stack="prod",
        program=PROGRAM,
    )
    assert run.error is not None
    assert [line for line in str(run.error).splitlines() if line.startswith("- ")] == [
        "- mailstack:dns.ttl: 5 is out of range: use 1 (automatic, Cloudflare) or 60-86400 seconds",
        "- mailstack:updates.watchtower: Watchtower cannot update containers Pulumi manages (they run a "
        "pinned image ID, and a container it recreated would fall out of Pulumi's state); bump "
        "`mailstack:image` and run `pulumi up` instead (docs/host.md, Updates)",
    ]


# --- component shape -----------------------------------------------------------------------------


def test_components_and_parents() -> None:
    run = prod_base()
    components = {r.type: r for r in run.resources if not r.custom}
    assert set(components) == {
        "mailstack:index:Accounts",
        "mailstack:index:HostTarget",
        "mailstack:index:DkimKeys",
        "mailstack:index:MailServer",
        "mailstack:index:Tls",
    }
    assert components["mailstack:index:Tls"].parent == components["mailstack:index:MailServer"].urn
    component_urns = {r.urn for r in components.values()}
    for r in run.resources:
        if r.custom:
            assert r.parent in component_urns, r.name
    server = components["mailstack:index:MailServer"]
    assert set(run.component_outputs[server.urn]) == {"container_name"}
    accounts = components["mailstack:index:Accounts"]
    assert set(run.component_outputs[accounts.urn]) == {"generated_passwords"}


def kept_by_destroy_exclude_protected(run: RunResult) -> set[str]:
    """What `pulumi destroy --exclude-protected` leaves: every protected resource and everything it
    transitively depends on, through parent, provider, dependencies and property dependencies
    (getProtectedExcludes, pkg/cmd/pulumi/operations/destroy.go:589-607, and markAsDependency,
    pkg/resource/graph/dependency_graph.go:361-390, in pulumi/pulumi)."""
    by_urn = {r.urn: r for r in run.resources}
    todo = [r.urn for r in run.resources if r.options.get("protect")]
    kept: set[str] = set()
    while todo:
        urn = todo.pop()
        if urn in kept or urn not in by_urn:  # the Stack itself is not recorded by the mocks
            continue
        kept.add(urn)
        r = by_urn[urn]
        provider = r.options.get("provider")
        todo += [r.parent, *(r.options.get("dependencies") or [])]
        todo += [u for deps in (r.options.get("property_dependencies") or {}).values() for u in deps]
        if provider:
            todo.append(provider.rsplit("::", 1)[0])
    return {f"{by_urn[u].type} {by_urn[u].name}" for u in kept}


VOLUMES_AND_THEIR_NEEDS = {
    "docker:index/volume:Volume mail-mail-data",
    "docker:index/volume:Volume mail-mail-state",
    "docker:index/volume:Volume mail-mail-logs",
    "mailstack:index:MailServer mail",
    "mailstack:index:HostTarget host",
    "pulumi:providers:docker host-docker",
}


def test_destroy_exclude_protected_leaves_only_the_volumes() -> None:
    """Plain `pulumi destroy` fails at the protected volumes (deleteProtectedError,
    pkg/resource/deploy/step.go:614-648); `--exclude-protected` destroys the rest, and nothing else is
    kept for the volumes' sake: every container and every file command (their deletes remove the
    files, DKIM keys and relay password included) goes. README and docs/host.md say so."""
    prod_run = run_program(prod_config_values(), PROD_SECRET_KEYS, stack="prod")
    assert prod_run.error is None, prod_run.error
    assert kept_by_destroy_exclude_protected(prod_run) == {
        *VOLUMES_AND_THEIR_NEEDS,
        "command:remote:Command host-bootstrap",  # no delete command: nothing on the host
    }
    dev_run = run_program(stack_config(DEV_STACK), stack="dev")
    assert dev_run.error is None, dev_run.error
    assert kept_by_destroy_exclude_protected(dev_run) == VOLUMES_AND_THEIR_NEEDS
