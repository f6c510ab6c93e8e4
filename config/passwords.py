"""Account password hashes for DMS's `postfix-accounts.cf`: SHA512-CRYPT, stable across runs.

DMS documents only `{SHA512-CRYPT}` (its `setup email add` runs `doveadm pw -s SHA512-CRYPT`), and
Dovecot's passwd-file passdb reads the scheme from that prefix (DMS target/bin/addmailuser,
target/dovecot/auth-passwdfile.inc).

A random salt would give a new file text on every `pulumi preview`, i.e. a permanent diff and a
rewrite of the accounts file on every `up`. The salt is therefore derived: HMAC-SHA256 keyed with a
per-stack secret seed (a `random.RandomBytes` kept in Pulumi state), over the address and the
password. Same stack, address and password give the same hash; a new password gives a new salt;
two accounts sharing a password get different salts; nobody without the seed can predict a salt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import string
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailstack.config.sha512_crypt import sha512_crypt

GENERATED_PASSWORD_LENGTH = 24
"""Letters and digits only (~143 bits): no character a mail client or shell could mangle."""
PASSWORD_ALPHABET = string.ascii_letters + string.digits
"""What `random.RandomPassword(special=False)` draws from (upper, lower, numeric), as the stack does."""
SEED_BYTES = 32
"""Length of the per-stack secret seed that derives the salts (a `random.RandomBytes`)."""
SCHEME_PREFIX = "{SHA512-CRYPT}"
SALT_LENGTH = 16
"""The maximum for SHA512-CRYPT; what doveadm generates."""
CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
POOL_THRESHOLD = 128
"""From this many accounts on, hash in worker processes (measured here: 3-5 ms per hash, and a
worker interpreter takes 0.05 s to start, so smaller sets are faster in-process). Threads do not
help: crypt(3) holds the GIL (measured: no speed-up with 2 threads)."""
_WORKER_SCRIPT = Path(__file__).with_name("sha512_crypt.py")


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
    return SCHEME_PREFIX + sha512_crypt(derive_salt(seed, address, password), password)


# A worker is a fresh interpreter running config/sha512_crypt.py. Not `multiprocessing`: its
# spawned workers re-run the parent's `__main__` (a Pulumi program or pytest), and forking a process
# with gRPC threads is unsafe.
def _crypt_in_workers(jobs: list[tuple[str, str]], count: int) -> list[str] | None:
    """crypt() the (salt, password) jobs in `count` worker processes; None if any worker failed."""
    chunks = [jobs[i::count] for i in range(count)]
    procs = [
        subprocess.Popen(
            # -I: the script's directory (config/) stays off sys.path, and PYTHON* variables are ignored.
            [sys.executable, "-I", str(_WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in chunks
    ]
    feeds = ["".join(json.dumps(job) + "\n" for job in chunk) for chunk in chunks]
    with ThreadPoolExecutor(len(procs)) as pool:  # threads only wait on pipes
        outputs = list(pool.map(lambda pf: pf[0].communicate(pf[1])[0], zip(procs, feeds, strict=True)))
    results: list[str] = [""] * len(jobs)
    for i, (proc, chunk, output) in enumerate(zip(procs, chunks, outputs, strict=True)):
        lines = output.splitlines()
        if proc.returncode != 0 or len(lines) != len(chunk):
            return None
        results[i::count] = lines
    return results


def hash_passwords(seed: bytes, accounts: Sequence[tuple[str, str]], *, workers: int | None = None) -> list[str]:
    """Hash many (address, password) pairs, in order; uses worker processes for large sets.

    Args:
        seed: the per-stack secret.
        accounts: (address, password) pairs.
        workers: worker processes; None = one per CPU from `POOL_THRESHOLD` accounts on, 1 = in-process.

    Returns:
        One `{SHA512-CRYPT}` hash per pair, in the same order (identical either way).
    """
    jobs = [(derive_salt(seed, address, password), password) for address, password in accounts]
    auto = (os.cpu_count() or 1) if len(jobs) >= POOL_THRESHOLD else 1
    count = min(workers if workers is not None else auto, len(jobs))
    crypted = _crypt_in_workers(jobs, count) if count > 1 else None
    if crypted is None:
        crypted = [sha512_crypt(salt, password) for salt, password in jobs]
    return [SCHEME_PREFIX + c for c in crypted]
