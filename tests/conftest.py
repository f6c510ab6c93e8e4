"""Shared fixtures: the mock-runtime harness (tools/harness.py) and the stacks under test (tools/stacks.py)."""

from __future__ import annotations

import pytest

from tests.tools import require
from tools.harness import stack_config
from tools.stacks import (
    DEV_STACK,
    PROD_EXAMPLE,
    PROD_SECRET_KEYS,
    PROD_SECRETS,
    prod_config_values,
    ssh_key_file,
)

__all__ = ["DEV_STACK", "PROD_EXAMPLE", "PROD_SECRETS", "PROD_SECRET_KEYS", "prod_config_values", "ssh_key_file"]


@pytest.fixture
def dev_config() -> dict[str, str]:
    return stack_config(DEV_STACK)


@pytest.fixture
def prod_config() -> dict[str, str]:
    return prod_config_values()


def require_tool(name: str) -> str:
    """Path of a Debian tool the integration tests run: skipped if missing, failed under CI=true (tests/tools.py)."""
    return require(name)
