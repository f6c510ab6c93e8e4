"""SHA512-CRYPT account hashes with a derived, stable salt (config/passwords.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mailstack.config import passwords, sha512_crypt
from mailstack.config.passwords import (
    CRYPT_ALPHABET,
    POOL_THRESHOLD,
    derive_salt,
    hash_password,
    hash_passwords,
)
from tests.harness import ROOT
from tests.tools import require


def _verifies(password: str, hashed: str) -> bool:
    """Checked by passlib's implementation, which needs no `crypt` module (gone in Python 3.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.hash import sha512_crypt as passlib_hash
    return bool(passlib_hash.verify(password, hashed))


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
    assert hashed.removeprefix("{SHA512-CRYPT}") == sha512_crypt.passlib_sha512_crypt("zisCCN/utTGWRKpy", PASSWORD)


def test_hash_is_stable_across_calls() -> None:
    assert hash_password(SEED, "me@example.com", PASSWORD) == hash_password(SEED, "me@example.com", PASSWORD)


@pytest.mark.parametrize("password", ["pässwörd ✓", "with space", "pipe|colon:", "'\"$`\\"])
def test_any_password_text_verifies(password: str) -> None:
    hashed = hash_password(SEED, "me@example.com", password).removeprefix("{SHA512-CRYPT}")
    assert _verifies(password, hashed)
    assert not _verifies(password + "x", hashed)


@pytest.mark.parametrize("password", [PASSWORD, "pässwörd ✓", "'\"$`\\"])
def test_passlib_fallback_gives_the_libc_string(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    # Python 3.13 has no `crypt` module, macOS's crypt(3) no SHA512-CRYPT: passlib then computes the
    # same scheme in pure Python. (On 3.13 both sides are passlib; the libc side runs on 3.11.)
    libc = sha512_crypt.sha512_crypt("zisCCN/utTGWRKpy", password)
    monkeypatch.setattr(sha512_crypt, "_LIBC_CRYPT", None)
    assert sha512_crypt.sha512_crypt("zisCCN/utTGWRKpy", password) == libc
    assert _verifies(password, libc)


def test_both_paths_give_the_specification_s_known_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    salt, password = sha512_crypt.KNOWN_ANSWER
    assert sha512_crypt.passlib_sha512_crypt(salt, password) == sha512_crypt.KNOWN_HASH
    assert sha512_crypt.sha512_crypt(salt, password) == sha512_crypt.KNOWN_HASH
    monkeypatch.setattr(sha512_crypt, "_LIBC_CRYPT", None)
    assert sha512_crypt.sha512_crypt(salt, password) == sha512_crypt.KNOWN_HASH


def test_a_libc_crypt_without_sha512_is_not_used() -> None:
    """macOS's crypt(3) reads `$6$…` as a DES salt ("$6") and returns 13 characters."""
    assert not sha512_crypt._is_sha512_crypt(lambda password, salt: "$6asQOJRqB1i2")
    assert not sha512_crypt._is_sha512_crypt(lambda password, salt: None)  # some libcs: NULL on unknown salts


MAC_CRYPT = """\
# Stands in for the stdlib `crypt` on macOS (Python <= 3.12): DES-style output for any salt.
def crypt(word, salt):
    salt = salt.decode() if isinstance(salt, bytes) else salt
    return salt[:2] + "asQOJRqB1i2"
"""


def _hash_with_fake_mac_libc(tmp_path: Path, jobs: list[tuple[str, str]]) -> tuple[bool, list[str]]:
    """In a fresh interpreter whose `crypt` module behaves like macOS's: (libc used?, hashes).

    passlib too sees the fake `crypt`: its self-test rejects it and it computes in pure Python
    (backend `builtin`, asserted), so no crypt(3) is involved at all.
    """
    (tmp_path / "crypt.py").write_text(MAC_CRYPT)
    code = (
        "import json, sys; from mailstack.config import sha512_crypt as s; "
        "jobs = json.loads(sys.stdin.read()); "
        "hashes = [s.sha512_crypt(a, b) for a, b in jobs]; "
        "from passlib.hash import sha512_crypt as p; "
        "print(json.dumps([s._LIBC_CRYPT is not None, p.get_backend(), hashes]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(jobs),  # passwords on stdin, never in argv
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )
    used, backend, hashes = json.loads(done.stdout)
    assert backend == "builtin"
    return bool(used), [str(h) for h in hashes]


def test_a_mac_like_libc_falls_back_to_correct_sha512_crypt(tmp_path: Path) -> None:
    used, hashes = _hash_with_fake_mac_libc(tmp_path, [("zisCCN/utTGWRKpy", PASSWORD)])
    assert used is False
    assert hashes == [hash_password(SEED, "me@example.com", PASSWORD).removeprefix("{SHA512-CRYPT}")]


@pytest.mark.integration
@pytest.mark.parametrize("password", [PASSWORD, "pässwörd ✓", "'\"$`\\", "x"])
def test_doveadm_verifies_the_non_libc_path(tmp_path: Path, password: str) -> None:
    """Dovecot itself accepts what the passlib path writes, with a macOS-like libc in the way."""
    doveadm = require("doveadm", package="dovecot-core")
    salt = derive_salt(SEED, "me@example.com", password)
    used, [hashed] = _hash_with_fake_mac_libc(tmp_path, [(salt, password)])
    assert used is False
    for candidate, verified in ((password, True), (password + "!", False)):
        done = subprocess.run(
            [doveadm, "pw", "-t", "{SHA512-CRYPT}" + hashed, "-p", candidate],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode == 0, "(verified)" in done.stdout) == (verified, verified), done.stderr


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
