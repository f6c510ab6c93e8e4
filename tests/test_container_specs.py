"""The container specs hold values the Docker provider reads back unchanged (no perpetual diffs).

tests/test_docker_engine.py checks the same specs against a real Docker engine; these are the pure
rules: durations in Go's `time.Duration.String()` form, every healthcheck field set.
"""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from mailstack.config import MailSettings, backup
from mailstack.config.containers import (
    ContainerSpec,
    Healthcheck,
    certbot_container,
    go_duration,
    mail_container,
    watchtower_container,
)
from tests.docker_api import go_duration_string, parse_go_duration
from tests.test_backup import settings as backup_settings
from tests.test_compose import dev_settings, prod_settings


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (3, "3s"),
        (30, "30s"),
        (59, "59s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (600, "10m0s"),
        (3599, "59m59s"),
        (3600, "1h0m0s"),
        (3661, "1h1m1s"),
        (86400, "24h0m0s"),
    ],
)
def test_go_duration_is_what_go_prints(seconds: int, text: str) -> None:
    assert go_duration(seconds) == text
    # The test's own Go reimplementation (used to read the engine's nanoseconds back) agrees.
    assert go_duration_string(seconds * 1_000_000_000) == text
    assert parse_go_duration(text) == seconds * 1_000_000_000


def test_go_duration_refuses_negative() -> None:
    with pytest.raises(ValueError, match="cannot be negative: -1"):
        go_duration(-1)


def _all_specs(settings: MailSettings) -> list[ContainerSpec[object]]:
    specs: list[ContainerSpec[object] | None] = [
        mail_container(settings, signer_fingerprint="0" * 64),
        certbot_container(settings),
        watchtower_container(replace(settings, watchtower=True)),
        backup.container(backup_settings({"repository": "/mnt/usb/restic", "password": "p"}), fingerprint="f"),
    ]
    return [s for s in specs if s is not None]


def test_mail_healthcheck_sets_every_field() -> None:
    """DMS: nothing left at zero for Docker to fill from the image's HEALTHCHECK (moby daemon/commit.go)."""
    check = mail_container(prod_settings(), signer_fingerprint="x").healthcheck
    assert check == Healthcheck(
        tests=("CMD-SHELL", "ss --listening --ipv4 --tcp | grep --silent ':smtp' || exit 1"),
        interval=30,
        timeout=3,
        start_period=30,
        retries=3,
        start_interval=0,
    )


def test_certbot_healthcheck_waits_ten_minutes() -> None:
    spec = certbot_container(prod_settings())
    assert spec is not None and spec.healthcheck is not None
    check = spec.healthcheck
    assert (check.interval, check.timeout, check.start_period, check.start_interval, check.retries) == (
        10,
        5,
        600,
        0,
        3,
    )
    assert go_duration(check.start_period) == "10m0s"
    assert spec.wait_healthy_seconds == 600


@pytest.mark.parametrize("settings", [dev_settings(), prod_settings()], ids=["dev", "prod"])
def test_every_healthcheck_round_trips_through_go(settings: MailSettings) -> None:
    """What the provider reads back (Duration.String() of the parsed value) is exactly what is sent."""
    for spec in _all_specs(settings):
        if spec.healthcheck is None:
            continue
        for f in fields(Healthcheck):
            value = getattr(spec.healthcheck, f.name)
            if f.name in ("tests", "retries"):
                continue
            sent = go_duration(value)
            assert go_duration_string(parse_go_duration(sent)) == sent, (spec.name, f.name)
        assert spec.healthcheck.retries > 0, spec.name
        assert spec.healthcheck.interval > 0 and spec.healthcheck.timeout > 0, spec.name
