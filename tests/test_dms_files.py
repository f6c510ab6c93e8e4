"""Texts of the DMS config files (config/dms_files.py): exact formats, ordering, fingerprints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailstack.config import dms_files
from mailstack.config.dms_files import (
    HEADER,
    DkimSigner,
    accounts_file,
    key_path,
    opendkim_key_table,
    opendkim_signing_table,
    opendkim_trusted_hosts,
    quotas_file,
    rspamd_dkim_signing,
    sasl_password_file,
    signer_files,
    signer_fingerprint,
    virtual_file,
)
from mailstack.config.settings import AccountSettings, AliasSettings, RelaySettings

SIGNERS = [DkimSigner("example.com", "mail", 2048), DkimSigner("another.com", "s2026", 1024)]
RELAY = RelaySettings("smtp-relay.brevo.com", 587, "me@example.com", SecretStr("xsmtpsib-key"), "spf.brevo.com")


def test_every_file_starts_with_a_comment_header() -> None:
    assert HEADER.startswith("# ") and HEADER.endswith("\n") and "@" not in HEADER and "|" not in HEADER


def test_accounts_file() -> None:
    text = accounts_file([("me@example.com", "{SHA512-CRYPT}$6$a$b"), ("a@another.com", "{SHA512-CRYPT}$6$c$d")])
    assert text == HEADER + "a@another.com|{SHA512-CRYPT}$6$c$d\nme@example.com|{SHA512-CRYPT}$6$a$b\n"


def test_accounts_order_makes_dms_grep_find_the_exact_account_first(tmp_path: Path) -> None:
    """DMS copies the hash of the first line `grep <target>` finds for an alias dummy account."""
    addresses = ["home@example.com", "me@example.com", "some.me@example.com", "mxe@example.com", "m.e@example.com"]
    text = accounts_file([(a, f"HASH-{a}") for a in addresses])
    path = tmp_path / "postfix-accounts.cf"
    path.write_text(text)
    grep = shutil.which("grep")
    assert grep is not None
    for address in addresses:
        first = subprocess.run([grep, address, str(path)], capture_output=True, text=True, check=True)
        assert first.stdout.splitlines()[0] == f"{address}|HASH-{address}"


def test_quotas_only_for_accounts_with_a_quota_in_grep_order(tmp_path: Path) -> None:
    accounts = [
        AccountSettings("home@example.com", None, "1G"),
        AccountSettings("me@example.com", None, "5G"),
        AccountSettings("nobody@example.com", None, None),
    ]
    text = quotas_file(accounts)
    assert text == HEADER + "me@example.com:5G\nhome@example.com:1G\n"
    path = tmp_path / "dovecot-quotas.cf"
    path.write_text(text)
    # DMS: IFS=':' read -r -a USER_QUOTA < <(grep "${USER}@${DOMAIN}:" -i dovecot-quotas.cf)
    first = subprocess.run(["grep", "-i", "me@example.com:", str(path)], capture_output=True, text=True, check=True)
    assert first.stdout.splitlines()[0] == "me@example.com:5G"


def test_virtual_file_specific_aliases_then_catch_alls() -> None:
    aliases = (
        AliasSettings("@another.com", ("me@another.com",)),
        AliasSettings("postmaster@example.com", ("me@example.com",)),
        AliasSettings("team@example.com", ("a@example.com", "b@example.com")),
    )
    assert virtual_file(aliases) == HEADER + (
        "postmaster@example.com me@example.com\nteam@example.com a@example.com,b@example.com\n@another.com me@another.com\n"
    )


def test_virtual_file_without_aliases_is_just_the_header() -> None:
    assert virtual_file(()) == HEADER


def test_sasl_password_is_keyed_by_the_exact_relayhost() -> None:
    assert sasl_password_file(RELAY) == HEADER + "[smtp-relay.brevo.com]:587 me@example.com:xsmtpsib-key\n"


@pytest.mark.parametrize(
    ("username", "password"), [("me@example.com", "line\nbreak"), ("me@example.com", "cr\r"), ("me x", "pw")]
)
def test_sasl_password_refuses_text_that_breaks_the_table(username: str, password: str) -> None:
    relay = RelaySettings("smtp.example.net", 587, username, SecretStr(password), None)
    with pytest.raises(ValueError, match="line breaks"):
        sasl_password_file(relay)


def test_opendkim_tables_use_the_in_container_key_path() -> None:
    assert opendkim_key_table(SIGNERS) == HEADER + (
        "s2026._domainkey.another.com another.com:s2026:/etc/opendkim/keys/another.com/s2026.private\n"
        "mail._domainkey.example.com example.com:mail:/etc/opendkim/keys/example.com/mail.private\n"
    )
    assert opendkim_signing_table(SIGNERS) == HEADER + (
        "*@another.com s2026._domainkey.another.com\n*@example.com mail._domainkey.example.com\n"
    )
    assert opendkim_trusted_hosts() == HEADER + "127.0.0.1\nlocalhost\n"


def test_rspamd_signing_config() -> None:
    assert rspamd_dkim_signing(SIGNERS) == HEADER + (
        "# https://rspamd.com/doc/modules/dkim_signing.html\n"
        "enabled = true;\n"
        "sign_authenticated = true;\n"
        "sign_local = true;\n"
        "try_fallback = false;\n"
        'use_domain = "header";\n'
        "use_redis = false;\n"
        "use_esld = true;\n"
        "allow_username_mismatch = true;\n"
        "check_pubkey = false;\n"
        "domain {\n"
        "    another.com {\n"
        '        path = "/tmp/docker-mailserver/rspamd/dkim/rsa-1024-s2026-another.com.private.txt";\n'
        '        selector = "s2026";\n'
        "    }\n"
        "    example.com {\n"
        '        path = "/tmp/docker-mailserver/rspamd/dkim/rsa-2048-mail-example.com.private.txt";\n'
        '        selector = "mail";\n'
        "    }\n"
        "}\n"
    )


def test_key_paths_per_profile() -> None:
    assert key_path("minimal", SIGNERS[0]) == "opendkim/keys/example.com/mail.private"
    assert key_path("standard", SIGNERS[0]) == "rspamd/dkim/rsa-2048-mail-example.com.private.txt"


def test_signer_files_per_profile() -> None:
    assert list(signer_files("minimal", SIGNERS)) == [
        "opendkim/KeyTable",
        "opendkim/SigningTable",
        "opendkim/TrustedHosts",
    ]
    assert list(signer_files("standard", SIGNERS)) == ["rspamd/override.d/dkim_signing.conf"]


def test_fingerprint_changes_with_a_signer_file_or_a_public_key_only() -> None:
    files = signer_files("minimal", SIGNERS)
    keys = {"opendkim/keys/example.com/mail.private": "PUBLIC-A", "opendkim/keys/another.com/s2026.private": "PUBLIC-B"}
    base = signer_fingerprint(files, keys)
    assert len(base) == 64 and int(base, 16) >= 0
    assert signer_fingerprint(dict(reversed(files.items())), dict(reversed(keys.items()))) == base
    assert signer_fingerprint(files, {**keys, "opendkim/keys/example.com/mail.private": "PUBLIC-C"}) != base
    assert signer_fingerprint(signer_files("minimal", SIGNERS[:1]), keys) != base
    # Moving text between the file and key parts cannot produce the same digest.
    assert signer_fingerprint({"a": "b"}, {}) != signer_fingerprint({}, {"a": "b"})


def test_file_names_match_dms() -> None:
    assert (dms_files.ACCOUNTS, dms_files.VIRTUAL, dms_files.QUOTAS, dms_files.SASL_PASSWORDS) == (
        "postfix-accounts.cf",
        "postfix-virtual.cf",
        "dovecot-quotas.cf",
        "postfix-sasl-password.cf",
    )
