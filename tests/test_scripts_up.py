"""scripts/up picks a Python >= 3.11, says clearly when there is none, and rebuilds a venv that doesn't match.

Run with bash against fake interpreters on PATH: each answers the version query with its own version,
`-m venv DIR` copies itself to DIR/bin/python (a venv has its interpreter's version), and `-m pip`
logs the call. A fake `pulumi` logs its arguments. Nothing real is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.harness import ROOT

BASH = shutil.which("bash") or "/bin/bash"

FAKE_PYTHON = """#!/bin/bash
# fake interpreter, version {version}
case "$1" in
  -c) echo "{major_minor}" ;;
  -m)
    case "$2" in
      venv) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && echo "venv {version} $3" >>"$FAKE_LOG" ;;
      pip) echo "pip {version} ${{*:3}}" >>"$FAKE_LOG"; exit "${{FAKE_PIP_RC:-0}}" ;;
    esac ;;
esac
"""

FAKE_PULUMI = """#!/bin/bash
echo "pulumi $*" >>"$FAKE_LOG"
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "up", project / "scripts" / "up")
    (project / "requirements.txt").write_text("dnspython==2.9.2\n")
    return project


def _bin(tmp_path: Path, *versions: str, python3: str | None = None) -> Path:
    """A PATH directory with fake python3.X for each version (and `python3` if given), and pulumi."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for name in list(directory.iterdir()):
        name.unlink()
    names = {f"python{'.'.join(v.split('.')[:2])}": v for v in versions}
    if python3 is not None:
        names["python3"] = python3
    for name, version in names.items():
        path = directory / name
        path.write_text(FAKE_PYTHON.format(version=version, major_minor=".".join(version.split(".")[:2])))
        path.chmod(0o755)
    pulumi = directory / "pulumi"
    pulumi.write_text(FAKE_PULUMI)
    pulumi.chmod(0o755)
    return directory


def _up(project: Path, bin_dir: Path, **env: str) -> tuple[int, str, list[str]]:
    log = project / "fake.log"
    log.unlink(missing_ok=True)
    # PATH holds only the fakes and the few utilities the script uses: no real python3 can be found.
    utilities = project.parent / "utilities"
    utilities.mkdir(exist_ok=True)
    for name in ("bash", "dirname", "cat", "rm", "mkdir", "cp"):
        link = utilities / name
        if not link.exists():
            real = shutil.which(name)
            assert real is not None, name
            link.symlink_to(real)
    done = subprocess.run(
        [BASH, str(project / "scripts" / "up"), "dev"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": f"{bin_dir}:{utilities}", "FAKE_LOG": str(log), "PULUMI_CONFIG_PASSPHRASE": "", **env},
        cwd=project,
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stderr, lines


def test_only_python_3_10_is_refused_clearly_and_nothing_is_built(tmp_path: Path) -> None:
    project = _project(tmp_path)
    code, stderr, log = _up(project, _bin(tmp_path, python3="3.10.12"))
    assert code == 2
    assert "mailstack needs Python 3.11 or newer; found: python3 3.10." in stderr
    assert "PYTHON=/path/to/python3.12 scripts/up" in stderr
    assert log == []
    assert not (project / ".venv").exists()


def test_the_newest_suitable_interpreter_is_chosen(tmp_path: Path) -> None:
    project = _project(tmp_path)
    code, stderr, log = _up(project, _bin(tmp_path, "3.11.2", "3.12.4", python3="3.10.12"))
    assert code == 0, stderr
    assert log == [
        f"venv 3.12.4 {'.venv'}",
        "pip 3.12.4 install -q -r requirements.txt",
        "pulumi stack select --create dev",
        "pulumi up --stack dev",
    ]
    assert (project / ".venv/.mailstack-python").read_text() == "3.12\n"


def test_a_matching_venv_is_reused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    bin_dir = _bin(tmp_path, "3.11.2")
    assert _up(project, bin_dir)[0] == 0
    code, _, log = _up(project, bin_dir)
    assert code == 0
    assert log[0] == "pip 3.11.2 install -q -r requirements.txt"  # no new venv


def test_a_venv_of_another_version_is_rebuilt(tmp_path: Path) -> None:
    """The broken case from the issue: a .venv left by python3 3.10 is replaced, not reused forever."""
    project = _project(tmp_path)
    (project / ".venv/bin").mkdir(parents=True)
    (tmp_path / "old").mkdir()
    old = _bin(tmp_path / "old", python3="3.10.12") / "python3"
    shutil.copy(old, project / ".venv/bin/python")
    code, stderr, log = _up(project, _bin(tmp_path, "3.13.1", python3="3.10.12"))
    assert code == 0, stderr
    assert "rebuilding .venv for Python 3.13" in stderr
    assert log[:2] == ["venv 3.13.1 .venv", "pip 3.13.1 install -q -r requirements.txt"]


def test_a_failed_install_leaves_no_stamp_so_the_next_run_starts_over(tmp_path: Path) -> None:
    project = _project(tmp_path)
    bin_dir = _bin(tmp_path, "3.12.4")
    code, _, log = _up(project, bin_dir, FAKE_PIP_RC="1")
    assert code == 1
    assert log == ["venv 3.12.4 .venv", "pip 3.12.4 install -q -r requirements.txt"]  # pulumi never ran
    assert not (project / ".venv/.mailstack-python").exists()
    code, _, log = _up(project, bin_dir)
    assert code == 0
    assert log[0] == "venv 3.12.4 .venv"


def test_python_env_overrides_the_search(tmp_path: Path) -> None:
    project = _project(tmp_path)
    bin_dir = _bin(tmp_path, "3.11.2", "3.13.1")
    code, _, log = _up(project, bin_dir, PYTHON=str(bin_dir / "python3.11"))
    assert code == 0
    assert log[0] == "venv 3.11.2 .venv"
