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
