"""Texts of the files mailstack writes into DMS's config volume (`<dataDir>/config`).

Pure functions: settings and key material in, file text out. Formats follow DMS v15.1
(DMS target/scripts/helpers/{accounts,relay}.sh, target/bin/{open-dkim,rspamd-dkim}); every file starts with a `#` header, which DMS drops
(`_get_valid_lines_from_file` skips comments) and which OpenDKIM, Rspamd (UCL) and Postfix tables
accept. The header also keeps a file non-empty: an empty command stdin is not sent at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mailstack.config.names import selector_domain_id
from mailstack.config.settings import AccountSettings, AliasSettings, RelaySettings

CONTAINER_CONFIG_DIR = "/tmp/docker-mailserver"
"""Where DMS reads its config volume ("Config Volume" in the DMS docs)."""
OPENDKIM_CONTAINER_DIR = "/etc/opendkim"
"""DMS copies `config/opendkim/*` here at start; OpenDKIM reads the KeyTable paths from here."""
HEADER = "# Managed by mailstack (Pulumi): rewritten by every `pulumi up`; edit the stack config instead.\n"

ACCOUNTS = "postfix-accounts.cf"
VIRTUAL = "postfix-virtual.cf"
QUOTAS = "dovecot-quotas.cf"
SASL_PASSWORDS = "postfix-sasl-password.cf"
OPENDKIM_KEY_TABLE = "opendkim/KeyTable"
OPENDKIM_SIGNING_TABLE = "opendkim/SigningTable"
OPENDKIM_TRUSTED_HOSTS = "opendkim/TrustedHosts"
RSPAMD_DKIM_SIGNING = "rspamd/override.d/dkim_signing.conf"
POLICYD_SPF_CONF = "postfix-policyd-spf.conf"
"""Bind-mounted over the image's policyd-spf.conf (DMS docs, best-practices/dkim_dmarc_spf.md)."""
POLICYD_SPF_CONTAINER_PATH = "/etc/postfix-policyd-spf-python/policyd-spf.conf"
BEFORE_SIEVE = "before.dovecot.sieve"
RSPAMD_FORCE_ACTIONS = "rspamd/override.d/force_actions.conf"

Profile = Literal["minimal", "standard"]


@dataclass(frozen=True)
class DkimSigner:
    """One active DKIM key: the signer installs it; retired selectors are only published in DNS."""

    domain: str
    selector: str
    bits: int

    @property
    def key_name(self) -> str:
        """The DNS name of the key record, which is also OpenDKIM's key name."""
        return f"{self.selector}._domainkey.{self.domain}"


def _grep_order(address: str) -> tuple[int, int, str]:
    """Order lines so that DMS's unanchored `grep <address>` finds the address's own line first.

    DMS v15 looks an account up with `grep "<addr>" postfix-accounts.cf` (alias dummy accounts: it
    copies the first matching line's password hash) and `grep "<addr>:" -i dovecot-quotas.cf`
    (quotas), taking the first hit (target/scripts/helpers/accounts.sh). The pattern is a regex
    matched anywhere in a line, so `me@example.com` also hits `home@example.com`, and its dots match
    any character. A line hit by another address's pattern is never shorter than that address, and
    at equal length it has fewer dots; so shortest first, then most dots first, finds every address's
    own line before any other line its pattern matches.
    """
    return (len(address), -address.count("."), address)


def accounts_file(hashes: Iterable[tuple[str, str]]) -> str:
    """`postfix-accounts.cf`: `address|{SHA512-CRYPT}$6$…` per account.

    Args:
        hashes: (address, hash) pairs, addresses normalised (DMS lowercases them anyway).
    """
    lines = [f"{address}|{hashed}\n" for address, hashed in sorted(hashes, key=lambda p: _grep_order(p[0]))]
    return HEADER + "".join(lines)


def virtual_file(aliases: Sequence[AliasSettings], accounts: Sequence[AccountSettings] = ()) -> str:
    """`postfix-virtual.cf`: `alias target[,target…]`; catch-alls (`@domain`) come last.

    Several targets are joined by commas without spaces, as DMS's `setup alias add` writes them
    (Postfix virtual(5) accepts commas and whitespace).

    Postfix resolves virtual_alias_maps before virtual_mailbox_maps, so a catch-all `@domain` would
    take the mail of every account of that domain (DMS docs, config/account-management/provisioner/
    file.md: "you will need an alias for each non-alias address of that domain"). Each such
    account gets an identity line `me@domain me@domain`, which virtual(5) finds before `@domain`
    and which Postfix does not expand further (an address that maps to itself is delivered as is).
    With ENABLE_QUOTAS, DMS turns alias lines into Dovecot "dummy" userdb entries
    (helpers/accounts.sh `_create_dovecot_alias_dummy_accounts`); for an identity line that entry
    equals the account's own, so DMS skips it ("will not be added ... twice") and no login changes.
    """
    specific = [a for a in aliases if not a.address.startswith("@")]
    catch_all = [a for a in aliases if a.address.startswith("@")]
    caught = {a.address[1:] for a in catch_all}
    identities = sorted(a.address for a in accounts if a.domain in caught)
    lines = [f"{a.address} {','.join(a.targets)}\n" for a in specific]
    if identities:
        lines.append("# accounts of catch-all domains keep their own mail (listed before the catch-all)\n")
        lines += [f"{address} {address}\n" for address in identities]
    lines += [f"{a.address} {','.join(a.targets)}\n" for a in catch_all]
    return HEADER + "".join(lines)


def quotas_file(accounts: Sequence[AccountSettings]) -> str:
    """`dovecot-quotas.cf`: `address:size` for each account with a quota (M/G binary suffixes)."""
    with_quota = sorted((a for a in accounts if a.quota), key=lambda a: _grep_order(a.address))
    return HEADER + "".join(f"{a.address}:{a.quota}\n" for a in with_quota)


def sasl_password_file(relay: RelaySettings) -> str:
    """`postfix-sasl-password.cf`: relay credentials keyed by the exact `relayhost` string.

    Postfix looks credentials up by the relayhost as written (`[host]:port`), so the key must equal
    DMS's `DEFAULT_RELAY_HOST` character for character (Postfix SASL_README, "client_sasl_enable").

    Raises:
        ValueError: the user name or password contains a line break or the user name whitespace,
            which would corrupt the table.
    """
    password = relay.password.get_secret_value()
    if any(c in password for c in "\r\n") or any(c.isspace() for c in relay.username):
        raise ValueError("the relay username/password must not contain line breaks (username: no whitespace)")
    return HEADER + f"{relay.relay_host} {relay.username}:{password}\n"


def opendkim_key_path(signer: DkimSigner) -> str:
    """Key file, relative to the config dir (DMS's `setup config dkim` layout)."""
    return f"opendkim/keys/{signer.domain}/{signer.selector}.private"


def rspamd_key_path(signer: DkimSigner) -> str:
    """Key file, relative to the config dir (the name DMS's `rspamd-dkim` gives an RSA key).

    DMS's `rsa-<bits>-<selector>-<domain>` would give two signers the same file (selector `a-b` on
    `c.com`, selector `a` on `b-c.com`), one key overwriting the other; a `-` in the selector is
    doubled (config.names.selector_domain_id), which leaves every dash-free selector's path as DMS
    names it.
    """
    return f"rspamd/dkim/rsa-{signer.bits}-{selector_domain_id(signer.selector, signer.domain)}.private.txt"


def key_path(profile: Profile, signer: DkimSigner) -> str:
    return opendkim_key_path(signer) if profile == "minimal" else rspamd_key_path(signer)


def opendkim_key_table(signers: Sequence[DkimSigner]) -> str:
    """`KeyTable`: `<selector>._domainkey.<domain> <domain>:<selector>:<key path in the container>`.

    The path is OpenDKIM's view after DMS copied the directory to /etc/opendkim, not the config
    volume path (DMS target/bin/open-dkim, target/scripts/startup/setup.d/dmarc_dkim_spf.sh).
    """
    lines = [
        f"{s.key_name} {s.domain}:{s.selector}:{OPENDKIM_CONTAINER_DIR}/keys/{s.domain}/{s.selector}.private\n"
        for s in sorted(signers, key=lambda s: s.domain)
    ]
    return HEADER + "".join(lines)


def opendkim_signing_table(signers: Sequence[DkimSigner]) -> str:
    """`SigningTable` (a `refile:` table in DMS's opendkim.conf): `*@<domain> <key name>`."""
    return HEADER + "".join(f"*@{s.domain} {s.key_name}\n" for s in sorted(signers, key=lambda s: s.domain))


def opendkim_trusted_hosts() -> str:
    """`TrustedHosts` (also InternalHosts): what DMS's `open-dkim` writes when the file is missing."""
    return HEADER + "127.0.0.1\nlocalhost\n"


def rspamd_dkim_signing(signers: Sequence[DkimSigner]) -> str:
    """`rspamd/override.d/dkim_signing.conf`: one `domain` block per signing domain.

    Options follow the file DMS's `rspamd-dkim` generates, with two deliberate choices:
    `try_fallback = false`, so a domain without a block is not signed with Rspamd's default
    `/var/lib/rspamd/dkim/…` key path (DMS issues #3343, #4484); and `check_pubkey = false`, because
    this stack publishes the DNS record from the same key and `mailstack verify` checks the match,
    while the check would silently stop signing whenever DNS lags (and always on a dev test domain).
    """
    blocks = "".join(
        f"    {s.domain} {{\n"
        f'        path = "{CONTAINER_CONFIG_DIR}/{rspamd_key_path(s)}";\n'
        f'        selector = "{s.selector}";\n'
        "    }\n"
        for s in sorted(signers, key=lambda s: s.domain)
    )
    return (
        HEADER
        + "# https://rspamd.com/doc/modules/dkim_signing.html\n"
        + "enabled = true;\n"
        + "sign_authenticated = true;\n"
        + "sign_local = true;\n"
        + "try_fallback = false;\n"
        + 'use_domain = "header";\n'
        + "use_redis = false;\n"
        + "use_esld = true;\n"
        + "allow_username_mismatch = true;\n"
        + "check_pubkey = false;\n"
        + "domain {\n"
        + blocks
        + "}\n"
    )


def signer_files(profile: Profile, signers: Sequence[DkimSigner]) -> dict[str, str]:
    """The signer's non-secret files for `profile`, by path relative to the config dir."""
    if profile == "minimal":
        return {
            OPENDKIM_KEY_TABLE: opendkim_key_table(signers),
            OPENDKIM_SIGNING_TABLE: opendkim_signing_table(signers),
            OPENDKIM_TRUSTED_HOSTS: opendkim_trusted_hosts(),
        }
    return {RSPAMD_DKIM_SIGNING: rspamd_dkim_signing(signers)}


def signer_fingerprint(files: Mapping[str, str], public_keys: Mapping[str, str]) -> str:
    """sha256 over the signer files DMS does not reload by itself, and the active PUBLIC keys.

    OpenDKIM's files are copied only at container start, and Rspamd can read a new key only after
    DMS's start-up `chown -R _rspamd` of `rspamd/dkim/` (v15.1.0 target/scripts/startup/setup-stack.sh:101-105). A
    container label carrying this value makes a new domain, selector or key replace the container.
    The public key stands in for its private key: secret material never goes into a label.

    Args:
        files: path → text of the signer's tables/config (no secrets).
        public_keys: key path → public key PEM of each installed (active) key.
    """
    digest = hashlib.sha256()
    for kind, mapping in (("file", files), ("public-key", public_keys)):
        for path in sorted(mapping):
            for part in (kind, path, mapping[path]):
                digest.update(part.encode())
                digest.update(b"\0")
    return digest.hexdigest()


# -- inbound.spfFail ---------------------------------------------------------------------------

SPF_FAIL_HEADER = "Received-SPF"


def policyd_spf_conf(spf_fail: Literal["reject", "junk"]) -> str:
    """policyd-spf.conf: Debian's file as DMS v15.1 ships it, with the `junk` choice applied.

    The image holds Debian's default (postfix-policyd-spf-python 2.9: reject on `Fail` for HELO
    and MAIL FROM) plus DMS's `Reason_Message` line (Dockerfile, "Remove invalid URL from SPF
    message"). `junk` sets both `*_reject` options to `False`, policyd-spf(1)'s "never reject,
    only prepend the Received-SPF header"; the Sieve script below then files the message.
    """
    action = "Fail" if spf_fail == "reject" else "False"
    return (
        HEADER
        + "# policyd-spf.conf(5); mounted at "
        + POLICYD_SPF_CONTAINER_PATH
        + "\n"
        + "debugLevel = 1\n"
        + "TestOnly = 1\n"
        + "\n"
        + f"HELO_reject = {action}\n"
        + f"Mail_From_reject = {action}\n"
        + "\n"
        + "PermError_reject = False\n"
        + "TempError_Defer = False\n"
        + "\n"
        + "skip_addresses = 127.0.0.0/8,::ffff:127.0.0.0/104,::1\n"
        + "Reason_Message = Message {rejectdefer} due to: {spf}.\n"
    )


def spf_junk_sieve() -> str:
    """`before.dovecot.sieve`: DMS installs it as a global Sieve script run before the user's own.

    policyd-spf prepends `Received-SPF: Fail (mailfrom) identity=mailfrom; ...` (or `(helo)`).
    Any such header counts: a sender can forge one, but forging `Fail` only junks its own
    mail, while a forged `Pass` cannot hide the real `Fail` header policyd-spf adds on top.
    "Junk" is the folder DMS's dovecot 15-mailboxes.conf creates with the \\Junk special use (the
    folder its spam_to_junk.sieve files into); `:create` covers a mailbox deleted by the user.
    """
    return (
        HEADER
        + 'require ["fileinto", "mailbox"];\n'
        + "\n"
        + "# inbound.spfFail junk: mail failing SPF is delivered, to Junk (RFC 7208 §8.4 leaves the choice to the receiver).\n"
        + f'if header :matches "{SPF_FAIL_HEADER}" "Fail *" {{\n'
        + '    fileinto :create "Junk";\n'
        + "    stop;\n"
        + "}\n"
    )


def rspamd_force_actions(spf_fail: Literal["reject", "junk"]) -> str:
    """`rspamd/override.d/force_actions.conf`: what Rspamd does with R_SPF_FAIL (standard profile).

    DMS's Rspamd only scores an SPF fail (R_SPF_FAIL weight 4.5 in its policies_group.conf,
    reject at 11), so `reject` needs a forced action to refuse it at SMTP time like policyd-spf
    does. `junk` forces `add header`: the milter adds `X-Spam: Yes` (DMS worker-proxy.inc
    `spam_header`), and DMS's MOVE_SPAM_TO_JUNK Sieve script files it into Junk. Mail scoring a
    reject anyway stays rejected (`honor_action`).
    https://rspamd.com/doc/modules/force_actions.html
    """
    if spf_fail == "reject":
        rule = (
            "    SPF_FAIL_REJECT {\n"
            '        expression = "R_SPF_FAIL";\n'
            '        action = "reject";\n'
            '        message = "SPF check failed (inbound.spfFail reject)";\n'
            "    }\n"
        )
    else:
        rule = (
            "    SPF_FAIL_JUNK {\n"
            '        expression = "R_SPF_FAIL";\n'
            '        action = "add header";\n'
            '        honor_action = ["reject"];\n'
            "    }\n"
        )
    return HEADER + "# https://rspamd.com/doc/modules/force_actions.html\nrules {\n" + rule + "}\n"


def inbound_files(profile: Profile, spf_fail: Literal["reject", "junk"]) -> dict[str, str]:
    """Files for `inbound.spfFail`, by path relative to the config dir.

    minimal + reject is DMS's default (no file). The standard profile always has the Rspamd rule,
    which DMS's change detector copies and reloads (check-for-changes.sh `_rspamd_changes`).
    """
    if profile == "standard":
        return {RSPAMD_FORCE_ACTIONS: rspamd_force_actions(spf_fail)}
    if spf_fail == "junk":
        return {POLICYD_SPF_CONF: policyd_spf_conf(spf_fail), BEFORE_SIEVE: spf_junk_sieve()}
    return {}


def unwatched_fingerprint(files: Mapping[str, str]) -> str | None:
    """sha256 over the inbound files DMS reads only at start, or None when there are none.

    The policyd-spf.conf bind mount and before.dovecot.sieve (copied and compiled by
    setup.d/dovecot.sh `_setup_dovecot_sieve`) are not watched by DMS's change detector, so a
    container label carrying this value replaces the container when they change.
    """
    unwatched = {p: t for p, t in files.items() if p in (POLICYD_SPF_CONF, BEFORE_SIEVE)}
    if not unwatched:
        return None
    digest = hashlib.sha256()
    for path in sorted(unwatched):
        for part in (path, unwatched[path]):
            digest.update(part.encode())
            digest.update(b"\0")
    return digest.hexdigest()
