"""A deliberately leaky tiny program: proves tools.secret_audit finds a leak (tests/test_secret_audit.py).

Config `proofs:password` (secret) is always handled correctly: written to a command's stdin inside
its secret wrapper, hashed into a secret file text, and a generated RSA key stays secret while its
public half is exported. `proofs:leak` then picks one mistake to make on purpose:
`export`, `input`, `log`, `hash`, `base64`, `private-key`, or `none` (the clean control).
"""

import base64

import pulumi
import pulumi_command as command
import pulumi_tls as tls
from passlib.hash import sha512_crypt

cfg = pulumi.Config("proofs")
password = cfg.require_secret("password")
leak = cfg.get("leak") or "none"

# A fixed salt keeps the evaluation deterministic; the hash is still a proper SHA512-CRYPT.
account_line = password.apply(
    lambda p: "me@example.org|{SHA512-CRYPT}" + sha512_crypt.using(salt="proofsalt", rounds=5000).hash(p)
)
command.local.Command("accounts", create="umask 077 && cat > accounts.cf", stdin=account_line)
key = tls.PrivateKey("dkim", algorithm="RSA", rsa_bits=2048)
pulumi.export("publicKey", key.public_key_pem)

clear = pulumi.Output.unsecret(password)
if leak == "export":
    pulumi.export("password", clear)
elif leak == "input":
    command.local.Command("leaky", create=clear.apply(lambda p: f"echo {p} | passwd --stdin me"))
elif leak == "log":
    clear.apply(lambda p: pulumi.log.info(f"using password {p}"))
elif leak == "hash":
    pulumi.export("accountLine", pulumi.Output.unsecret(account_line))
elif leak == "base64":
    command.local.Command(
        "leaky", create="base64 -d > auth", stdin=clear.apply(lambda p: base64.b64encode(f"me:{p}".encode()).decode())
    )
elif leak == "private-key":
    pulumi.export("privateKey", pulumi.Output.unsecret(key.private_key_pem))
