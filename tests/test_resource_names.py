"""Resource names are injective: two (domain, selector) pairs never share a name or a key file.

`f"{name}-{selector}-{domain}"` gave `dkim-a-b-c.com` for selector `a-b` on `c.com` and for selector
`a` on `b-c.com`: the engine refuses duplicate URNs, and with Rspamd both keys went to one file.
"""

from __future__ import annotations

import itertools
from typing import Any

from mailstack.config import dms_files
from mailstack.config.dms_files import DkimSigner
from mailstack.config.names import selector_domain_id
from tests.harness import ROOT, run_program, with_values

PROGRAM = ROOT / "tests" / "programs" / "server_only.py"


def _config(domains: dict[str, Any], profile: str = "minimal") -> dict[str, Any]:
    return with_values(
        {
            "mailstack:hostname": "mail.example.org",
            "mailstack:target": '{"kind": "local", "dataDir": "/srv/mailstack"}',
        },
        domains=domains,
        accounts={f"me@{d}": {} for d in domains},
        profile=profile,
    )


COLLIDING = {"c.com": {"dkim": {"selector": "a-b"}}, "b-c.com": {"dkim": {"selector": "a"}}}


def test_selector_domain_id_is_injective_and_keeps_dash_free_names() -> None:
    assert selector_domain_id("a-b", "c.com") == "a--b-c.com"
    assert selector_domain_id("a", "b-c.com") == "a-b-c.com"
    assert selector_domain_id("mail", "example.com") == "mail-example.com"  # as before
    selectors = ["a", "a-b", "a--b", "a-b-c", "b", "b-c", "a.b", "a-b.c"]
    domains = ["c.com", "b-c.com", "a-b-c.com", "b.c.com", "c-c.com", "x.a-b.com"]
    pairs = list(itertools.product(selectors, domains))
    ids = [selector_domain_id(s, d) for s, d in pairs]
    assert len(set(ids)) == len(pairs)


def test_colliding_pairs_get_distinct_keys_and_file_commands() -> None:
    result = run_program(_config(COLLIDING), program=PROGRAM)
    assert result.error is None, result.error
    keys = {r.name for r in result.by_type("tls:index/privateKey:PrivateKey")}
    assert {"dkim-a--b-c.com", "dkim-a-b-c.com"} <= keys
    commands = {r.name: r for r in result.by_type("command:local:Command")}
    assert {"mail-dkim-a--b-c.com", "mail-dkim-a-b-c.com"} <= set(commands)
    # The old name of the `a-b` key is now the `a` key's name: no alias may claim it.
    assert result.named("dkim-a--b-c.com").options["aliases"] == []
    assert result.named("mail-dkim-a--b-c.com").options["aliases"] == []


def test_a_dash_selector_keeps_its_state_through_an_alias() -> None:
    result = run_program(
        _config({"example.com": {"dkim": {"selector": "s-2026", "retired": ["mail"]}}}), program=PROGRAM
    )
    assert result.error is None, result.error
    key = result.named("dkim-s--2026-example.com")
    assert key.options["aliases"] == [{"name": "dkim-s-2026-example.com", "parent_urn": ""}]
    assert result.named("dkim-mail-example.com").options["aliases"] == []  # name unchanged
    command = result.named("mail-dkim-s--2026-example.com")
    assert command.options["aliases"] == [{"name": "mail-dkim-s-2026-example.com", "parent_urn": ""}]


def test_rspamd_key_files_of_colliding_pairs_differ() -> None:
    a = DkimSigner("c.com", "a-b", 2048)
    b = DkimSigner("b-c.com", "a", 2048)
    assert dms_files.rspamd_key_path(a) == "rspamd/dkim/rsa-2048-a--b-c.com.private.txt"
    assert dms_files.rspamd_key_path(b) == "rspamd/dkim/rsa-2048-a-b-c.com.private.txt"
    # DMS's own name for a dash-free selector is kept.
    assert dms_files.rspamd_key_path(DkimSigner("example.com", "mail", 2048)) == (
        "rspamd/dkim/rsa-2048-mail-example.com.private.txt"
    )
    result = run_program(_config(COLLIDING, profile="standard"), program=PROGRAM)
    assert result.error is None, result.error
    creates = [r.inputs["create"] for r in result.by_type("command:local:Command") if "dkim" in r.name]
    assert sum("rsa-2048-a--b-c.com.private.txt" in c for c in creates) == 1
    assert sum("rsa-2048-a-b-c.com.private.txt" in c for c in creates) == 1
