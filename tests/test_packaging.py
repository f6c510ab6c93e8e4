"""`pip install .` gives a distribution whose code runs without the repository: only `mailstack` (the pure core
as `mailstack.config`) is installed, with the data files it reads, and the console script renders a stack.

The wheel is built offline from the setuptools in the test venv (`--no-build-isolation`), so the test never
reaches a package index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.harness import ROOT

_NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "rendered", ".ci")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy, so the in-tree build (build/, *.egg-info) never lands in the checkout; symlinks kept as links
    # (mailstack/config is one).
    source = out / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (built,) = out.glob("mailstack-*.whl")
    return built


def test_the_wheel_holds_only_the_mailstack_package_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("mailstack-0.1.0.dist-info/")}
    # No generic top-level names (`config`, `components`, `tools`, `tests`) to collide in site-packages.
    assert top == {"mailstack"}
    assert {
        "mailstack/config/model.py",
        "mailstack/config/sha512_crypt.py",
        "mailstack/config/scripts/mailstack-backup.sh",
        "mailstack/config/scripts/mailstack-migrate.sh",
        "mailstack/config/scripts/mailstack-worker.js",
        "mailstack/verify/__init__.py",
        "mailstack/verify/__main__.py",
        "mailstack/data/compose-spec.json",
        "mailstack/cli.py",
    } <= set(names)
    entry_points = zipfile.ZipFile(wheel).read("mailstack-0.1.0.dist-info/entry_points.txt").decode()
    assert "mailstack = mailstack.cli:main" in entry_points


def test_the_installed_console_script_renders_outside_the_repository(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        (project / name).write_bytes((ROOT / name).read_bytes())
    # -I: neither the checkout nor PYTHONPATH is on sys.path; the dependencies come from this venv's
    # site-packages, the code only from the installed wheel.
    code = (
        "import sys, site; sys.path[:0] = [sys.argv[1]] + site.getsitepackages(); "
        "from mailstack.cli import main; import mailstack.config; "
        "assert mailstack.config.__file__.startswith(sys.argv[1]), mailstack.config.__file__; "
        "sys.exit(main(sys.argv[2:]))"
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", code, str(target), "render", "--stack", "dev", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "compose.yaml").is_file()
    assert (tmp_path / "out" / "config" / "postfix-accounts.cf").is_file()
