"""`python -m mailstack.render`: a stack's desired state as files, without the Pulumi CLI or any account.

Reads `Pulumi.<stack>.yaml` through the same validation as the Pulumi program (`config.load_settings`)
and writes, from the same pure builders the components use: `compose.yaml`, `mailserver.env`, DMS's
config directory, one BIND zone file per DNS zone, and `records.md`.

Values that live in Pulumi state (DKIM keys, generated passwords, the password-hash seed, the
self-signed certificate) do not exist outside it, so the first render generates them and says so: a
rendered DKIM record matches the rendered key, not the key a deployed stack holds. They are kept in
the output directory (`render-state.json`, 0600) and reused, the way `pulumi up` reuses its state:
rendering again with the same config writes byte-identical files and leaves them untouched.

Exit codes: 0 rendered; 1 the configuration has problems (all listed); 2 a file could not be read
or written (stack file, passphrase, output directory, render-state.json).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import json
import os
import secrets
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mailstack import compose
from mailstack.cli import print_error
from mailstack.config import ConfigError, MailSettings, containers, dms_files, load_settings
from mailstack.config.checks import CF_TOKEN_KEY
from mailstack.config.containers import SelfSignedCertSpec
from mailstack.config.passwords import GENERATED_PASSWORD_LENGTH, PASSWORD_ALPHABET, SEED_BYTES, hash_passwords
from mailstack.config.records import RecordSpec, dkim_selectors, mail_records
from mailstack.config.worker import Document, documents
from mailstack.config.zonefile import PUBLISHERS, render_zone_files
from mailstack.stackfile import (
    PLACEHOLDER_PREFIX,
    StackConfig,
    StackFileError,
    load_stack,
    read_passphrase,
)

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_IO = 2

MARKER = ".mailstack-render"
MARKER_HEADER = "# written by `python -m mailstack.render`; the next render replaces the files listed here\n"


# The line above is the marker's header; the marker marks a directory as render output, so a second
# render may update it, and lists the files the render wrote, so exactly those may be removed later.
CONFIG_DIR = containers.CONFIG_SUBDIR
"""DMS's config volume, relative to the output directory as to `target.dataDir` (mounted at /tmp/docker-mailserver)."""
ZONES_DIR = "zones"
GENERATED_PASSWORDS = "generated-passwords.txt"
STATE_FILE = "render-state.json"
"""What a deployed stack keeps in Pulumi state (DKIM keys, generated passwords, hash seed, self-signed
certificate), kept here (0600) so the next render reuses it."""
STATE_VERSION = 1
MOUNTED_DIRS = frozenset({CONFIG_DIR, containers.CERTBOT_SECRETS_SUBDIR, containers.LETSENCRYPT_SUBDIR})
"""Directories a container bind-mounts (relative to the data dir): never removed or recreated, since a
running container would keep the deleted directory (DMS's change detector then fails with
`check-for-changes.sh.lock: No such file or directory` until a restart)."""
DIR_MODE = 0o755
"""As the stack's file writer (components/host_target.py) makes them: services that run as their own
user must traverse the tree. DMS v15.1.0 chowns only `rspamd/dkim/` to `_rspamd`
(target/scripts/startup/setup-stack.sh:101-105) and makes only the config root traversable
(`chmod +x /tmp/docker-mailserver`, ibid. 107-111); with `rspamd/` at 0700 Rspamd logs `cannot load
dkim key … Permission denied` and mail goes out unsigned."""

KeyId = tuple[str, str]
"""(domain, selector)."""


@dataclass(frozen=True)
class SelfSignedCert:
    key_pem: str = field(repr=False)
    """PKCS#1 PEM, as pulumi-tls's `private_key_pem`."""
    cert_pem: str


@dataclass(frozen=True)
class StackState:
    """Values a deployed stack keeps in Pulumi state; a render generates them (or a test injects them)."""

    dkim_private_keys: Mapping[KeyId, str]
    """PKCS#1 PEM per (domain, selector), active and retired, as pulumi-tls's `private_key_pem`."""
    passwords: Mapping[str, str] = field(repr=False)
    """address → password for every account whose config sets none."""
    password_seed: bytes = field(repr=False)
    """The per-stack secret that derives the SHA512-CRYPT salts (config/passwords.py)."""
    self_signed: SelfSignedCert | None = None
    """The certificate of `tls.mode: self-signed` (required then, unused otherwise)."""


@dataclass(frozen=True)
class OutputFile:
    path: str
    """Relative to the output directory, `/`-separated."""
    text: str = field(repr=False)
    secret: bool = False
    """Written 0600: private keys, password hashes, credentials."""
    incomplete: str | None = None
    """Why the text is not what the stack would deploy (a secret that could not be decrypted)."""
    needs: tuple[str, ...] = ()
    """The config paths of the undecrypted secrets behind `incomplete`."""


@dataclass(frozen=True)
class Rendering:
    files: tuple[OutputFile, ...]
    generated: tuple[str, ...]
    """What this render generated instead of reading it from Pulumi state (one line each, no secrets)."""

    @property
    def incomplete(self) -> tuple[OutputFile, ...]:
        return tuple(f for f in self.files if f.incomplete)


def new_rsa_key(bits: int) -> str:
    """An RSA private key as PKCS#1 PEM, the format pulumi-tls's `private_key_pem` has."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def public_key_pem(private_pem: str) -> str:
    """SubjectPublicKeyInfo PEM of a private key, as pulumi-tls's `public_key_pem`."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def self_signed_cert(spec: SelfSignedCertSpec, key_pem: str, *, now: datetime.datetime | None = None) -> str:
    """A self-signed certificate (PEM) with the spec's name, validity and uses.

    A stand-in for the stack's pulumi-tls certificate, which exists only in Pulumi state; the
    extensions beyond those in the spec are not claimed to match pulumi-tls's byte for byte.

    Raises:
        ValueError: the spec names a use this function does not map.
    """
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)  # spec.key_algorithm is RSA
    start = now or datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)])
    uses = set(spec.allowed_uses)
    unknown = uses - {"key_encipherment", "digital_signature", "server_auth"}
    if unknown:
        raise ValueError(f"allowed uses not rendered: {', '.join(sorted(unknown))}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(hours=spec.validity_hours))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in spec.dns_names]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature="digital_signature" in uses,
                content_commitment=False,
                key_encipherment="key_encipherment" in uses,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if "server_auth" in uses:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def fresh_state(
    settings: MailSettings,
    *,
    new_key: Callable[[int], str] = new_rsa_key,
    previous: StackState | None = None,
) -> StackState:
    """What Pulumi state would hold: DKIM keys, passwords, the hash seed, the self-signed certificate.

    Each value is taken from `previous` (an earlier render's `render-state.json`) when it still fits
    the settings, as Pulumi keeps a resource whose inputs did not change: a DKIM key of the same size,
    the password of an account that still has none in its config, the seed, a certificate for the
    same names and key size that has not expired. Everything else is generated.
    """
    old = previous or StackState({}, {}, b"")
    keys = {}
    for domain in settings.domains:
        for selector in dkim_selectors(domain):
            kept = old.dkim_private_keys.get((domain.name, selector))
            fits = kept is not None and _rsa_bits(kept) == domain.dkim.bits
            keys[(domain.name, selector)] = kept if kept is not None and fits else new_key(domain.dkim.bits)
    passwords = {
        a.address: old.passwords.get(a.address) or _new_password() for a in settings.accounts if a.password is None
    }
    seed = old.password_seed if len(old.password_seed) == SEED_BYTES else secrets.token_bytes(SEED_BYTES)
    self_signed = None
    cert_spec = containers.self_signed_cert_spec(settings)
    if cert_spec is not None:
        self_signed = old.self_signed if _cert_fits(old.self_signed, cert_spec) else None
        if self_signed is None:
            key_pem = new_key(cert_spec.rsa_bits)
            self_signed = SelfSignedCert(key_pem, self_signed_cert(cert_spec, key_pem))
    return StackState(keys, passwords, seed, self_signed)


def _rsa_bits(private_pem: str) -> int | None:
    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except ValueError:
        return None
    return key.key_size if isinstance(key, rsa.RSAPrivateKey) else None


def _cert_fits(cert: SelfSignedCert | None, spec: SelfSignedCertSpec) -> bool:
    if cert is None or _rsa_bits(cert.key_pem) != spec.rsa_bits:
        return False
    try:
        parsed = x509.load_pem_x509_certificate(cert.cert_pem.encode())
        names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return (
        names.get_values_for_type(x509.DNSName) == list(spec.dns_names)
        and parsed.public_key() == serialization.load_pem_private_key(cert.key_pem.encode(), None).public_key()
        and parsed.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
    )


class StateFileError(OSError):
    """render-state.json exists but cannot be used (unreadable, not a render's, malformed)."""


def state_text(state: StackState) -> str:
    """`render-state.json`: the state as sorted JSON, so the same state gives the same bytes."""
    document = {
        "comment": "Secrets generated by `mailstack render`, reused by the next render (as Pulumi state is). "
        "Keep it private (0600); delete it to generate new DKIM keys, passwords and certificate.",
        "version": STATE_VERSION,
        "passwordSeed": base64.b64encode(state.password_seed).decode(),
        "dkimPrivateKeys": {f"{domain}/{selector}": pem for (domain, selector), pem in state.dkim_private_keys.items()},
        "generatedPasswords": dict(state.passwords),
        "selfSigned": None
        if state.self_signed is None
        else {"keyPem": state.self_signed.key_pem, "certPem": state.self_signed.cert_pem},
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def read_state(out: Path) -> StackState | None:
    """The state an earlier render left in `out`; None when there is none.

    Raises:
        StateFileError: the file exists but cannot be read or is not a render's state. Nothing is
            regenerated silently then: new DKIM keys would no longer match the published records.
    """
    path = out / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateFileError(f"cannot read {path}: {err.strerror}") from None
    try:
        return read_state_text(text)
    except ValueError as err:
        raise StateFileError(
            f"{path} is not a render state ({err}); restore it, or delete it to generate new secrets "
            "(new DKIM keys must then be published again)"
        ) from None


def read_state_text(text: str) -> StackState:
    """Parse `state_text`'s output.

    Raises:
        ValueError: not a render state of this version.
    """
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise ValueError(f"not version {STATE_VERSION}")
        keys = {}
        for key_id, pem in doc["dkimPrivateKeys"].items():
            domain, selector = key_id.split("/")
            keys[(domain, selector)] = str(pem)
        passwords = {str(k): str(v) for k, v in doc["generatedPasswords"].items()}
        seed = base64.b64decode(doc["passwordSeed"], validate=True)
        cert = doc["selfSigned"]
        self_signed = None if cert is None else SelfSignedCert(str(cert["keyPem"]), str(cert["certPem"]))
    except (KeyError, TypeError, AttributeError, binascii.Error) as err:
        raise ValueError(f"{type(err).__name__}: {err}") from None
    return StackState(keys, passwords, seed, self_signed)


def _new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(GENERATED_PASSWORD_LENGTH))


def render_stack(
    settings: MailSettings,
    state: StackState,
    *,
    undecrypted: Sequence[str] = (),
    cloudflare_token: str | None = None,
    placeholders: Mapping[str, str] | None = None,
    reused: StackState | None = None,
) -> Rendering:
    """Every output file of a stack (pure apart from what `state` carries).

    Args:
        settings: the validated settings.
        state: DKIM keys, generated passwords, the hash seed and the self-signed certificate.
        undecrypted: config paths whose secret was replaced by a placeholder (no passphrase).
        cloudflare_token: the stack's `cloudflare:apiToken`, for certbot's DNS-01 credentials.
        placeholders: config path → its placeholder (`StackConfig.placeholders`), so each incomplete
            file names only the secrets it contains; None names every undecrypted path.
        reused: the earlier render's state, to say which values were kept rather than generated.

    Raises:
        ValueError: the settings need a value that `state` or `cloudflare_token` does not carry.
    """
    files: list[OutputFile] = []
    config_files, fingerprint = _dms_config_files(settings, state)
    files += config_files
    files += _tls_files(settings, state, cloudflare_token)
    mail = containers.mail_container(settings, signer_fingerprint=fingerprint)
    files.append(OutputFile(compose.ENV_FILE, compose.env_file_text(mail.env)))
    files.append(_compose_file(settings, fingerprint))
    records = mail_records(settings, {key_id: public_key_pem(pem) for key_id, pem in state.dkim_private_keys.items()})
    for zone, text in render_zone_files(records, stack=settings.stack, provider=settings.zone_providers).items():
        files.append(OutputFile(f"{ZONES_DIR}/{zone}.zone", text))
    web = documents(settings)
    files += [OutputFile(web_file(doc), doc.body) for doc in web]
    files.append(OutputFile("records.md", records_markdown(settings, records) + web_markdown(settings, web)))
    if state.passwords:
        files.append(OutputFile(GENERATED_PASSWORDS, _generated_passwords_text(state.passwords), secret=True))
    files.append(OutputFile(STATE_FILE, state_text(state), secret=True))
    files = [_mark_incomplete(f, settings, undecrypted, placeholders) for f in files]
    return Rendering(tuple(files), _generated_notes(state, reused))


def _tls_files(settings: MailSettings, state: StackState, cloudflare_token: str | None) -> list[OutputFile]:
    """The self-signed certificate and key in the config dir, or certbot's Cloudflare credentials."""
    out = []
    cert_spec = containers.self_signed_cert_spec(settings)
    if cert_spec is not None:
        if state.self_signed is None:
            raise ValueError("tls.mode self-signed: the state carries no certificate")
        out.append(OutputFile(f"{CONFIG_DIR}/{cert_spec.key_file}", state.self_signed.key_pem, secret=True))
        out.append(OutputFile(f"{CONFIG_DIR}/{cert_spec.cert_file}", state.self_signed.cert_pem))
    credentials = containers.cloudflare_credentials_file(settings)
    if credentials is not None:
        if cloudflare_token is None:
            raise ValueError("the dns-cloudflare challenge needs cloudflare:apiToken")
        out.append(OutputFile(credentials, containers.certbot_credentials_text(cloudflare_token), secret=True))
    return out


def _compose_file(settings: MailSettings, signer_fingerprint: str) -> OutputFile:
    header = [
        f"compose.yaml of mailstack stack '{settings.stack}', written by `python -m mailstack.render`.",
        f"Environment: {compose.ENV_FILE}. Host paths are under {settings.target.data_dir} (target.dataDir or",
        f"--data-dir); this render holds the files the stack writes there at the same relative paths ({CONFIG_DIR}/, ...).",
    ]
    document = compose.compose_document(settings, signer_fingerprint=signer_fingerprint)
    return OutputFile("compose.yaml", compose.dump(document, header=header))


def _dms_config_files(settings: MailSettings, state: StackState) -> tuple[list[OutputFile], str]:
    """DMS's config volume: accounts, aliases, quotas, relay credentials, DKIM keys and signer tables.

    Returns the files and the signer fingerprint the container's label carries.
    """
    passwords = [
        (a.address, a.password.get_secret_value() if a.password is not None else state.passwords[a.address])
        for a in settings.accounts
    ]
    hashes = hash_passwords(state.password_seed, passwords)
    out = [
        OutputFile(
            f"{CONFIG_DIR}/{dms_files.ACCOUNTS}",
            dms_files.accounts_file(zip([a for a, _ in passwords], hashes, strict=True)),
            secret=True,
        ),
        OutputFile(f"{CONFIG_DIR}/{dms_files.VIRTUAL}", dms_files.virtual_file(settings.aliases, settings.accounts)),
        OutputFile(f"{CONFIG_DIR}/{dms_files.QUOTAS}", dms_files.quotas_file(settings.accounts)),
    ]
    out += [
        OutputFile(f"{CONFIG_DIR}/{path}", text)
        for path, text in dms_files.inbound_files(settings.profile, settings.spf_fail).items()
    ]
    if settings.relay is not None:
        out.append(
            OutputFile(
                f"{CONFIG_DIR}/{dms_files.SASL_PASSWORDS}", dms_files.sasl_password_file(settings.relay), secret=True
            )
        )
    # Only active selectors sign (and are installed); retired ones are published in DNS only.
    signers = [dms_files.DkimSigner(d.name, d.dkim.selector, d.dkim.bits) for d in settings.domains]
    public_keys: dict[str, str] = {}
    for signer in signers:
        path = dms_files.key_path(settings.profile, signer)
        private = state.dkim_private_keys[(signer.domain, signer.selector)]
        out.append(OutputFile(f"{CONFIG_DIR}/{path}", private, secret=True))
        public_keys[path] = public_key_pem(private)
    signer_texts = dms_files.signer_files(settings.profile, signers)
    for path, text in signer_texts.items():
        out.append(OutputFile(f"{CONFIG_DIR}/{path}", text))
    return out, dms_files.signer_fingerprint(signer_texts, public_keys)


def records_markdown(settings: MailSettings, records: Sequence[RecordSpec]) -> str:
    """`records.md`: one table per zone, every record with its purpose.

    Who publishes a zone follows that zone's backend (`domains.<d>.dns.provider`, else `dns.provider`):
    when the zones of the stack live at different hosts, each zone's section says where.
    """
    providers = settings.zone_providers
    used = {providers.get(r.zone, settings.dns_provider) for r in records}
    where = (
        _publisher(next(iter(used))) if len(used) == 1 else "Each zone's section says where its records are published."
    )
    lines = [
        f"# DNS records of stack `{settings.stack}`",
        "",
        f"{where} TXT contents are shown as one text; zone files split them into 255-byte strings.",
        "The DKIM keys of this render were generated by it: a deployed stack publishes its own keys "
        "(`pulumi stack output dkimRecords`).",
        "",
    ]
    zones: dict[str, list[RecordSpec]] = {}
    for record in records:
        zones.setdefault(record.zone, []).append(record)
    for zone, zone_records in zones.items():
        lines += [f"## {zone}", ""]
        if len(used) > 1:
            lines += [_publisher(providers.get(zone, settings.dns_provider), zone), ""]
        lines += [
            "| Name | Type | Priority | TTL | Content | Purpose |",
            "|---|---|---|---|---|---|",
        ]
        for r in zone_records:
            priority = "" if r.priority is None else str(r.priority)
            lines.append(
                f"| {_cell(r.name)} | {r.type} | {priority} | {r.ttl} | `{_cell(r.content)}` | {_cell(r.purpose)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _publisher(provider: str, zone: str | None = None) -> str:
    if provider in PUBLISHERS:
        return f"The stack publishes these records at {PUBLISHERS[provider]}."
    if zone is None:
        return f"Publish these records at your DNS host, or import the zone files in `{ZONES_DIR}/`."
    return f"Publish these records at your DNS host, or import `{ZONES_DIR}/{zone}.zone`."


WEB_DIR = "web"


def web_file(doc: Document) -> str:
    """Where `render` writes a web document: `web/<host><path>`."""
    return f"{WEB_DIR}/{doc.host}{doc.path}"


def web_markdown(settings: MailSettings, docs: Sequence[Document]) -> str:
    """The records.md section on the HTTPS documents: who serves each, and how yours must be served."""
    if not docs:
        return ""
    hosted = {d.name for d in settings.domains if d.hosts_web}

    def served_by_worker(doc: Document) -> bool:
        return doc.host.partition(".")[2] in hosted

    where = []
    if any(served_by_worker(doc) for doc in docs):
        where += [
            'Documents marked "Worker": mailstack\'s Cloudflare Worker serves them on Worker custom domains;',
            f"Cloudflare creates their DNS records and certificates. The files in `{WEB_DIR}/` are copies.",
        ]
    if not all(served_by_worker(doc) for doc in docs):
        where += [
            'Documents marked "you": nothing of mailstack\'s can serve them (their zone is not at Cloudflare). Put',
            f"each file of `{WEB_DIR}/` on a web server at its URL, over HTTPS with a certificate valid for its host",
            "name, with its Content-Type, and without redirects (RFC 8461 §3.3: senders follow none for the",
            "MTA-STS policy). Each host name needs an A/AAAA (or CNAME) record at your DNS host pointing at that",
            "web server. Outlook POSTs to the autodiscover URL: the server must answer POST with the file (a",
            "static server often refuses POST with 405). Run `mailstack verify` afterwards: it fetches every URL.",
        ]
    lines = [
        "",
        "## Web documents",
        "",
        *where,
        "",
        "| URL | File | Content-Type | Served by | Purpose |",
        "|---|---|---|---|---|",
    ]
    for doc in docs:
        by = "Worker" if served_by_worker(doc) else "you"
        lines.append(f"| {doc.url} | `{web_file(doc)}` | {doc.content_type} | {by} | {_cell(doc.purpose)} |")
    lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    # A pipe would end the Markdown table cell early.
    return text.replace("|", "\\|")


def _generated_passwords_text(passwords: Mapping[str, str]) -> str:
    lines = [
        "# Passwords generated by `mailstack.render` for accounts whose config sets none.",
        "# A deployed stack generates its own: `pulumi stack output generatedPasswords --show-secrets`.",
        *(f"{address} {password}" for address, password in sorted(passwords.items())),
    ]
    return "\n".join(lines) + "\n"


def _mark_incomplete(
    file: OutputFile, settings: MailSettings, undecrypted: Sequence[str], placeholders: Mapping[str, str] | None
) -> OutputFile:
    """Flag files whose text depends on a secret that was not decrypted, naming exactly those secrets.

    Most placeholders show up verbatim in a text; account passwords do not (only their hash does),
    so the accounts file is flagged from the settings.
    """
    if file.path == f"{CONFIG_DIR}/{dms_files.ACCOUNTS}":
        missing = [
            a.address
            for a in settings.accounts
            if a.password is not None and a.password.get_secret_value().startswith(PLACEHOLDER_PREFIX)
        ]
        if not missing:
            return file
        needs = tuple(p for p in undecrypted if p.startswith("mailstack:accounts"))
        return replace(file, incomplete=f"encrypted password of {', '.join(missing)}", needs=needs)
    if PLACEHOLDER_PREFIX not in file.text or file.path == STATE_FILE:
        return file
    if placeholders is None:
        needs = tuple(p for p in undecrypted if not p.startswith("mailstack:accounts"))
    else:
        needs = tuple(path for path, placeholder in placeholders.items() if placeholder in file.text)
    return replace(
        file, incomplete=f"placeholder for {', '.join(needs) if needs else 'an encrypted value'}", needs=needs
    )


def _generated_notes(state: StackState, reused: StackState | None) -> tuple[str, ...]:
    """One line per kind of state value: generated by this render, or kept from the last one."""
    old = reused or StackState({}, {}, b"")

    def origin(kept: bool) -> str:
        return f"kept from {STATE_FILE}" if kept else f"generated here, kept in {STATE_FILE}"

    notes = []
    for kept in (False, True):
        names = [
            f"{selector}._domainkey.{domain}"
            for (domain, selector), pem in state.dkim_private_keys.items()
            if (old.dkim_private_keys.get((domain, selector)) == pem) is kept
        ]
        if names:
            notes.append(
                f"DKIM keys ({', '.join(names)}): {origin(kept)}; a deployed stack signs with its own keys "
                "from Pulumi state"
            )
    for kept in (False, True):
        addresses = sorted(a for a, pw in state.passwords.items() if (old.passwords.get(a) == pw) is kept)
        if addresses:
            notes.append(f"passwords of {', '.join(addresses)}: {origin(kept)}, listed in {GENERATED_PASSWORDS}")
    notes.append(
        f"password-hash seed: {origin(old.password_seed == state.password_seed)}; the hashes differ from a "
        "deployed stack's"
    )
    if state.self_signed is not None:
        notes.append(
            f"self-signed certificate: {origin(old.self_signed == state.self_signed)}; a deployed stack has its "
            "own in Pulumi state"
        )
    return tuple(notes)


@dataclass(frozen=True)
class WriteResult:
    written: tuple[str, ...]
    """Files whose bytes or mode changed (or that are new), replaced by rename."""
    unchanged: tuple[str, ...]
    """Files already holding exactly these bytes and mode: not touched (same inode, same mtime)."""
    removed: tuple[str, ...]
    """Files the previous render wrote that this one no longer renders."""


def write_rendering(rendering: Rendering, out: Path) -> WriteResult:
    """Update the output directory in place: secret files 0600, others 0644, directories 0755.

    Every file is first written to a temporary file in its own directory; only when all of them are
    written are they renamed over their targets (rename is atomic within a directory), so a render
    that fails part-way (disk full, a permission) leaves the previous render exactly as it was, and
    DMS's change detector never hashes a half-written file. A file whose bytes and mode are already
    right is not touched. Existing files keep their owner: DMS chowns `rspamd/dkim/` to `_rspamd` at
    start, and a rewritten key must stay readable for Rspamd. Directories are created when missing,
    never removed or recreated where a container mounts them (`config/`, `certbot/`, `letsencrypt/`).

    The marker file lists what the render wrote; after the new files are in place, files of the
    previous render that are no longer rendered (a removed domain's key and zone) are removed, and
    nothing else (with `--data-dir` pointing here, certbot's `letsencrypt/` must never be wiped: Let's
    Encrypt allows 5 duplicate certificates a week). Any other non-empty directory is refused.

    Raises:
        OSError: the directory cannot be written, or holds something that is not a render.
    """
    previous = _previous_listing(out)
    if not out.exists():
        # The root is no mount (config/ below it is) and holds render-state.json: private.
        out.mkdir(mode=0o700, parents=True)
        os.chmod(out, 0o700)
    marker = OutputFile(MARKER, MARKER_HEADER + "".join(f"{f.path}\n" for f in rendering.files))
    staged: list[tuple[Path, Path, str]] = []
    unchanged: list[str] = []
    created: list[Path] = []
    try:
        for file in (*rendering.files, marker):
            target = out / file.path
            _ensure_dirs(out, target.parent, created)
            mode = 0o600 if file.secret else 0o644
            data = file.text.encode()
            if _holds(target, data, mode):
                unchanged.append(file.path)
                continue
            staged.append((_stage(target, data, mode), target, file.path))
    except BaseException:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
        for directory in reversed(created):
            directory.rmdir()
        raise
    # The marker goes last: until it is renamed, the old one still lists the old files.
    for tmp, target, _ in staged:
        os.replace(tmp, target)
    rendered = {f.path for f in rendering.files} | {MARKER}
    removed = [p for p in previous if p not in rendered and _remove_stale(out, p)]
    written = tuple(p for _, _, p in staged if p != MARKER)
    return WriteResult(written, tuple(p for p in unchanged if p != MARKER), tuple(removed))


def _previous_listing(out: Path) -> list[str]:
    """The files the previous render in `out` listed; [] for a missing or empty directory."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    if not any(out.iterdir()):
        return []
    if not (out / MARKER).is_file():
        raise FileExistsError(f"{out} is not empty and was not written by mailstack render; choose another --out")
    return [line for line in (out / MARKER).read_text().splitlines() if line and not line.startswith("#")]


def _ensure_dirs(out: Path, directory: Path, created: list[Path]) -> None:
    """Create missing directories below `out` with DIR_MODE (appended to `created`); fix the mode of
    ones an older render made 0700."""
    for parent in reversed(directory.relative_to(out).parents[:-1]):
        _ensure_dir(out / parent, created)
    if directory != out:
        _ensure_dir(directory, created)


def _ensure_dir(path: Path, created: list[Path]) -> None:
    try:
        path.mkdir(mode=DIR_MODE)
        created.append(path)
    except FileExistsError:
        if not path.is_dir() or path.is_symlink():
            raise NotADirectoryError(f"{path} exists and is not a directory") from None
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)  # chmod, not recreate: a container may have it mounted


def _holds(path: Path, data: bytes, mode: int) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise IsADirectoryError(f"{path} exists and is not a regular file")
    return stat.S_IMODE(info.st_mode) == mode and info.st_size == len(data) and path.read_bytes() == data


def _stage(target: Path, data: bytes, mode: int) -> Path:
    """Write `data` to a new temporary file next to `target`, with the final mode and target's owner."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    # Created with the final mode, so a secret is never readable by others, not even for a moment;
    # fchmod then overrides the umask (which could only narrow it) so the mode is exact.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb", closefd=False) as stream:
            os.fchmod(fd, mode)
            try:
                info = target.stat()
                os.fchown(fd, info.st_uid, info.st_gid)
            except FileNotFoundError:
                pass
            except PermissionError:
                pass  # not root: the file becomes the writer's, as `chown --reference` failing does
            stream.write(data)
            stream.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _remove_stale(out: Path, relative: str) -> bool:
    """Remove a file the previous render wrote, then its directories left empty (never a mounted one)."""
    root = out.resolve()
    path = (out / relative).resolve()
    if root not in path.parents:  # a hand-edited marker must not reach outside `out`
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    for parent in path.parents:
        if parent == root or str(parent.relative_to(root)) in MOUNTED_DIRS:
            break
        try:
            parent.rmdir()
        except OSError:
            break
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mailstack.render",
        description="Write a stack's desired state as files (compose.yaml, mailserver.env, DMS config, zone "
        "files, records.md) without the Pulumi CLI. Secrets are decrypted with PULUMI_CONFIG_PASSPHRASE or "
        "PULUMI_CONFIG_PASSPHRASE_FILE; without either, they are placeholders and the files that need them "
        "are listed as incomplete.",
    )
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output directory (created; a previous render is updated in place, unchanged files untouched)",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=Path.cwd(),
        help="directory holding Pulumi.yaml (default: current directory)",
    )
    parser.add_argument(
        "--data-dir",
        help="host directory the compose file mounts (default: the stack's target.dataDir); e.g. the absolute "
        "path of --out, to run `docker compose up` right there",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print what was written as JSON on stdout (files, incomplete ones and the secrets behind them, "
        "where generated secrets are kept); never a secret value",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Console()
    env = os.environ if environ is None else environ
    try:
        passphrase = read_passphrase(env)
        stack = load_stack(args.project_dir, args.stack, passphrase=passphrase)
    except StackFileError as exc:
        print_error("render", str(exc))
        return EXIT_IO
    try:
        settings = load_settings(stack.raw, secret_keys=stack.secret_keys, stack=args.stack)
    except ConfigError as exc:
        print_error("render", str(exc))  # plain: rich would wrap the fix commands at 80 columns in a pipe
        return EXIT_CONFIG
    if args.data_dir:
        settings = replace(settings, target=replace(settings.target, data_dir=args.data_dir.rstrip("/")))
    token = stack.raw.get(CF_TOKEN_KEY)
    try:
        previous = read_state(args.out)
    except StateFileError as exc:
        print_error("render", str(exc))
        return EXIT_IO
    rendering = render_stack(
        settings,
        fresh_state(settings, previous=previous),
        undecrypted=stack.undecrypted,
        cloudflare_token=token if isinstance(token, str) else None,
        placeholders=stack.placeholders,
        reused=previous,
    )
    try:
        result = write_rendering(rendering, args.out)
    except OSError as exc:
        print_error("render", f"cannot write {args.out}: {exc}")
        return EXIT_IO
    if args.json:
        document = report_document(rendering, result, stack, args.out)
        document["warnings"] = [warning.render()[2:] for warning in settings.warnings]
        print(json.dumps(document, indent=2))
        return EXIT_OK
    _report(out, rendering, result, stack, args.out)
    for warning in settings.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(warning.render()[2:])}", highlight=False, soft_wrap=True)
    return EXIT_OK


def report_document(rendering: Rendering, result: WriteResult, stack: StackConfig, out: Path) -> dict[str, object]:
    """`--json`: what was written, what is incomplete and why, where generated secrets are; no secret value."""
    written = set(result.written)
    return {
        "stack": stack.stack,
        "out": str(out),
        "files": [
            {
                "path": f.path,
                "mode": "0600" if f.secret else "0644",
                "secret": f.secret,
                "status": "written" if f.path in written else "unchanged",
                "incomplete": f.incomplete,
                "needs": list(f.needs),
            }
            for f in rendering.files
        ],
        "removed": list(result.removed),
        "incomplete": {f.path: list(f.needs) for f in rendering.incomplete},
        "undecrypted": list(stack.undecrypted),
        "generatedSecrets": {
            "stateFile": STATE_FILE,
            "passwordsFile": GENERATED_PASSWORDS
            if any(f.path == GENERATED_PASSWORDS for f in rendering.files)
            else None,
            "notes": list(rendering.generated),
        },
    }


def _report(console: Console, rendering: Rendering, result: WriteResult, stack: StackConfig, out: Path) -> None:
    """What was written, what was generated here, what is incomplete; never a secret value."""
    title = (
        f"stack {stack.stack}: {len(rendering.files)} files in {out} "
        f"({len(result.written)} written, {len(result.unchanged)} unchanged, {len(result.removed)} removed)"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("mode")
    table.add_column("note")
    written = set(result.written)
    for file in rendering.files:
        note = "written" if file.path in written else "unchanged"
        if file.incomplete:
            note += f", [yellow]incomplete: {escape(file.incomplete)}[/yellow]"
        table.add_row(escape(file.path), "0600" if file.secret else "0644", note)
    console.print(table)
    for path in result.removed:
        console.print(f"removed: {escape(path)} (no longer rendered)")
    for line in rendering.generated:
        console.print(f"secrets: {escape(line)}")
    if stack.undecrypted:
        console.print(
            f"[yellow]{len(rendering.incomplete)} file(s) incomplete:[/yellow] no passphrase, so these secrets are "
            f"placeholders: {escape(', '.join(stack.undecrypted))}. Set PULUMI_CONFIG_PASSPHRASE or "
            "PULUMI_CONFIG_PASSPHRASE_FILE and render again."
        )


if __name__ == "__main__":
    sys.exit(main())
