"""`verify --backup-status`: the freshness rule on the job's status file (real files: test_backup_integration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailstack import verify
from mailstack.verify.backup import backup_findings
from mailstack.verify.findings import Status

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
HOST = "mail.example.com"


def status(**changes: object) -> str:
    data: dict[str, object] = {
        "host": "mailstack-prod",
        "schedule": "daily",
        "intervalSeconds": 86400,
        "lastSuccess": "2026-12-04T03:00:00Z",
        "lastSnapshot": "fe2453a9",
        "lastAttempt": "2026-12-04T02:59:00Z",
        "lastResult": "ok",
        "lastCheck": "2026-12-01T03:00:00Z",
        "lastCheckResult": "ok",
        "nextRun": "2026-12-05T02:59:00Z",
    }
    data.update(changes)
    return json.dumps(data)


def lines(text: str) -> list[tuple[str, Status, str]]:
    return [(f.subject, f.status, f.detail) for f in backup_findings(text, hostname=HOST, now=NOW)]


def test_recent_success_is_ok() -> None:
    assert lines(status()) == [
        ("last backup", Status.OK, "last success 2026-12-04T03:00:00Z (9.0 h ago, snapshot fe2453a9)")
    ]


def test_exactly_twice_the_schedule_is_still_ok_one_second_more_warns() -> None:
    assert lines(status(lastSuccess="2026-12-02T12:00:00Z"))[0][1] == Status.OK
    assert lines(status(lastSuccess="2026-12-02T11:59:59Z")) == [
        (
            "last backup",
            Status.WARN,
            "last success 2026-12-02T11:59:59Z (2.0 days ago, snapshot fe2453a9) is older than twice the schedule (2.0 days)",
        )
    ]
    hourly = status(intervalSeconds=3600, lastSuccess="2026-12-04T09:59:00Z")
    assert lines(hourly)[0][1] == Status.WARN


def test_never_succeeded_failed_run_and_failed_check() -> None:
    assert lines(status(lastSuccess=None, lastResult="failed: repository")) == [
        ("last backup", Status.WARN, "no backup has succeeded yet (last run: failed: repository)")
    ]
    assert lines(status(lastResult="failed: backup (restic exit 1)")) == [
        (
            "last backup",
            Status.WARN,
            "the last run failed: backup (restic exit 1); last success 2026-12-04T03:00:00Z (9.0 h ago, snapshot fe2453a9)",
        )
    ]
    assert lines(status(lastCheckResult="failed"))[0] == (
        "repository check",
        Status.FAIL,
        "`restic check` failed at 2026-12-01T03:00:00Z: the repository may be damaged",
    )


@pytest.mark.parametrize("text", ["not json", "{}", json.dumps({"intervalSeconds": 60, "lastSuccess": "yesterday"})])
def test_unreadable_status_is_an_error(text: str) -> None:
    assert [s for _, s, _ in lines(text)] == [Status.ERROR]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"hostname": HOST, "publicIPv4": None, "publicIPv6": None, "dnsRecords": []}))
    stale = tmp_path / "status.json"
    stale.write_text(status(lastSuccess="2020-01-01T00:00:00Z"))
    skip = "records,spf,dkim,dmarc,mx,ptr,ports,blocklist"
    argv = ["--outputs", str(outputs), "--resolver", "127.0.0.1:9", "--skip", skip, "--json"]
    assert verify.main([*argv, "--backup-status", str(stale)]) == 0  # a warning does not fail verify
    report = json.loads(capsys.readouterr().out)
    assert [(f["check"], f["status"]) for f in report["findings"]] == [("backup", "warn")]
    assert verify.main([*argv, "--backup-status", str(tmp_path / "missing.json")]) == 2
