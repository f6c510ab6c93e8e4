"""`mailstack render|verify|adopt`: the console script's dispatcher, and the project metadata it ships with."""

from __future__ import annotations

import tomllib

import pytest
import yaml

from mailstack import cli, render
from tests.harness import ROOT


def test_dispatches_to_the_command_with_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(render, "main", lambda argv: seen.append(list(argv)) or 7)
    assert cli.main(["render", "--stack", "dev", "--out", "x"]) == 7
    assert seen == [["--stack", "dev", "--out", "x"]]


@pytest.mark.parametrize(("argv", "code"), [([], 2), (["nope"], 2), (["--help"], 0)])
def test_usage(argv: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert "usage: mailstack {render,verify,adopt}" in captured.out + captured.err


def test_the_distribution_declares_the_script_and_the_pinned_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["scripts"] == {"mailstack": "mailstack.cli:main"}
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert project["tool"]["setuptools"]["package-dir"] == {"mailstack.config": "config"}


def test_required_pulumi_version_admits_the_pinned_sdk() -> None:
    required = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["requiredPulumiVersion"]
    assert required == ">=3.187.0 <4.0.0"
    pinned = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("pulumi=="))
    version = tuple(int(x) for x in pinned.split("==")[1].split("."))
    assert (3, 187, 0) <= version < (4, 0, 0)


def test_every_mailstack_package_is_in_the_distribution() -> None:
    """`mailstack verify` from an installed wheel imports mailstack.verify: a subpackage left out of
    `packages` would install the console script without it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mailstack").rglob("__init__.py")}
    assert found <= packages
    assert project["tool"]["setuptools"]["package-data"]["mailstack.config"] == ["scripts/*"]
