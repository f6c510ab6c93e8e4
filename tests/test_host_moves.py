"""What the file commands leave on the host when `dataDir` moves, and in which order they run.

The recorded command resources of two mock evaluations are played back the way pulumi-command
and the engine treat them, and every script runs for real with `sh -c` (pulumi-command's local
interpreter; over SSH the remote login shell runs the same text) against scratch directories:

- a new resource: `create` runs (provider/pkg/provider/remote/commandController.go:31-60, v1.2.1);
- changed inputs, same `triggers`: an update, which runs `update`, else `create`, with the NEW
  inputs; the old `delete` never runs (commandController.go:63-83);
- changed `triggers` (`replaceOnChanges`, provider/pkg/provider/common/inputs.go:10): a replacement,
  new `create` first and the old state's `delete` at the end, unless `delete_before_replace`;
- a resource gone from the program: its old state's `delete` runs at the end (:86-91).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.host_target import remove_files_script
from tests.conftest import PROD_SECRET_KEYS, PROD_SECRETS, prod_config_values
from tests.harness import Registration, RunResult, plain, run_program, with_values

SH = shutil.which("sh") or "/bin/sh"
LIFECYCLE_INPUTS = ("create", "update", "delete", "stdin", "connection", "environment", "logging", "interpreter")


def _run(script: str | None, stdin: str | None, log: list[str], what: str) -> None:
    if not script:
        return
    log.append(what)
    subprocess.run([SH, "-c", script], input=(stdin or "").encode(), check=True)


def apply(old: RunResult | None, new: RunResult) -> list[str]:
    """Play `new` against the state `old` left, running each command script; returns what ran."""
    log: list[str] = []
    at_end: list[tuple[Registration, str]] = []
    before = {r.name: r for r in (old.resources if old else []) if r.type.startswith("command:")}
    for reg in in_dependency_order(new):
        inputs = reg.plain_inputs
        previous = before.pop(reg.name, None)
        if previous is None:
            _run(inputs.get("create"), inputs.get("stdin"), log, f"create {reg.name}")
            continue
        was = previous.plain_inputs
        if was.get("triggers") != inputs.get("triggers"):
            if reg.options["delete_before_replace"]:
                _run(was.get("delete"), None, log, f"delete old {reg.name}")
            else:
                at_end.append((previous, f"delete old {reg.name}"))
            _run(inputs.get("create"), inputs.get("stdin"), log, f"create {reg.name}")
        elif any(was.get(k) != inputs.get(k) for k in LIFECYCLE_INPUTS):
            _run(inputs.get("update") or inputs.get("create"), inputs.get("stdin"), log, f"update {reg.name}")
    at_end += [(gone, f"delete {gone.name}") for gone in before.values()]
    for previous, what in at_end:
        _run(previous.plain_inputs.get("delete"), None, log, what)
    return log


def destroy(old: RunResult) -> list[str]:
    log: list[str] = []
    for reg in reversed(in_dependency_order(old)):
        _run(reg.plain_inputs.get("delete"), None, log, f"delete {reg.name}")
    return log


def in_dependency_order(run: RunResult) -> list[Registration]:
    """Command resources in dependency order (each waits for the ones it depends on)."""
    commands = [r for r in run.resources if r.type.startswith("command:")]
    by_urn = {r.urn: r for r in run.resources}
    done: list[Registration] = []

    def visit(reg: Registration) -> None:
        if reg in done:
            return
        for dep in reg.options["dependencies"]:
            if dep in by_urn and by_urn[dep].type.startswith("command:"):
                visit(by_urn[dep])
        done.append(reg)

    for reg in commands:
        visit(reg)
    return done


def local_prod(data_dir: Path) -> dict[str, Any]:
    """The production example (relay, Let's Encrypt through Cloudflare, two domains), on the local
    target so its commands are `command.local.Command`s writing under `data_dir`."""
    return with_values(prod_config_values(), target={"kind": "local", "dataDir": str(data_dir)})


def _evaluate(config: dict[str, Any]) -> RunResult:
    run = run_program(config, PROD_SECRET_KEYS, stack="prod")
    assert run.error is None, run.error
    return run


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_moving_data_dir_leaves_no_file_in_the_old_one(tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    first = _evaluate(local_prod(old_dir))
    apply(None, first)
    written = _files(old_dir)
    assert sorted(written) == [
        "certbot/cloudflare.ini",
        "config/dovecot-quotas.cf",
        "config/opendkim/KeyTable",
        "config/opendkim/SigningTable",
        "config/opendkim/TrustedHosts",
        "config/opendkim/keys/another.com/mail.private",
        "config/opendkim/keys/example.com/mail.private",
        "config/postfix-accounts.cf",
        "config/postfix-sasl-password.cf",
        "config/postfix-virtual.cf",
    ]
    secrets = [
        PROD_SECRETS["relay/password"],
        PROD_SECRETS["cloudflare:apiToken"],
        "BEGIN RSA PRIVATE KEY",
        "{SHA512-CRYPT}",
    ]
    assert all(any(s in text for text in written.values()) for s in secrets)

    second = _evaluate(local_prod(new_dir))
    log = apply(first, second)
    assert _files(new_dir) == written  # the same files, now at the new place
    assert not old_dir.exists()  # every file gone, and the directories mailstack made
    # The old copies go last, after every file exists at the new place.
    assert log[-1] == "delete old mail-files-on-move"
    assert log.count("delete old mail-files-on-move") == 1

    # Unchanged config: nothing runs, so no file is touched.
    stats = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in new_dir.rglob("*") if p.is_file()}
    assert apply(second, _evaluate(local_prod(new_dir))) == []
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stats} == stats

    destroy(second)
    assert not new_dir.exists()


def test_other_files_in_the_old_data_dir_stay(tmp_path: Path) -> None:
    """Only what mailstack wrote is removed: a user's own file keeps its directory."""
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    first = _evaluate(local_prod(old_dir))
    apply(None, first)
    (old_dir / "config" / "user-patches.sh").write_text("#!/bin/sh\n")
    (old_dir / "letsencrypt").mkdir()
    apply(first, _evaluate(local_prod(new_dir)))
    assert sorted(str(p.relative_to(old_dir)) for p in old_dir.rglob("*")) == [
        "config",
        "config/user-patches.sh",
        "letsencrypt",
    ]


def test_the_cleanup_is_replaced_by_a_location_change_only() -> None:
    base = run_program(prod_config_values(), PROD_SECRET_KEYS, stack="prod")
    assert base.error is None
    cleanup = base.named("mail-files-on-move")
    inputs = cleanup.plain_inputs
    # On the ssh target the host is part of the location: moving to another host cleans the old one.
    assert inputs["triggers"] == ["dietpi.lan", 22, "/mnt/dietpi_userdata/mailstack"]
    assert "create" not in inputs and "update" not in inputs  # runs nothing until replaced
    assert inputs["connection"]["host"] == "dietpi.lan"
    written = sorted(
        r.plain_inputs["create"].rsplit(" ", 1)[1].strip("'")
        for r in base.resources
        if "mktemp" in str(r.plain_inputs.get("create", ""))
    )
    assert inputs["delete"] == remove_files_script("/mnt/dietpi_userdata/mailstack", written)
    assert cleanup.options["delete_before_replace"] is False  # new place first, old copies last


def test_remove_files_script_removes_only_the_files_and_empty_directories(tmp_path: Path) -> None:
    root = tmp_path / "data dir"
    keep = root / "config" / "keep.cf"
    files = [root / "config" / "a.cf", root / "config" / "x" / "y" / "b.private", root / "certbot" / "c.ini"]
    for f in [*files, keep]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("secret")
    subprocess.run([SH, "-c", remove_files_script(str(root), [str(f) for f in files])], check=True)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["config", "config/keep.cf"]
    # Idempotent: a second run (files already gone) succeeds.
    subprocess.run([SH, "-c", remove_files_script(str(root), [str(f) for f in files])], check=True)


@pytest.mark.skipif(os.name != "posix", reason="POSIX shell")
def test_without_the_cleanup_the_old_files_stay(tmp_path: Path) -> None:
    """Without the files-on-move command (the program before it), the same move leaves every secret behind."""
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    first = _evaluate(local_prod(old_dir))
    second = _evaluate(local_prod(new_dir))
    for run in (first, second):
        run.resources[:] = [r for r in run.resources if r.name != "mail-files-on-move"]
    apply(None, first)
    apply(first, second)
    assert len(_files(old_dir)) == 10
    assert plain(first.named("mail-relay-credentials").inputs["stdin"]) in _files(old_dir).values()
