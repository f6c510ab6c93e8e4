"""SHA512-CRYPT account hashes with a derived, stable salt (config/passwords.py)."""

from __future__ import annotations

import hashlib
import hmac
import warnings

import pytest

from config import passwords, sha512_crypt
from config.passwords import (
    CRYPT_ALPHABET,
    POOL_THRESHOLD,
    derive_salt,
    hash_password,
    hash_passwords,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # the libc crypt(3) that Dovecot's SHA512-CRYPT also uses

SEED = bytes(range(32))
PASSWORD = "correct horse battery staple"


def test_salt_is_hmac_sha256_of_address_nul_password_in_the_crypt_alphabet() -> None:
    digest = hmac.new(SEED, b"me@example.com\0" + PASSWORD.encode(), hashlib.sha256).digest()
    expected = "".join(CRYPT_ALPHABET[b % 64] for b in digest[:16])
    assert derive_salt(SEED, "me@example.com", PASSWORD) == expected == "zisCCN/utTGWRKpy"


def test_same_password_on_two_accounts_gets_two_salts() -> None:
    assert derive_salt(SEED, "me@another.com", PASSWORD) == "yA0/vRPkvLeGfH3U"
    assert derive_salt(SEED, "me@another.com", PASSWORD) != derive_salt(SEED, "me@example.com", PASSWORD)


def test_a_new_password_or_a_new_seed_changes_the_salt() -> None:
    base = derive_salt(SEED, "me@example.com", PASSWORD)
    assert derive_salt(SEED, "me@example.com", PASSWORD + "!") != base
    assert derive_salt(bytes(32), "me@example.com", PASSWORD) != base


def test_short_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        derive_salt(b"short", "me@example.com", PASSWORD)


def test_hash_is_doveadm_form_with_default_rounds() -> None:
    hashed = hash_password(SEED, "me@example.com", PASSWORD)
    assert hashed == (
        "{SHA512-CRYPT}$6$zisCCN/utTGWRKpy$I1oPt0h/Nd763Voj0Zg/0w7f9YjmWW4Tf3c1IyahRdiByJoDU4bScLI9Xs"
        ".SofvTUuBCQNRjK0lM8xeb6X2Az1"
    )
    # No `rounds=` field: 5000 is implicit in `$6$`, exactly what `doveadm pw -s SHA512-CRYPT` prints.
    assert hashed.removeprefix("{SHA512-CRYPT}") == crypt.crypt(PASSWORD, "$6$zisCCN/utTGWRKpy")


def test_hash_is_stable_across_calls() -> None:
    assert hash_password(SEED, "me@example.com", PASSWORD) == hash_password(SEED, "me@example.com", PASSWORD)


@pytest.mark.parametrize("password", ["pässwörd ✓", "with space", "pipe|colon:", "'\"$`\\"])
def test_any_password_text_verifies_with_libc_crypt(password: str) -> None:
    hashed = hash_password(SEED, "me@example.com", password).removeprefix("{SHA512-CRYPT}")
    assert crypt.crypt(password, hashed) == hashed


@pytest.mark.parametrize("password", [PASSWORD, "pässwörd ✓", "'\"$`\\"])
def test_passlib_fallback_gives_the_libc_string(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    # Python 3.13 has no `crypt` module: passlib then computes the same scheme in pure Python.
    libc = sha512_crypt.sha512_crypt("zisCCN/utTGWRKpy", password)
    monkeypatch.setattr(sha512_crypt, "_LIBC_CRYPT", None)
    assert sha512_crypt.sha512_crypt("zisCCN/utTGWRKpy", password) == libc == crypt.crypt(password, libc)


def test_worker_pool_gives_the_same_hashes_in_order() -> None:
    accounts = [(f"user{i}@example.com", f"password {i}") for i in range(6)]
    sequential = hash_passwords(SEED, accounts, workers=1)
    assert hash_passwords(SEED, accounts, workers=2) == sequential
    assert sequential == [hash_password(SEED, a, p) for a, p in accounts]


def test_a_failing_worker_falls_back_to_in_process_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = [(f"user{i}@example.com", f"password {i}") for i in range(4)]
    expected = hash_passwords(SEED, accounts, workers=1)
    monkeypatch.setattr(passwords.sys, "executable", "/bin/false")
    assert hash_passwords(SEED, accounts, workers=2) == expected


def test_small_sets_stay_in_process() -> None:
    assert POOL_THRESHOLD == 128
    assert hash_passwords(SEED, []) == []
