"""Find secret material anywhere a mock evaluation exposes it outside a secret-wrapped value.

A Pulumi secret is only protected while it travels inside a secret wrapper: the engine encrypts
those in state and masks them in previews and logs. Everything else (resource names and URNs,
plain inputs, provider state, component and stack outputs, invoke arguments, log lines, the error
text) is stored or printed in clear. This scanner looks in all of those places for

- each secret the test planted, in its plain form and in derived forms a careless program might
  produce (hex, base64, SHA-256/SHA-1/MD5 digests);
- any crypt(3) hash (`$6$…` SHA512-CRYPT as DMS stores account passwords, `$5$`, `$1$`, bcrypt)
  that verifies against a planted secret, plus every hash that sits inside a secret value;
- material the providers generate: RSA private keys (tls.PrivateKey), generated passwords and
  random bytes (pulumi-random), read from the mock provider state where they are secret-wrapped.

Base64 and hex tokens in exposed strings are decoded and scanned again, because a secret inside a
base64 file body (`content_base64`) does not show up as a substring of that body.

Used by tests/test_secret_audit.py; `python -m tools.secret_audit` audits the production example.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from passlib.hash import bcrypt, md5_crypt, sha256_crypt, sha512_crypt
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

# Provider outputs that carry generated secrets (camelCase: the wire names the mocks return).
GENERATED_SECRET_OUTPUTS: dict[str, tuple[str, ...]] = {
    "tls:index/privateKey:PrivateKey": ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"),
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
}

# crypt(3) hashes: SHA512-CRYPT is what DMS's postfix-accounts.cf holds ({SHA512-CRYPT}$6$salt$hash).
CRYPT_HASH = re.compile(
    r"\$(?:1|5|6)\$(?:rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{22,86}|\$2[abxy]\$\d\d\$[./0-9A-Za-z]{53}"
)
_CRYPT_SCHEMES = {"$1$": md5_crypt, "$5$": sha256_crypt, "$6$": sha512_crypt, "$2": bcrypt}
BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
HEX_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
# Only PEM body lines this long are distinctive enough to count as a leak on their own.
MIN_PEM_LINE = 40


@dataclass(frozen=True)
class Needle:
    """A string that must never appear outside a secret value."""

    source: str
    """Which secret it comes from (`relay password`); reports show this, never the text."""
    form: str
    """How it was derived from the secret (`plain`, `sha256 hex`, `PEM line 7`, …)."""
    text: str


@dataclass(frozen=True, order=True)
class Finding:
    """One place where one secret appeared in clear (in one or more forms)."""

    channel: str
    """`name`, `input`, `state`, `component-output`, `output`, `invoke`, `log` or `error`."""
    location: str
    """Resource URN and property path, output key, or log line number."""
    secret: str
    """Label of the secret found (the secret itself is never repeated)."""
    forms: tuple[str, ...]
    """The forms it was found in, sorted."""


class Exposure(Protocol):
    """Everything an evaluation exposes: the part of a tools.harness.RunResult the scanner reads."""

    @property
    def resources(self) -> Sequence[Any]: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...
    @property
    def component_outputs(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def logs(self) -> Sequence[str]: ...
    @property
    def calls(self) -> Sequence[Any]: ...
    @property
    def error(self) -> BaseException | None: ...


# Sentinels planted in every secret input of the production example: config path (tools.harness
# with_values form) → (label, value). Distinct values tell the report which secret leaked.
SENTINEL_PATHS: dict[str, tuple[str, str]] = {
    "accounts/me@example.com/password": ("password of me@example.com", "SnTnL-acct1-Zq7vXw3Kp9"),
    "accounts/me@another.com/password": ("password of me@another.com", "SnTnL-acct2-Rm4tYb8Hc2"),
    "relay/password": ("relay password", "SnTnL-relay-Jd6wPq1Nf5"),
    "cloudflare:apiToken": ("Cloudflare API token", "SnTnL-cftoken-Ve2sLk9Ga7"),
}
SENTINELS: dict[str, str] = dict(SENTINEL_PATHS.values())


def derived_needles(label: str, secret: str) -> list[Needle]:
    """The secret and the encodings and digests of it that a program might write by mistake."""
    raw = secret.encode()
    forms = {
        "plain": secret,
        "hex": raw.hex(),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "sha256 hex": hashlib.sha256(raw).hexdigest(),
        "sha256 base64": base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("="),
        "sha1 hex": hashlib.sha1(raw).hexdigest(),
        "md5 hex": hashlib.md5(raw).hexdigest(),
    }
    return [Needle(label, form, text) for form, text in forms.items()]


def private_key_needles(label: str, pem: str) -> list[Needle]:
    """Needles for an RSA private key that do not also match its (public) DKIM record.

    The PKCS#1 private key embeds the modulus at a 3-byte-aligned offset, exactly like the
    SubjectPublicKeyInfo that DKIM publishes, so some base64 lines of the private PEM body are
    also substrings of the public key. Those lines are dropped; the private exponent is added.
    """
    needles = [Needle(label, "PEM", pem.strip())]
    body = [line for line in pem.strip().splitlines() if line and not line.startswith("-----")]
    needles.append(Needle(label, "PEM body", "".join(body)))
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return needles
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_b64 = base64.b64encode(public_der).decode()
    for number, line in enumerate(body, 1):
        if len(line) >= MIN_PEM_LINE and line not in public_b64:
            needles.append(Needle(label, f"PEM line {number}", line))
    if isinstance(key, rsa.RSAPrivateKey):
        needles.append(Needle(label, "private exponent hex", format(key.private_numbers().d, "x")))
    return needles


def generated_needles(resources: Iterable[Any]) -> list[Needle]:
    """Generated secrets, read from the (secret-wrapped) provider state of the resources that make them."""
    needles: list[Needle] = []
    for reg in resources:
        for prop in GENERATED_SECRET_OUTPUTS.get(reg.type, ()):
            value = _unwrap(reg.state.get(prop))
            if not isinstance(value, str) or len(value) < 8:
                continue
            label = f"{reg.name}.{prop}"
            if reg.type == "tls:index/privateKey:PrivateKey" and "PRIVATE KEY" in value:
                needles.extend(private_key_needles(label, value))
            elif reg.type == "tls:index/privateKey:PrivateKey":
                needles.append(Needle(label, "plain", value.strip()))
            else:
                needles.extend(derived_needles(label, value))
    return needles


def exposed_strings(exposure: Exposure) -> Iterator[tuple[str, str, str]]:
    """(channel, location, text) for every string stored or printed in clear."""
    yield from _strings(exposure, want_secret=False)


def secret_strings(exposure: Exposure) -> Iterator[tuple[str, str, str]]:
    """(channel, location, text) for every string inside a secret wrapper."""
    yield from _strings(exposure, want_secret=True)


def audit(exposure: Exposure, secrets: Mapping[str, str]) -> list[Finding]:
    """Every place a planted or generated secret (or a hash of one) appears outside secret values.

    Args:
        exposure: an evaluation's result (tools.harness.RunResult satisfies it).
        secrets: label → planted secret value (e.g. {"relay password": "…"}).

    Returns:
        Findings, sorted and de-duplicated; empty means nothing leaked.
    """
    planted = [n for label, value in secrets.items() for n in derived_needles(label, value)]
    needles = planted + generated_needles(exposure.resources)
    # Hashes that live inside secret values (the accounts file) must not surface anywhere in clear.
    for channel, location, text in secret_strings(exposure):
        for match in CRYPT_HASH.finditer(text):
            needles.append(Needle("crypt hash inside a secret value", f"from {channel} {location}", match.group(0)))
    found: dict[tuple[str, str, str], set[str]] = {}
    for channel, location, text in exposed_strings(exposure):
        hits: list[tuple[str, str]] = [(n.source, n.form) for n in needles if n.text and n.text in text]
        for match in CRYPT_HASH.finditer(text):
            hits += [
                (label, "crypt hash") for label, value in secrets.items() if _crypt_verifies(value, match.group(0))
            ]
        for decoded in _decodings(text):
            hits += [(label, "inside an encoded token") for label, value in secrets.items() if value in decoded]
        for source, form in hits:
            found.setdefault((channel, location, source), set()).add(form)
    return sorted(Finding(c, loc, src, tuple(sorted(forms))) for (c, loc, src), forms in found.items())


def reached(exposure: Exposure, secrets: Mapping[str, str]) -> dict[str, bool]:
    """Per planted secret: does it reach some secret value (plain, or as a crypt hash that verifies)?

    An audit that finds nothing is only meaningful if the secrets actually flowed through the program.
    """
    texts = [text for _, _, text in secret_strings(exposure)]
    hashes = [m.group(0) for text in texts for m in CRYPT_HASH.finditer(text)]
    return {
        label: any(value in text for text in texts) or any(_crypt_verifies(value, h) for h in hashes)
        for label, value in secrets.items()
    }


def _unwrap(value: Any) -> Any:
    while is_rpc_secret(value):
        value = unwrap_rpc_secret(value)
    return value


def walk_strings(value: Any, *, include_keys: bool = False) -> Iterator[tuple[str, str, bool]]:
    """Every string leaf in a (possibly secret-wrapped) value: (path, text, under_a_secret).

    With `include_keys`, map keys are yielded too (as `<path>{key}`): they are stored in clear even
    inside a plain map, so the audit scans them as text.
    """

    def go(v: Any, path: str, secret: bool) -> Iterator[tuple[str, str, bool]]:
        if is_rpc_secret(v):
            yield from go(unwrap_rpc_secret(v), path, True)
        elif isinstance(v, dict):
            for key, sub in v.items():
                if include_keys:
                    yield f"{path}{{key}}", str(key), secret
                yield from go(sub, f"{path}.{key}" if path else str(key), secret)
        elif isinstance(v, (list, tuple)):
            for index, sub in enumerate(v):
                yield from go(sub, f"{path}[{index}]", secret)
        elif isinstance(v, str):
            yield path, v, secret

    yield from go(value, "", False)


def _strings(exposure: Exposure, *, want_secret: bool) -> Iterator[tuple[str, str, str]]:
    def pick(channel: str, where: str, value: Any) -> Iterator[tuple[str, str, str]]:
        for path, text, secret in walk_strings(value, include_keys=True):
            if secret == want_secret:
                yield channel, f"{where} {path}".strip(), text

    for reg in exposure.resources:
        if not want_secret:
            yield "name", reg.urn, reg.name
            yield "name", reg.urn, reg.urn
        yield from pick("input", reg.urn, reg.inputs)
        yield from pick("state", reg.urn, reg.state)
    for urn, outputs in exposure.component_outputs.items():
        yield from pick("component-output", urn, outputs)
    for key, value in exposure.outputs.items():
        yield from pick("output", key, value)
    for index, call in enumerate(exposure.calls):
        yield from pick("invoke", f"{call.token}#{index}", call.args)
    if not want_secret:
        for index, line in enumerate(exposure.logs):
            yield "log", f"line {index}", line
        if exposure.error is not None:
            yield "error", type(exposure.error).__name__, str(exposure.error)


def _crypt_verifies(secret: str, crypt_hash: str) -> bool:
    scheme = next((s for prefix, s in _CRYPT_SCHEMES.items() if crypt_hash.startswith(prefix)), None)
    if scheme is None:
        return False
    try:
        return bool(scheme.verify(secret, crypt_hash))
    except ValueError:  # malformed hash text (e.g. a mock's placeholder): it cannot hide this secret
        return False


def _decodings(text: str) -> Iterator[str]:
    """Text hidden in base64 or hex tokens of an exposed string."""
    for match in BASE64_TOKEN.finditer(text):
        token = match.group(0)
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                yield decoder(token + "=" * (-len(token) % 4)).decode("utf-8", errors="ignore")
            except (binascii.Error, ValueError):
                continue
    for match in HEX_TOKEN.finditer(text):
        yield bytes.fromhex(match.group(0)).decode("utf-8", errors="ignore")


def main() -> int:
    """Audit the production example with sentinel secrets; print the findings."""
    from tools import EXAMPLE_SSH_KEY, evaluate, example_home
    from tools.harness import stack_config, with_values
    from tools.stacks import PROD_EXAMPLE, PROD_SECRET_KEYS

    config = with_values(stack_config(PROD_EXAMPLE), **{path: value for path, (_, value) in SENTINEL_PATHS.items()})
    with example_home():
        result = evaluate(config, PROD_SECRET_KEYS, stack="prod")
    if result.error is not None:
        print(f"evaluation failed: {result.error}", file=sys.stderr)
        return 2
    secrets = {**SENTINELS, "SSH private key": EXAMPLE_SSH_KEY.splitlines()[1]}
    findings = audit(result, secrets)
    for label, ok in reached(result, secrets).items():
        print(f"{'reached' if ok else 'NOT REACHED'}: {label}")
    for finding in findings:
        print(f"LEAK {finding.channel} {finding.location}: {finding.secret} ({', '.join(finding.forms)})")
    print(f"{len(result.resources)} resources scanned, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
