"""The mock-runtime harness lives in tools/harness.py (tools/ must not import tests/); this re-exports it."""

from __future__ import annotations

from tools.harness import (
    KEY_POOL_SIZE,
    MOCK_ACCOUNT_ID,
    PROGRAM,
    ROOT,
    ListHandler,
    RecordingMocks,
    RecordingMonitor,
    Registration,
    RunResult,
    ecdsa_key_pem,
    is_secret,
    plain,
    rsa_key_pem,
    run_program,
    stack_config,
    with_values,
)

__all__ = [
    "KEY_POOL_SIZE",
    "MOCK_ACCOUNT_ID",
    "PROGRAM",
    "ROOT",
    "ListHandler",
    "RecordingMocks",
    "RecordingMonitor",
    "Registration",
    "RunResult",
    "ecdsa_key_pem",
    "is_secret",
    "plain",
    "rsa_key_pem",
    "run_program",
    "stack_config",
    "with_values",
]
