"""`python -m mailstack.render`: a stack's desired state as files, without the Pulumi CLI or any account.

Reads `Pulumi.<stack>.yaml` through the same validation as the Pulumi program (`config.load_settings`)
and writes, from the same pure builders the components use: `compose.yaml`, `mailserver.env`, DMS's
config directory, one BIND zone file per DNS zone, and `records.md`.

Values that live in Pulumi state (DKIM keys, generated passwords, the password-hash seed, the
self-signed certificate) do not exist outside it, so a render generates fresh ones and says so: a
rendered DKIM record matches the rendered key, not the key a deployed stack holds.

Exit codes: 0 rendered; 1 the configuration has problems (all listed); 2 a file could not be read
or written (stack file, passphrase, output directory).
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
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

from config import ConfigError, MailSettings, containers, dms_files, load_settings
from config.checks import CF_TOKEN_KEY
from config.containers import SelfSignedCertSpec
from config.passwords import GENERATED_PASSWORD_LENGTH, PASSWORD_ALPHABET, SEED_BYTES, hash_passwords
from config.records import RecordSpec, dkim_selectors, mail_records
from config.zonefile import render_zone_files
from mailstack import compose
from mailstack.cli import print_error
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


def _remove_previous(out: Path) -> None:
    """Delete the files the previous render listed in its marker, then directories left empty."""
    root = out.resolve()
    for line in (out / MARKER).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        path = (out / line).resolve()
        if root not in path.parents:  # a hand-edited marker must not reach outside `out`
            continue
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == root:
                break
            try:
                parent.rmdir()
            except OSError:
                break


"""Marks a directory as render output, so a second render may replace it and nothing else is ever deleted."""
CONFIG_DIR = containers.CONFIG_SUBDIR
"""DMS's config volume, relative to the output directory as to `target.dataDir` (mounted at /tmp/docker-mailserver)."""
ZONES_DIR = "zones"
GENERATED_PASSWORDS = "generated-passwords.txt"

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


def fresh_state(settings: MailSettings, *, new_key: Callable[[int], str] = new_rsa_key) -> StackState:
    """Generate what Pulumi state would hold: DKIM keys, passwords, the hash seed, the self-signed certificate."""
    keys = {
        (domain.name, selector): new_key(domain.dkim.bits)
        for domain in settings.domains
        for selector in dkim_selectors(domain)
    }
    passwords = {a.address: _new_password() for a in settings.accounts if a.password is None}
    self_signed = None
    cert_spec = containers.self_signed_cert_spec(settings)
    if cert_spec is not None:
        key_pem = new_key(cert_spec.rsa_bits)
        self_signed = SelfSignedCert(key_pem, self_signed_cert(cert_spec, key_pem))
    return StackState(keys, passwords, secrets.token_bytes(SEED_BYTES), self_signed)


def _new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(GENERATED_PASSWORD_LENGTH))


def render_stack(
    settings: MailSettings,
    state: StackState,
    *,
    undecrypted: Sequence[str] = (),
    cloudflare_token: str | None = None,
) -> Rendering:
    """Every output file of a stack (pure apart from what `state` carries).

    Args:
        settings: the validated settings.
        state: DKIM keys, generated passwords, the hash seed and the self-signed certificate.
        undecrypted: config paths whose secret was replaced by a placeholder (no passphrase).
        cloudflare_token: the stack's `cloudflare:apiToken`, for certbot's DNS-01 credentials.

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
    for zone, text in render_zone_files(records, stack=settings.stack, provider=settings.dns_provider).items():
        files.append(OutputFile(f"{ZONES_DIR}/{zone}.zone", text))
    files.append(OutputFile("records.md", records_markdown(settings, records)))
    if state.passwords:
        files.append(OutputFile(GENERATED_PASSWORDS, _generated_passwords_text(state.passwords), secret=True))
    files = [_mark_incomplete(f, settings, undecrypted) for f in files]
    return Rendering(tuple(files), _generated_notes(settings, state))


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
    """`records.md`: one table per zone, every record with its purpose."""
    where = (
        "The stack publishes these records at Cloudflare."
        if settings.dns_provider == "cloudflare"
        else f"Publish these records at your DNS host, or import the zone files in `{ZONES_DIR}/`."
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
        lines += [
            f"## {zone}",
            "",
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


def _mark_incomplete(file: OutputFile, settings: MailSettings, undecrypted: Sequence[str]) -> OutputFile:
    """Flag files whose text depends on a secret that was not decrypted.

    Most placeholders show up verbatim in a text; account passwords do not (only their hash does),
    so the accounts file is flagged from the settings.
    """
    reasons: list[str] = []
    if file.path == f"{CONFIG_DIR}/{dms_files.ACCOUNTS}":
        missing = [
            a.address
            for a in settings.accounts
            if a.password is not None and a.password.get_secret_value().startswith(PLACEHOLDER_PREFIX)
        ]
        if missing:
            reasons.append(f"encrypted password of {', '.join(missing)}")
    elif PLACEHOLDER_PREFIX in file.text:
        paths = [p for p in undecrypted if not p.startswith("mailstack:accounts")]
        reasons.append(f"placeholder for {', '.join(paths) if paths else 'an encrypted value'}")
    if not reasons:
        return file
    return replace(file, incomplete="; ".join(reasons))


def _generated_notes(settings: MailSettings, state: StackState) -> tuple[str, ...]:
    names = ", ".join(f"{selector}._domainkey.{domain}" for domain, selector in state.dkim_private_keys)
    notes = [f"DKIM keys ({names}): generated here; a deployed stack signs with its own keys from Pulumi state"]
    if state.passwords:
        notes.append(
            f"passwords of {', '.join(sorted(state.passwords))}: generated here, written to {GENERATED_PASSWORDS}"
        )
    notes.append("password-hash seed: generated here, so the hashes differ from a deployed stack's")
    if state.self_signed is not None:
        notes.append("self-signed certificate: generated here; a deployed stack has its own in Pulumi state")
    return tuple(notes)


def write_rendering(rendering: Rendering, out: Path) -> None:
    """Write the files: directories 0700, secret files 0600, others 0644.

    The marker file lists what the previous render wrote; exactly those files are removed first, so
    files of a removed domain do not linger while anything else in the directory survives (with
    `--data-dir` pointing here, certbot's `letsencrypt/` must never be wiped: Let's Encrypt allows
    5 duplicate certificates a week). Any other non-empty directory is refused.

    Raises:
        OSError: the directory cannot be written, or holds something that is not a render.
    """
    if out.exists():
        if not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            if not (out / MARKER).is_file():
                raise FileExistsError(
                    f"{out} is not empty and was not written by mailstack render; choose another --out"
                )
            _remove_previous(out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    listing = "".join(f"{file.path}\n" for file in rendering.files)
    _write(out / MARKER, MARKER_HEADER + listing, 0o644)
    for file in rendering.files:
        target = out / file.path
        for parent in reversed(target.relative_to(out).parents[:-1]):
            directory = out / parent
            directory.mkdir(mode=0o700, exist_ok=True)
        _write(target, file.text, 0o600 if file.secret else 0o644)


def _write(path: Path, text: str, mode: int) -> None:
    # Open with the final mode so a secret is never readable by others, not even for a moment;
    # fchmod then overrides the umask (which could only narrow it) so the mode is exact.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


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
        "--out", required=True, type=Path, help="output directory (created; a previous render is replaced)"
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
    rendering = render_stack(
        settings,
        fresh_state(settings),
        undecrypted=stack.undecrypted,
        cloudflare_token=token if isinstance(token, str) else None,
    )
    try:
        write_rendering(rendering, args.out)
    except OSError as exc:
        print_error("render", f"cannot write {args.out}: {exc}")
        return EXIT_IO
    _report(out, rendering, stack, args.out)
    for warning in settings.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(warning.render()[2:])}", highlight=False, soft_wrap=True)
    return EXIT_OK


def _report(console: Console, rendering: Rendering, stack: StackConfig, out: Path) -> None:
    """What was written, what was generated here, what is incomplete; never a secret value."""
    table = Table(title=f"stack {stack.stack}: {len(rendering.files)} files in {out}", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("mode")
    table.add_column("note")
    for file in rendering.files:
        note = f"[yellow]incomplete: {escape(file.incomplete)}[/yellow]" if file.incomplete else ""
        table.add_row(escape(file.path), "0600" if file.secret else "0644", note)
    console.print(table)
    for line in rendering.generated:
        console.print(f"generated: {escape(line)}")
    if stack.undecrypted:
        console.print(
            f"[yellow]{len(rendering.incomplete)} file(s) incomplete:[/yellow] no passphrase, so these secrets are "
            f"placeholders: {escape(', '.join(stack.undecrypted))}. Set PULUMI_CONFIG_PASSPHRASE or "
            "PULUMI_CONFIG_PASSPHRASE_FILE and render again."
        )


if __name__ == "__main__":
    sys.exit(main())
