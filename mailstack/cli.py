"""What the mailstack commands (render, verify, adopt) share: exit codes and one style of error.

Errors go to standard error as plain text, never through a terminal renderer: rich wraps at 80
columns when the output is not a terminal, which split `pulumi config set …` fix commands in
the middle (a CI log or `2> errors.txt` then holds a command that no longer runs). Every error
reads `mailstack <command>: error: <what>`; continuation lines (one per problem, each with its
fix) follow unchanged.
"""

from __future__ import annotations

import sys
from typing import TextIO

EXIT_OK = 0
"""Done, and nothing needs fixing."""
EXIT_FIX = 1
"""Something needs fixing, and the output says how: configuration problems (render, adopt),
checks that failed (verify), records that still block the stack (adopt)."""
EXIT_CANNOT = 2
"""The command could not do its job: a file it cannot read or write, a missing tool or token,
an API or network failure, unusable input."""

_PREFIX = "mailstack: "


def error_text(command: str, message: str) -> str:
    """`mailstack <command>: error: <message>`, without doubling the `mailstack:` of config errors."""
    if message.startswith(_PREFIX):
        message = message[len(_PREFIX) :]
    return f"mailstack {command}: error: {message}"


def print_error(command: str, message: str, stream: TextIO | None = None) -> None:
    """Write error_text to standard error, unwrapped."""
    (stream or sys.stderr).write(error_text(command, message).rstrip("\n") + "\n")
