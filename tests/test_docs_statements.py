"""Statements the README makes about the Pulumi CLI's own config checks match Pulumi.yaml."""

from __future__ import annotations

import re

import yaml

from tests.harness import ROOT


def test_readme_names_exactly_the_keys_the_cli_requires() -> None:
    """Keys declared without a default are checked by the CLI before the program runs (pulumi/pulumi
    ValidateStackConfigAndApplyProjectConfig): the README must say which ones, and only those."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    required = sorted(k for k, v in project["config"].items() if "default" not in v)
    assert required == ["mailstack:accounts", "mailstack:domains", "mailstack:hostname"]
    readme = (ROOT / "README.md").read_text()
    sentence = re.search(r"keys `Pulumi.yaml` declares without a default \(([^)]*)\)", readme)
    assert sentence is not None
    assert sorted(re.findall(r"`([^`]+)`", sentence.group(1))) == required


def test_destroy_is_documented_as_the_engine_does_it() -> None:
    """Plain `pulumi destroy` stops at protected resources (pulumi/pulumi deleteProtectedError); the
    docs give `--exclude-protected` and name exactly the volumes that stay (tests/test_mail_server.py
    proves nothing else is kept for them)."""
    from tests.conftest import PROD_SECRET_KEYS, prod_config_values
    from tests.harness import run_program

    readme = " ".join((ROOT / "README.md").read_text().split())
    host = " ".join((ROOT / "docs" / "host.md").read_text().split())
    assert "`pulumi destroy` leaves them" not in readme
    assert "A plain `pulumi destroy` stops with an error at them" in readme
    assert "`pulumi destroy --exclude-protected` removes everything else" in readme
    assert "pulumi destroy --exclude-protected" in host
    stays = re.search(r"What stays on the host: - the volumes (.*?) \(all mail\)", host)
    assert stays is not None
    run = run_program(prod_config_values(), PROD_SECRET_KEYS, stack="prod")
    protected = sorted(r.plain_inputs["name"] for r in run.resources if r.options.get("protect"))
    assert protected == ["mailstack-prod-mail-data", "mailstack-prod-mail-logs", "mailstack-prod-mail-state"]
    assert stays.group(1) == "`mailstack-<stack>-mail-data`, `-mail-state`, `-mail-logs`"
