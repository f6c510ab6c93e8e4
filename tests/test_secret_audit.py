"""Secret audit: no planted or generated secret appears anywhere outside a secret-wrapped value.

The scanner (tools/secret_audit.py) looks at resource names and URNs, every registered input, the
mock provider state, component and stack outputs, invoke arguments, log lines and the error text.
It is run on the real program with a distinctive sentinel in every secret input, and on a
deliberately leaky program to prove that it can fail.
"""

from __future__ import annotations

from functools import cache

import pytest

from tests.conftest import DEV_STACK, PROD_EXAMPLE, PROD_SECRET_KEYS
from tests.harness import ROOT, RunResult, is_secret, plain, rsa_key_pem, stack_config, with_values
from tools import EXAMPLE_SSH_KEY, evaluate, example_home
from tools.secret_audit import (
    SENTINEL_PATHS,
    SENTINELS,
    Finding,
    audit,
    derived_needles,
    generated_needles,
    private_key_needles,
    reached,
)

LEAKY = ROOT / "tests" / "programs" / "proofs_leaky.py"
PLANTED = {"planted password": "SnTnL-proofs-Xy12Wq"}
STACK_URN = "urn:pulumi:dev::mailstack::pulumi:pulumi:Stack"


# The SSH private key the production example reads from ~/.ssh/id_ed25519 is a secret too; its
# base64 body line is what would show if the key text leaked.
SSH_KEY_LINE = EXAMPLE_SSH_KEY.splitlines()[1]
PROD_SECRETS = {**SENTINELS, "SSH private key": SSH_KEY_LINE}


@cache
def sentinel_prod() -> RunResult:
    config = with_values(stack_config(PROD_EXAMPLE), **{path: value for path, (_, value) in SENTINEL_PATHS.items()})
    with example_home():
        result = evaluate(config, PROD_SECRET_KEYS, stack="prod")
    assert result.error is None, result.error
    return result


@cache
def dev() -> RunResult:
    result = evaluate(stack_config(DEV_STACK), stack="dev")
    assert result.error is None, result.error
    return result


def leaky(leak: str) -> RunResult:
    result = evaluate(
        {"proofs:password": PLANTED["planted password"], "proofs:leak": leak}, ["proofs:password"], program=LEAKY
    )
    assert result.error is None, result.error
    return result


# --- The real program -----------------------------------------------------------------------------


def test_every_sentinel_reaches_a_secret_value() -> None:
    """Without this, an empty audit could just mean the secrets never entered the program."""
    assert reached(sentinel_prod(), PROD_SECRETS) == {
        "password of me@example.com": True,
        "password of me@another.com": True,
        "relay password": True,
        "Cloudflare API token": True,
        "SSH private key": True,
    }


def test_production_example_leaks_nothing() -> None:
    """Sentinels, their encodings and digests, their SHA512-CRYPT hashes and the DKIM keys stay secret."""
    result = sentinel_prod()
    needles = generated_needles(result.resources)
    # The DKIM private keys (one per domain) are among the needles, read from the PrivateKey state.
    assert sorted({n.source for n in needles if n.form == "PEM"}) == [
        "dkim-mail-another.com.privateKeyPem",
        "dkim-mail-another.com.privateKeyPemPkcs8",
        "dkim-mail-example.com.privateKeyPem",
        "dkim-mail-example.com.privateKeyPemPkcs8",
    ]
    # …and each is installed on the host through a secret value (the DKIM key file's stdin).
    keys = {r.name: plain(r.state["privateKeyPem"]) for r in result.by_type("tls:index/privateKey:PrivateKey")}
    assert reached(result, keys) == {"dkim-mail-another.com": True, "dkim-mail-example.com": True}
    assert audit(result, PROD_SECRETS) == []


def test_dane_keys_stay_secret() -> None:
    """With `dane: true` the SMTP keys (in use and next) are generated secrets too: they reach the host
    only through the key file's stdin, and nothing outside a secret value carries them."""
    config = with_values(
        stack_config(PROD_EXAMPLE), dane="true", **{path: value for path, (_, value) in SENTINEL_PATHS.items()}
    )
    with example_home():
        result = evaluate(config, PROD_SECRET_KEYS, stack="prod")
    assert result.error is None, result.error
    needles = generated_needles(result.resources)
    assert {"dane-0.privateKeyPem", "dane-1.privateKeyPem"} <= {n.source for n in needles if n.form == "PEM"}
    keys = {r.name: plain(r.state["privateKeyPem"]) for r in result.by_type("tls:index/privateKey:PrivateKey")}
    assert reached(result, {"dane-0": keys["dane-0"]}) == {"dane-0": True}
    assert audit(result, PROD_SECRETS) == []


def test_dev_stack_leaks_no_generated_secret() -> None:
    """The dev stack generates its account password and DKIM key; neither may surface in clear."""
    result = dev()
    sources = {n.source for n in generated_needles(result.resources)}
    assert "dkim-mail-example.test.privateKeyPem" in sources
    assert any(s.endswith(".result") for s in sources), sources  # the generated account password
    assert audit(result, {}) == []


def test_generated_password_is_exported_only_as_a_secret() -> None:
    result = dev()
    assert is_secret(result.outputs["generatedPasswords"])
    assert list(plain(result.outputs["generatedPasswords"])) == ["postmaster@example.test"]


# --- The scanner can fail -------------------------------------------------------------------------


def test_clean_control_program_has_no_findings() -> None:
    result = leaky("none")
    assert reached(result, PLANTED) == {"planted password": True}
    assert audit(result, PLANTED) == []


@pytest.mark.parametrize(
    ("leak", "expected"),
    [
        pytest.param("export", [Finding("output", "password", "planted password", ("plain",))], id="export"),
        pytest.param(
            "input",
            [
                Finding("input", f"{STACK_URN}$command:local:Command::leaky create", "planted password", ("plain",)),
                Finding("state", f"{STACK_URN}$command:local:Command::leaky create", "planted password", ("plain",)),
            ],
            id="input",
        ),
        pytest.param(
            "base64",
            [
                Finding(
                    channel,
                    f"{STACK_URN}$command:local:Command::leaky stdin",
                    "planted password",
                    ("base64", "base64url", "inside an encoded token"),
                )
                for channel in ("input", "state")
            ],
            id="base64-inside-a-file",
        ),
    ],
)
def test_leaks_are_found(leak: str, expected: list[Finding]) -> None:
    assert audit(leaky(leak), PLANTED) == expected


def test_leak_into_the_log_is_found() -> None:
    result = leaky("log")
    line = next(i for i, text in enumerate(result.logs) if "using password" in text)
    assert audit(result, PLANTED) == [Finding("log", f"line {line}", "planted password", ("plain",))]


def test_leaked_crypt_hash_is_found() -> None:
    """The hash is found twice: it verifies against the planted password, and it is a hash from a secret value."""
    findings = audit(leaky("hash"), PLANTED)
    accounts = f"{STACK_URN}$command:local:Command::accounts stdin"
    assert findings == [
        Finding(
            "output",
            "accountLine",
            "crypt hash inside a secret value",
            (f"from input {accounts}", f"from state {accounts}"),
        ),
        Finding("output", "accountLine", "planted password", ("crypt hash",)),
    ]


def test_leaked_private_key_is_found() -> None:
    findings = audit(leaky("private-key"), PLANTED)
    assert [(f.channel, f.location, f.secret) for f in findings] == [
        ("output", "privateKey", "dkim.privateKeyPem"),
        ("output", "privateKey", "dkim.privateKeyPemPkcs8"),
    ]
    assert "PEM" in findings[0].forms and "PEM body" not in findings[0].forms


# --- Needles --------------------------------------------------------------------------------------


def test_derived_needles() -> None:
    assert {n.form: n.text for n in derived_needles("s", "pw")} == {
        "plain": "pw",
        "hex": "7077",
        "base64": "cHc",
        "base64url": "cHc",
        "sha256 hex": "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4",
        "sha256 base64": "MMlS+rEiw/l1nwKm2Vw3WLJGtP7iOZV7LU/uRuJhcMQ",
        "sha1 hex": "1a91d62f7ca67399625a4368a6ab5d4a3baa6073",
        "md5 hex": "8fe4c11451281c094a6578e6ddbf5eed",
    }


@pytest.mark.parametrize("index", range(3))
def test_private_key_needles_never_match_the_public_key(index: int) -> None:
    """PKCS#1 and SPKI share the modulus at the same base64 alignment: such lines must not be needles."""
    private, public = rsa_key_pem(2048, index)
    public_text = public + "".join(public.splitlines()[1:-1])
    needles = private_key_needles("k", private)
    assert [n.form for n in needles if n.text in public_text] == []
    assert {"PEM", "PEM body", "private exponent hex"} <= {n.form for n in needles}
