"""Read a stack's configuration the way the Pulumi CLI hands it to the program, without the CLI.

`Pulumi.yaml` gives the project name and the defaults of declared keys; `Pulumi.<stack>.yaml` gives
the stack's values, with secrets encrypted by the passphrase secrets provider. The result is the
mapping `config.load_settings` takes (`mailstack:*` keys, objects decoded) plus the set of keys
that hold a secret.

The passphrase provider, as implemented in Pulumi's Go source (`pkg/secrets/passphrase` and
`sdk/go/common/resource/config/crypt.go`, `symmetricCrypter`):

- `encryptionsalt: v1:<base64 salt>:v1:<base64 nonce>:<base64 ciphertext>`: an 8-byte random salt,
  followed by the encryption of the string `pulumi` that proves a passphrase is the right one;
- key = PBKDF2-HMAC-SHA256(passphrase, salt, 1,000,000 iterations, 32 bytes);
- each secret is `{secure: v1:<base64 12-byte nonce>:<base64 AES-256-GCM ciphertext + tag>}`,
  with no associated data;
- the passphrase comes from `PULUMI_CONFIG_PASSPHRASE` when it is set (even empty), else from the
  file named by `PULUMI_CONFIG_PASSPHRASE_FILE`, with surrounding whitespace trimmed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from mailstack.config.errors import config_path

PBKDF2_ITERATIONS = 1_000_000
KEY_BYTES = 32
SALT_BYTES = 8
NONCE_BYTES = 12
VERSION = "v1"
CHECK_PLAINTEXT = "pulumi"
"""What the encryptionsalt's second half decrypts to under the right passphrase."""
PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE_ENV = "PULUMI_CONFIG_PASSPHRASE_FILE"
PLACEHOLDER_PREFIX = "ENCRYPTED-NOT-RENDERED-"
"""Start of the value that stands in for a secret that could not be decrypted.

Each placeholder ends in random hex, so a password hashed from it is one nobody knows: an incomplete
render that is deployed anyway does not create accounts with a published password.
"""
_SECURE = "secure"


class StackFileError(Exception):
    """A stack file that cannot be read: missing, not YAML, or its secrets cannot be opened."""


class IncorrectPassphraseError(StackFileError):
    """The passphrase does not open the stack's encryptionsalt."""


@lru_cache(maxsize=8)
def derive_key(passphrase: str, salt: bytes) -> bytes:
    """PBKDF2-HMAC-SHA256 with Pulumi's parameters.

    Cached because one million iterations take about a second, and a render (or a test run) opens the
    same stack several times.
    """
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, iterations=PBKDF2_ITERATIONS)
    return kdf.derive(passphrase.encode())


@dataclass(frozen=True)
class SymmetricCrypter:
    """AES-256-GCM with the value format of Pulumi's `symmetricCrypter`: `v1:<b64 nonce>:<b64 ciphertext>`."""

    key: bytes = field(repr=False)

    def encrypt(self, plaintext: str, *, nonce: bytes | None = None) -> str:
        """Encrypt one value.

        Args:
            plaintext: the secret.
            nonce: 12 bytes; only tests pass one (to build a fixed vector). A nonce must never be
                reused with the same key, so the default is a fresh random one.
        """
        nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        sealed = AESGCM(self.key).encrypt(nonce, plaintext.encode(), None)
        return f"{VERSION}:{_b64(nonce)}:{_b64(sealed)}"

    def decrypt(self, value: str) -> str:
        """Decrypt one `v1:…` value.

        Raises:
            IncorrectPassphraseError: the value does not authenticate under this key.
            StackFileError: the value is not in Pulumi's format.
        """
        parts = value.split(":")
        if len(parts) != 3 or parts[0] != VERSION:
            raise StackFileError("a secure value is not of the form v1:<nonce>:<ciphertext>")
        nonce, sealed = _unb64(parts[1]), _unb64(parts[2])
        if len(nonce) != NONCE_BYTES:
            raise StackFileError("a secure value has a nonce of the wrong size")
        try:
            return AESGCM(self.key).decrypt(nonce, sealed, None).decode()
        except InvalidTag:
            raise IncorrectPassphraseError("a secure value does not decrypt with this passphrase") from None


def crypter_from_passphrase(passphrase: str, salt: bytes) -> SymmetricCrypter:
    return SymmetricCrypter(derive_key(passphrase, salt))


def new_encryption_salt(
    passphrase: str, *, salt: bytes | None = None, nonce: bytes | None = None
) -> tuple[str, SymmetricCrypter]:
    """A new `encryptionsalt` value for a stack, and the crypter it unlocks (as `pulumi stack init` makes).

    `salt` and `nonce` are for fixed test vectors only.
    """
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    crypter = crypter_from_passphrase(passphrase, salt)
    return f"{VERSION}:{_b64(salt)}:{crypter.encrypt(CHECK_PLAINTEXT, nonce=nonce)}", crypter


def crypter_from_encryption_salt(passphrase: str, state: str) -> SymmetricCrypter:
    """Open a stack's `encryptionsalt` with a passphrase.

    Raises:
        IncorrectPassphraseError: the passphrase is wrong.
        StackFileError: the encryptionsalt is malformed or of an unknown version.
    """
    version, _, rest = state.partition(":")
    salt_text, _, check = rest.partition(":")
    if version != VERSION or not check:
        raise StackFileError("encryptionsalt is not of the form v1:<salt>:v1:<nonce>:<ciphertext>")
    crypter = crypter_from_passphrase(passphrase, _unb64(salt_text))
    try:
        opened = crypter.decrypt(check)
    except IncorrectPassphraseError:
        opened = None
    if opened != CHECK_PLAINTEXT:
        raise IncorrectPassphraseError(
            f"incorrect passphrase: set {PASSPHRASE_ENV} (or {PASSPHRASE_FILE_ENV}) to the stack's passphrase"
        )
    return crypter


def read_passphrase(environ: Mapping[str, str]) -> str | None:
    """The passphrase from the environment, with Pulumi's precedence; None when neither is set.

    Raises:
        StackFileError: PULUMI_CONFIG_PASSPHRASE_FILE names a file that cannot be read.
    """
    if PASSPHRASE_ENV in environ:
        return environ[PASSPHRASE_ENV]
    path = environ.get(PASSPHRASE_FILE_ENV, "")
    if not path:
        return None
    try:
        return Path(path).expanduser().read_text().strip()
    except OSError as err:
        raise StackFileError(f"cannot read {PASSPHRASE_FILE_ENV} ({path}): {err.strerror}") from None


def is_secure(value: object) -> bool:
    """A `{secure: v1:…}` leaf, as Pulumi writes an encrypted value."""
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get(_SECURE), str)


@dataclass(frozen=True)
class StackConfig:
    """A stack's configuration as the program would receive it."""

    project: str
    stack: str
    raw: dict[str, object]
    """`namespace:key` → value: strings for scalars (as Pulumi passes them), decoded objects otherwise."""
    secret_keys: frozenset[str]
    """Top-level keys holding at least one secure value (Pulumi marks the whole key secret)."""
    undecrypted: tuple[str, ...] = ()
    """Config paths (`mailstack:relay.password`) whose value is a placeholder: no passphrase was given."""
    placeholders: Mapping[str, str] = field(default_factory=dict)
    """Config path → the placeholder standing in for it, so a file can name exactly the secrets it lacks."""


def load_stack(project_dir: Path, stack: str, *, passphrase: str | None) -> StackConfig:
    """Read `Pulumi.yaml` and `Pulumi.<stack>.yaml` from a project directory.

    Args:
        project_dir: the directory holding Pulumi.yaml.
        stack: the stack name.
        passphrase: the stack's passphrase; None leaves each secret as a placeholder (listed in
            `undecrypted`).

    Raises:
        StackFileError: a file is missing or malformed, the passphrase is wrong, or the stack uses
            a secrets provider other than the passphrase one.
    """
    project_doc = _read_yaml(project_dir / "Pulumi.yaml")
    project = project_doc.get("name")
    if not isinstance(project, str) or not project:
        raise StackFileError(f"{project_dir / 'Pulumi.yaml'}: no project name")
    stack_path = project_dir / f"Pulumi.{stack}.yaml"
    stack_doc = _read_yaml(stack_path)

    raw: dict[str, object] = {}
    # Declared keys with a default reach the program even when the stack does not set them.
    for key, decl in (project_doc.get("config") or {}).items():
        full = _full_key(str(key), project)
        if isinstance(decl, Mapping) and ({"type", "default", "description", "secret", "items"} & set(decl)):
            if "default" in decl:
                raw[full] = _as_program_value(decl["default"])
        else:
            raw[full] = _as_program_value(decl)

    stack_config = stack_doc.get("config") or {}
    if not isinstance(stack_config, Mapping):
        raise StackFileError(f"{stack_path}: 'config' is not a mapping")
    crypter = _crypter_for(stack_doc, stack_config, passphrase, stack_path)
    secret_keys: set[str] = set()
    undecrypted: list[str] = []
    placeholders: dict[str, str] = {}
    for key, value in stack_config.items():
        full = _full_key(str(key), project)
        opened, found = _open(value, crypter, (full,), undecrypted, placeholders)
        if found:
            secret_keys.add(full)
        raw[full] = _as_program_value(opened)
    return StackConfig(project, stack, raw, frozenset(secret_keys), tuple(undecrypted), placeholders)


def set_secret(
    document: MutableMapping[str, Any], key: str, path: Sequence[str], plaintext: str, crypter: SymmetricCrypter
) -> None:
    """Store an encrypted value in a stack document, as `pulumi config set --path --secret` does.

    Args:
        document: the parsed Pulumi.<stack>.yaml (its `config` mapping is created if absent).
        key: the top-level key, e.g. `mailstack:relay`.
        path: the nested path under it, e.g. ("password",); empty for a top-level secret.
        plaintext: the secret.
        crypter: from `new_encryption_salt` or `crypter_from_encryption_salt`.
    """
    config = document.setdefault("config", {})
    secure = {_SECURE: crypter.encrypt(plaintext)}
    if not path:
        config[key] = secure
        return
    node = config.setdefault(key, {})
    for segment in path[:-1]:
        node = node.setdefault(segment, {})
    node[path[-1]] = secure


def _crypter_for(
    stack_doc: Mapping[str, Any], stack_config: Mapping[str, Any], passphrase: str | None, stack_path: Path
) -> SymmetricCrypter | None:
    if passphrase is None or not _has_secure(stack_config):
        return None
    provider = stack_doc.get("secretsprovider")
    if provider not in (None, "", "passphrase") or stack_doc.get("encryptedkey"):
        raise StackFileError(
            f"{stack_path}: secrets are encrypted by '{provider or 'a cloud key'}', not a passphrase; "
            "render without a passphrase (placeholders) or decrypt with the Pulumi CLI"
        )
    state = stack_doc.get("encryptionsalt")
    if not isinstance(state, str):
        raise StackFileError(f"{stack_path}: has secure values but no encryptionsalt")
    return crypter_from_encryption_salt(passphrase, state)


def _open(
    value: object,
    crypter: SymmetricCrypter | None,
    path: tuple[str, ...],
    undecrypted: list[str],
    placeholders: dict[str, str],
) -> tuple[object, bool]:
    """Decrypt every secure leaf; returns (plain value, whether any leaf was secure)."""
    if is_secure(value):
        assert isinstance(value, Mapping)
        if crypter is None:
            undecrypted.append(_config_path(path))
            placeholder = PLACEHOLDER_PREFIX + secrets.token_hex(8)
            placeholders[_config_path(path)] = placeholder
            return placeholder, True
        return crypter.decrypt(value[_SECURE]), True
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        found = False
        for k, v in value.items():
            out[str(k)], leaf_found = _open(v, crypter, (*path, str(k)), undecrypted, placeholders)
            found |= leaf_found
        return out, found
    if isinstance(value, list):
        items = []
        found = False
        for i, v in enumerate(value):
            item, leaf_found = _open(v, crypter, (*path, str(i)), undecrypted, placeholders)
            items.append(item)
            found |= leaf_found
        return items, found
    return value, False


def _has_secure(value: object) -> bool:
    if is_secure(value):
        return True
    if isinstance(value, Mapping):
        return any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _as_program_value(value: object) -> object:
    """Pulumi passes scalars to the program as their text (`true`, `1024`) and objects as JSON.

    Objects are returned decoded (load_settings takes both forms); a JSON round trip normalises
    YAML-only types such as dates to what Pulumi's JSON would carry.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        decoded: object = json.loads(json.dumps(value, default=str))
        return decoded
    if value is None:
        return ""
    return str(value)


def _full_key(key: str, project: str) -> str:
    # A key without a namespace belongs to the project (Pulumi's config.ParseKey).
    return key if ":" in key else f"{project}:{key}"


def _config_path(path: tuple[str, ...]) -> str:
    """`pulumi config --path` spelling: mailstack:accounts["me@example.com"].password."""
    head, *rest = path
    return config_path(head, [int(seg) if seg.isdigit() else seg for seg in rest])


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise StackFileError(f"cannot read {path}: {err.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise StackFileError(f"{path} is not valid YAML: {err}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}: expected a mapping at the top level")
    return doc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise StackFileError("a secure value is not valid base64") from None


def environ_passphrase() -> str | None:
    """`read_passphrase` on this process's environment."""
    return read_passphrase(os.environ)
