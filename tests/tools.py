"""The one way an integration test asks for real software: `require("doveadm", package="dovecot-core")`.

On a user's machine a missing tool SKIPS the test, with the reason and the Debian package that
provides it, so `python -m pytest` never needs root or system services. Under `CI=true` (how
`.ci/run` runs, after installing every package) a missing tool FAILS the run instead: CI must never
pass by skipping what it is there to prove.

Services (knotd, ...) are never expected to be running: each test starts its own on loopback, on a
free port, with its own config and working directory, and stops it afterwards (tests/dnsserver.py).
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

PACKAGES = {
    "doveadm": "dovecot-core",
    "knotd": "knot",
    "kzonecheck": "knot-dnssecutils",
    "kdig": "knot-dnsutils",
    "opendkim-testkey": "opendkim-tools",
    "opendkim-testmsg": "opendkim-tools",
    "rspamadm": "rspamd",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "openssl": "openssl",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "docker": "docker.io",
    "ddclient": "ddclient",
    "nsupdate": "bind9-dnsutils",
    "unbound": "unbound",
}
"""Tool → the Debian package `.ci/run` installs for it (keep in step with APT_PACKAGES there)."""


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(reason: str) -> None:
    """Skip the calling test with `reason`; fail it under CI=true. Never returns."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: .ci/run installs everything the tests need)", pytrace=False)
    pytest.skip(reason)


def find(name: str) -> str | None:
    """Path of an executable: PATH first, then the sbin/bin directories a non-root PATH may lack."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}") if Path(p).exists()), None
    )


def require(name: str, *, package: str | None = None) -> str:
    """Path of a tool the test runs; skipped (failed under CI=true) with the package to install.

    Args:
        name: the executable.
        package: the Debian package providing it (default: from PACKAGES).
    """
    path = find(name)
    if path is None:
        pkg = package or PACKAGES.get(name, name)
        missing(f"{name} is not installed: apt-get install {pkg} (or run `bash .ci/run`, which installs it)")
    assert path is not None
    return path


def require_root(why: str) -> None:
    """Skip (fail under CI=true, where CI runs as root) a test that needs root, e.g. for chown or unshare."""
    if os.geteuid() != 0:
        missing(f"needs root: {why}")


def require_user(name: str, *, package: str) -> pwd.struct_passwd:
    """A system user a package creates (e.g. `_rspamd` from rspamd)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        missing(f"user {name} does not exist: apt-get install {package}")
        raise AssertionError("unreachable") from None
