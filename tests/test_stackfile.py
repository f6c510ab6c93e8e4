"""Reading stack files without the Pulumi CLI: Pulumi's passphrase encryption, secure leaves, defaults."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailstack.config import load_settings
from mailstack.stackfile import (
    PLACEHOLDER_PREFIX,
    IncorrectPassphraseError,
    StackFileError,
    crypter_from_encryption_salt,
    derive_key,
    load_stack,
    new_encryption_salt,
    read_passphrase,
    set_secret,
)
from tests.conftest import DEV_STACK, PROD_EXAMPLE, PROD_SECRET_KEYS, prod_config_values
from tests.harness import ROOT, stack_config, with_values

# A FIXED TEST VECTOR, produced once by this module (mailstack/stackfile.py) implementing the
# algorithm of Pulumi's Go source (PBKDF2-HMAC-SHA256, 1,000,000 iterations, AES-256-GCM, v1 format)
# with salt bytes 0..7 and nonces 0..11 / 12..23. No Pulumi CLI is available where this was written,
# so it is NOT a vector produced by Pulumi itself: it pins this implementation against silent change
# (key derivation, nonce/ciphertext layout, base64), and the key is cross-checked with hashlib below.
VECTOR_PASSPHRASE = "correct horse battery staple"
VECTOR_SALT_STATE = "v1:AAECAwQFBgc=:v1:AAECAwQFBgcICQoL:/DRVO+dNzDhZgIGzjuL2z4UYQZq3Xg=="
VECTOR_KEY_HEX = "dae8f6c1223ee25f8b4cffdebf5e8d9ceaa24c9948753b7bdcc277e2ea09278d"
VECTOR_PLAINTEXT = "xsmtpsib-brevo-smtp-key"
VECTOR_SECURE = "v1:DA0ODxAREhMUFRYX:TzhimPpiAhj/tTJyaB/mxK7PejN7ibt08zVV4PX5vgbw13InF09A"


# Produced by Pulumi itself: the encryptionsalt in pulumi/pulumi's own passphrase secrets-manager
# tests (pkg/secrets/passphrase/manager_test.go), where "password" opens it and "password123" does
# not. Opening it exercises the whole check path against real Pulumi output: PBKDF2 parameters, the
# v1 layout, AES-256-GCM and the encrypted "pulumi" check value.
PULUMI_UPSTREAM_SALT_STATE = "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ=="


def test_opens_an_encryptionsalt_written_by_pulumi_itself() -> None:
    crypter = crypter_from_encryption_salt("password", PULUMI_UPSTREAM_SALT_STATE)
    assert crypter.decrypt(PULUMI_UPSTREAM_SALT_STATE.split(":", 2)[2]) == "pulumi"
    with pytest.raises(IncorrectPassphraseError):
        crypter_from_encryption_salt("password123", PULUMI_UPSTREAM_SALT_STATE)


def test_fixed_vector_key_matches_an_independent_pbkdf2() -> None:
    """The key is PBKDF2-HMAC-SHA256(passphrase, salt, 1e6, 32), computed here by hashlib instead of cryptography."""
    expected = hashlib.pbkdf2_hmac("sha256", VECTOR_PASSPHRASE.encode(), bytes(range(8)), 1_000_000, 32)
    assert expected.hex() == VECTOR_KEY_HEX
    assert derive_key(VECTOR_PASSPHRASE, bytes(range(8))) == expected


def test_fixed_vector_decrypts_and_reencrypts_identically() -> None:
    crypter = crypter_from_encryption_salt(VECTOR_PASSPHRASE, VECTOR_SALT_STATE)
    assert crypter.decrypt(VECTOR_SECURE) == VECTOR_PLAINTEXT
    assert crypter.encrypt(VECTOR_PLAINTEXT, nonce=bytes(range(12, 24))) == VECTOR_SECURE
    state, _ = new_encryption_salt(VECTOR_PASSPHRASE, salt=bytes(range(8)), nonce=bytes(range(12)))
    assert state == VECTOR_SALT_STATE


def test_wrong_passphrase_is_refused_by_the_encryptionsalt_check() -> None:
    with pytest.raises(IncorrectPassphraseError, match="incorrect passphrase"):
        crypter_from_encryption_salt("not the passphrase", VECTOR_SALT_STATE)


def test_tampered_ciphertext_fails_authentication() -> None:
    crypter = crypter_from_encryption_salt(VECTOR_PASSPHRASE, VECTOR_SALT_STATE)
    tampered = VECTOR_SECURE[:-6] + ("A" if VECTOR_SECURE[-6] != "A" else "B") + VECTOR_SECURE[-5:]
    with pytest.raises(IncorrectPassphraseError):
        crypter.decrypt(tampered)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("v2:AAAA:AAAA", "not of the form"),
        ("v1:AAAA", "not of the form"),
        ("v1:AAAA:AAAA", "nonce of the wrong size"),
        ("v1:!!!:AAAA", "not valid base64"),
    ],
)
def test_malformed_secure_values(value: str, message: str) -> None:
    crypter = crypter_from_encryption_salt(VECTOR_PASSPHRASE, VECTOR_SALT_STATE)
    with pytest.raises(StackFileError, match=message):
        crypter.decrypt(value)


def test_random_nonces_differ_and_round_trip() -> None:
    crypter = crypter_from_encryption_salt(VECTOR_PASSPHRASE, VECTOR_SALT_STATE)
    first, second = crypter.encrypt("s3cret"), crypter.encrypt("s3cret")
    assert first != second
    assert crypter.decrypt(first) == crypter.decrypt(second) == "s3cret"


@pytest.mark.parametrize(
    ("environ", "file_text", "expected"),
    [
        ({}, None, None),
        ({"PULUMI_CONFIG_PASSPHRASE": "from env"}, "from file\n", "from env"),
        # Pulumi uses os.LookupEnv: a set-but-empty passphrase is a passphrase (the empty one).
        ({"PULUMI_CONFIG_PASSPHRASE": ""}, "from file\n", ""),
        ({}, "  from file\n", "from file"),
    ],
)
def test_passphrase_precedence(
    tmp_path: Path, environ: dict[str, str], file_text: str | None, expected: str | None
) -> None:
    env = dict(environ)
    if file_text is not None:
        (tmp_path / "pass").write_text(file_text)
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(tmp_path / "pass")
    assert read_passphrase(env) == expected


def test_unreadable_passphrase_file(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match=r"cannot read PULUMI_CONFIG_PASSPHRASE_FILE"):
        read_passphrase({"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "missing")})


def _project(tmp_path: Path, stack: str, document: dict[str, Any]) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return tmp_path


def _encrypted_doc(passphrase: str) -> dict[str, Any]:
    state, crypter = new_encryption_salt(passphrase)
    doc: dict[str, Any] = {
        "encryptionsalt": state,
        "config": {
            "mailstack:hostname": "mail.example.org",
            "mailstack:ports": {"submission": True},
            "mailstack:domains": {"example.org": {}},
            "mailstack:accounts": {"me@example.org": {"quota": "5G"}, "you@example.org": {}},
            "mailstack:memoryLimitMB": 1024,
        },
    }
    set_secret(doc, "mailstack:accounts", ["me@example.org", "password"], "pw one", crypter)
    set_secret(doc, "mailstack:relay", ["password"], "relay key", crypter)
    doc["config"]["mailstack:relay"]["preset"] = "brevo"
    set_secret(doc, "cloudflare:apiToken", [], "cf token", crypter)
    return doc


def test_load_stack_decrypts_nested_and_top_level_secrets(tmp_path: Path) -> None:
    project = _project(tmp_path, "t", _encrypted_doc("pp"))
    loaded = load_stack(project, "t", passphrase="pp")
    assert loaded.project == "mailstack"
    assert loaded.secret_keys == {"mailstack:accounts", "mailstack:relay", "cloudflare:apiToken"}
    assert loaded.undecrypted == ()
    assert loaded.raw["mailstack:accounts"] == {
        "me@example.org": {"quota": "5G", "password": "pw one"},
        "you@example.org": {},
    }
    assert loaded.raw["mailstack:relay"] == {"password": "relay key", "preset": "brevo"}
    assert loaded.raw["cloudflare:apiToken"] == "cf token"
    # Scalars reach the program as text, objects keep their JSON types.
    assert loaded.raw["mailstack:memoryLimitMB"] == "1024"
    assert loaded.raw["mailstack:ports"] == {"submission": True}
    # Pulumi.yaml defaults are passed for keys the stack does not set.
    assert loaded.raw["mailstack:image"] == "ghcr.io/docker-mailserver/docker-mailserver:15.1.0"
    assert loaded.raw["mailstack:aliases"] == {}


def test_load_stack_without_passphrase_leaves_placeholders(tmp_path: Path) -> None:
    project = _project(tmp_path, "t", _encrypted_doc("pp"))
    loaded = load_stack(project, "t", passphrase=None)
    assert loaded.undecrypted == (
        'mailstack:accounts["me@example.org"].password',
        "mailstack:relay.password",
        "cloudflare:apiToken",
    )
    assert loaded.secret_keys == {"mailstack:accounts", "mailstack:relay", "cloudflare:apiToken"}
    password = loaded.raw["mailstack:accounts"]["me@example.org"]["password"]  # type: ignore[index]
    assert password.startswith(PLACEHOLDER_PREFIX)
    # Random per leaf: a deployed incomplete render never carries a published password.
    assert password != load_stack(project, "t", passphrase=None).raw["mailstack:accounts"]["me@example.org"]["password"]  # type: ignore[index]


def test_load_stack_wrong_passphrase(tmp_path: Path) -> None:
    project = _project(tmp_path, "t", _encrypted_doc("pp"))
    with pytest.raises(IncorrectPassphraseError):
        load_stack(project, "t", passphrase="nope")


def test_other_secrets_provider_is_refused_with_a_passphrase(tmp_path: Path) -> None:
    doc = _encrypted_doc("pp")
    doc["secretsprovider"] = "awskms://alias/x"
    project = _project(tmp_path, "t", doc)
    with pytest.raises(StackFileError, match="encrypted by 'awskms://alias/x'"):
        load_stack(project, "t", passphrase="pp")
    assert load_stack(project, "t", passphrase=None).undecrypted[0] == 'mailstack:accounts["me@example.org"].password'


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "cannot read"),
        ({"Pulumi.yaml": "name: [unclosed"}, "is not valid YAML"),
        ({"Pulumi.yaml": "runtime: python\n"}, "no project name"),
        ({"Pulumi.yaml": "name: p\n", "Pulumi.t.yaml": "- a list\n"}, "expected a mapping"),
    ],
)
def test_unreadable_stack_files(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(StackFileError, match=message):
        load_stack(tmp_path, "t", passphrase=None)


def test_dev_stack_loads_like_the_pulumi_program_sees_it() -> None:
    loaded = load_stack(ROOT, "dev", passphrase=None)
    assert loaded.secret_keys == frozenset()
    assert loaded.undecrypted == ()
    from_file = load_settings(loaded.raw, secret_keys=loaded.secret_keys, stack="dev", home="/h")
    from_harness = load_settings(stack_config(DEV_STACK), stack="dev", home="/h")
    assert from_file == from_harness


def test_prod_example_with_encrypted_secrets_equals_the_harness_config(tmp_path: Path) -> None:
    """The production example, with its secrets set the way its header says, loads to the same settings."""
    doc = yaml.safe_load(PROD_EXAMPLE.read_text())
    state, crypter = new_encryption_salt("prod passphrase")
    doc["encryptionsalt"] = state
    set_secret(doc, "cloudflare:apiToken", [], "cf-token-abcdef0123456789", crypter)
    set_secret(doc, "mailstack:accounts", ["me@example.com", "password"], "correct horse battery staple", crypter)
    set_secret(doc, "mailstack:accounts", ["me@another.com", "password"], "another long passphrase", crypter)
    set_secret(doc, "mailstack:relay", ["password"], "xsmtpsib-brevo-smtp-key", crypter)
    loaded = load_stack(_project(tmp_path, "prod", doc), "prod", passphrase="prod passphrase")
    assert loaded.secret_keys == set(PROD_SECRET_KEYS)
    from_file = load_settings(loaded.raw, secret_keys=loaded.secret_keys, stack="prod", home="/h")
    # The harness points the key file at a generated test key; the example names ~/.ssh/id_ed25519.
    harness_config = with_values(prod_config_values(), **{"target/privateKeyFile": "~/.ssh/id_ed25519"})
    from_harness = load_settings(harness_config, secret_keys=PROD_SECRET_KEYS, stack="prod", home="/h")
    assert from_file == from_harness
