"""Proof tools: change-impact classification and the secret scanner (run with `python -m tools.<name>`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

if TYPE_CHECKING:
    from tools.harness import RunResult

# The production example names `privateKeyFile: ~/.ssh/id_ed25519`, and the program reads that file
# while it runs (pulumi-command wants the key text). A fixed throw-away key keeps every evaluation
# identical; PKCS#8 PEM because OpenSSH's format embeds a random check number.
EXAMPLE_SSH_KEY = (
    Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"mailstack proofs: not a real key").digest())
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)


@contextmanager
def example_home() -> Iterator[Path]:
    """Point HOME at a temporary directory holding ~/.ssh/id_ed25519 (EXAMPLE_SSH_KEY) while evaluating."""
    previous = os.environ.get("HOME")
    with tempfile.TemporaryDirectory(prefix="mailstack-home-") as home:
        ssh = Path(home, ".ssh")
        ssh.mkdir(mode=0o700)
        key = ssh / "id_ed25519"
        key.write_text(EXAMPLE_SSH_KEY)
        key.chmod(0o600)
        os.environ["HOME"] = home
        try:
            yield Path(home)
        finally:
            if previous is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = previous


def evaluate(
    config: Mapping[str, Any],
    secret_keys: Sequence[str] = (),
    *,
    stack: str = "dev",
    program: Path | None = None,
) -> RunResult:
    """tools.harness.run_program (imported lazily: the mock runtime is for the proofs only); never raises."""
    from tools import harness

    return harness.run_program(config, list(secret_keys), stack=stack, program=program or harness.PROGRAM)
