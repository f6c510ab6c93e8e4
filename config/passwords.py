"""Account password hashes for DMS's `postfix-accounts.cf`: SHA512-CRYPT, stable across runs.

DMS documents only `{SHA512-CRYPT}` (its `setup email add` runs `doveadm pw -s SHA512-CRYPT`), and
Dovecot's passwd-file passdb reads the scheme from that prefix (reference/docker-mailserver.md §4).

A random salt would give a new file text on every `pulumi preview`, i.e. a permanent diff and a
rewrite of the accounts file on every `up`. The salt is therefore derived: HMAC-SHA256 keyed with a
per-stack secret seed (a `random.RandomBytes` kept in Pulumi state), over the address and the
password. Same stack, address and password give the same hash; a new password gives a new salt;
two accounts sharing a password get different salts; nobody without the seed can predict a salt.
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

with warnings.catch_warnings():
    # passlib 1.7.4 imports the stdlib `crypt` module, deprecated (not yet removed) in Python 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from passlib.hash import sha512_crypt

SCHEME_PREFIX = "{SHA512-CRYPT}"
ROUNDS = 5000
"""doveadm's default, and the glibc default that `$6$` without `rounds=` means. passlib's own default
(656,000) costs ~0.5 s per hash: too slow for a preview, and slow logins on a Pi."""
SALT_LENGTH = 16
"""The maximum for SHA512-CRYPT; what doveadm generates."""
CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
POOL_THRESHOLD = 128
"""From this many accounts on, hash in worker processes (measured: ~3.6 ms per hash here, and a
spawned worker costs ~0.3 s to start, so smaller sets are faster in-process). Threads do not help:
the os_crypt backend holds the GIL (measured: no speed-up with 2 threads)."""


def derive_salt(seed: bytes, address: str, password: str) -> str:
    """The crypt salt for one account: HMAC-SHA256(seed, address NUL password) in the crypt alphabet.

    Args:
        seed: the per-stack secret (at least 16 bytes).
        address: the normalised account address.
        password: the account's password.

    Returns:
        16 characters of `[./0-9A-Za-z]`. Each comes from one digest byte modulo 64; 256 is a
        multiple of 64, so every character is equally likely.

    Raises:
        ValueError: the seed is shorter than 16 bytes.
    """
    if len(seed) < 16:
        raise ValueError("the salt seed must be at least 16 bytes")
    digest = hmac.new(seed, address.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
    return "".join(CRYPT_ALPHABET[b % 64] for b in digest[:SALT_LENGTH])


def hash_password(seed: bytes, address: str, password: str) -> str:
    """`{SHA512-CRYPT}$6$<salt>$<hash>` for one account, as `doveadm pw -s SHA512-CRYPT` prints it."""
    hasher = sha512_crypt.using(salt=derive_salt(seed, address, password), rounds=ROUNDS)
    return SCHEME_PREFIX + str(hasher.hash(password))


def _hash_one(job: tuple[bytes, str, str]) -> str:
    return hash_password(*job)


def hash_passwords(seed: bytes, accounts: Sequence[tuple[str, str]], *, workers: int | None = None) -> list[str]:
    """Hash many (address, password) pairs, in order; uses worker processes for large sets.

    Args:
        seed: the per-stack secret.
        accounts: (address, password) pairs.
        workers: worker processes; None = one per CPU from `POOL_THRESHOLD` accounts on, 1 = in-process.

    Returns:
        One `{SHA512-CRYPT}` hash per pair, in the same order.
    """
    jobs = [(seed, address, password) for address, password in accounts]
    auto = (os.cpu_count() or 1) if len(jobs) >= POOL_THRESHOLD else 1
    count = workers if workers is not None else auto
    if count <= 1 or len(jobs) < 2:
        return [_hash_one(job) for job in jobs]
    # "spawn", not "fork": the Pulumi program runs gRPC threads, and forking a threaded process is
    # unsafe (gRPC's fork handlers, and Python 3.12+ warns). Workers only import this module.
    # A worker re-imports the parent's `__main__` as `__mp_main__`; under Pulumi that is the language
    # host's exec script (guarded by `if __name__ == "__main__"`), because `.apply()` callbacks run after
    # the program's top level has returned. Should a pool still fail to start, hash in-process.
    try:
        with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_hash_one, jobs, chunksize=max(1, len(jobs) // (count * 4))))
    except (BrokenProcessPool, OSError):
        return [_hash_one(job) for job in jobs]
