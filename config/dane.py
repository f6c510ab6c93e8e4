"""DANE for inbound SMTP (RFC 7672): the TLSA records for the server's key, and how that key is kept.

The server's TLS key is mailstack's (a pulumi-tls key, so the TLSA is known before the key is used),
not one certbot makes up at each renewal. Keys come in numbered generations: the stack always holds
the key in use (generation `daneRollover`) and the next one (generation `daneRollover + 1`), and
publishes a `3 1 1` TLSA record for both. A rollover (`daneRollover` + 1) therefore switches the
server to a key whose TLSA has been published since the previous rollover, as RFC 7671 §8.1 asks
("publish the new TLSA record ... wait ... then deploy the new key"), and starts publishing the
following one. DANE needs DNSSEC on every zone involved (RFC 7672 §2.2), which mailstack turns on at
Cloudflare (components/dnssec.py).
"""

from __future__ import annotations

import hashlib
import shlex

from cryptography.hazmat.primitives import serialization

from mailstack.config.settings import MailSettings

KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
"""ECDSA P-256: certbot's own default key type since 2.0 (`--key-type ecdsa`, secp256r1), so reusing
our key never trips its key-type consistency check."""
PORT = 25
KEY_DIR = "mailstack-dane"
"""Under certbot's /etc/letsencrypt: where mailstack writes the key in use (tls.mode letsencrypt)."""
KEY_FILE = "key.pem"


def tlsa_name(hostname: str) -> str:
    """RFC 7672 §2.2.3: the TLSA records of an MX host's SMTP service."""
    return f"_{PORT}._tcp.{hostname}"


def generations(settings: MailSettings) -> tuple[int, int]:
    """(in use, next): the key generations the stack holds and publishes."""
    return settings.dane_rollover, settings.dane_rollover + 1


def spki_sha256(public_key_pem: str) -> str:
    """SHA-256 of the key's DER SubjectPublicKeyInfo: selector 1, matching type 1 (RFC 6698 §2.1.2-3)."""
    key = serialization.load_pem_public_key(public_key_pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def tlsa_text(public_key_pem: str) -> str:
    """`3 1 1 <hex>`: DANE-EE (usage 3: the server's own key, no CA involved, RFC 7672 §3.1.1),
    SPKI (selector 1: survives certificate renewals that keep the key), SHA-256 (matching type 1)."""
    return f"3 1 1 {spki_sha256(public_key_pem)}"


def key_swap_script(hostname: str, root: str) -> str:
    """Shell for the certbot container: make the certificate lineage use mailstack's key.

    When `<root>/mailstack-dane/key.pem` (written by the stack) differs from the lineage's current
    key, it is copied over the archive file `live/<host>/privkey.pem` points at, and one forced
    renewal with `--reuse-key` gets a certificate for it: certbot's reuse-key renewal takes the
    lineage's current key file (certbot/_internal/renewal.py `renew_cert`: `new_key =
    os.path.normpath(lineage.privkey)`). The renewal configuration then keeps `reuse_key = True`,
    so every later renewal keeps the key as well.
    """
    key = shlex.quote(f"{root}/{KEY_DIR}/{KEY_FILE}")
    live = shlex.quote(f"{root}/live/{hostname}/privkey.pem")
    renew = f"certbot renew -n --cert-name {shlex.quote(hostname)} --force-renewal --reuse-key"
    return (
        f"if [ -s {key} ] && [ -e {live} ] && ! cmp -s {key} {live}; then "
        f'cp {key} "$(readlink -f {live})" && {renew}; fi'
    )
