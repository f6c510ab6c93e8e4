"""The stacks the proofs evaluate: the dev stack file, the production example and its test secrets.

Here, not in tests/, because the proof tools (tools/change_impact.py, tools/secret_audit.py) run
them too and tools/ never imports tests/; tests/conftest.py re-exports these names.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tools.harness import ROOT, stack_config, with_values

DEV_STACK = ROOT / "Pulumi.dev.yaml"
PROD_EXAMPLE = ROOT / "examples" / "Pulumi.prod.yaml"

# The secrets a user sets with `pulumi config set --secret` for the production example.
PROD_SECRETS = {
    "accounts/me@example.com/password": "correct horse battery staple",
    "accounts/me@another.com/password": "another long passphrase",
    "relay/password": "xsmtpsib-brevo-smtp-key",
    "cloudflare:apiToken": "cf-token-abcdef0123456789",
}
PROD_SECRET_KEYS = ("mailstack:accounts", "mailstack:relay", "cloudflare:apiToken")


def ssh_key_file() -> str:
    """A throwaway ed25519 key the prod example's `target.privateKeyFile` points at in tests.

    Generated on first use (never committed: a private key in the repo, even a test one, is what
    secret scanners rightly flag).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = Path(tempfile.gettempdir()) / "mailstack-test-id_ed25519"
    if not path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        path.write_bytes(pem)
        path.chmod(0o600)
    return str(path)


def prod_config_values() -> dict[str, str]:
    return with_values(stack_config(PROD_EXAMPLE), **PROD_SECRETS, **{"target/privateKeyFile": ssh_key_file()})
