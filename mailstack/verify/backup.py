"""`verify --backup-status FILE`: is the last successful backup recent enough?

The backup job (config/scripts/mailstack-backup.sh) rewrites `<dataDir>/backup-status/status.json`
after every run. verify does not reach into the host itself: the file is handed over (a local
path, or `-` for stdin, e.g. `ssh root@dietpi cat …/status.json | python -m mailstack.verify … --backup-status -`).
A backup older than twice its schedule is a warning, as is a failed last run; a failed `restic
check` (a damaged repository) is a failure.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from mailstack.verify.findings import Finding, Status

CHECK = "backup"
FIX_LOGS = "read `docker logs mailstack-<stack>-backup`, fix the cause, then run the `backup.backupNow` output command"


def read_status(path: str) -> str:
    """The status file's text (`-`: stdin).

    Raises:
        OSError: the file cannot be read.
    """
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def backup_findings(text: str, *, hostname: str, now: datetime) -> list[Finding]:
    """Findings for one status file."""

    def finding(status: Status, detail: str, fix: str = "") -> Finding:
        return Finding(domain=hostname, check=CHECK, subject="last backup", status=status, detail=detail, fix=fix)

    try:
        data = json.loads(text)
        interval = int(data["intervalSeconds"])
        success = _time(data.get("lastSuccess"))
        result = str(data.get("lastResult", ""))
    except (ValueError, KeyError, TypeError) as exc:
        return [finding(Status.ERROR, f"the backup status file is not valid: {exc}", "pass the job's status.json")]
    out: list[Finding] = []
    if data.get("lastCheckResult") == "failed":
        out.append(
            Finding(
                domain=hostname,
                check=CHECK,
                subject="repository check",
                status=Status.FAIL,
                detail=f"`restic check` failed at {data.get('lastCheck')}: the repository may be damaged",
                fix="run `restic check --read-data` through the job (`sh …/mailstack-backup.sh restic check`) and "
                "start a new repository if it is damaged",
            )
        )
    if success is None:
        out.append(finding(Status.WARN, f"no backup has succeeded yet (last run: {result or 'none'})", FIX_LOGS))
        return out
    age = (now - success).total_seconds()
    limit = 2 * interval
    when = f"{data['lastSuccess']} ({_age(age)} ago, snapshot {data.get('lastSnapshot') or '?'})"
    if age > limit:
        out.append(
            finding(Status.WARN, f"last success {when} is older than twice the schedule ({_age(limit)})", FIX_LOGS)
        )
    elif result.startswith("failed"):
        out.append(finding(Status.WARN, f"the last run {result}; last success {when}", FIX_LOGS))
    else:
        out.append(finding(Status.OK, f"last success {when}"))
    return out
