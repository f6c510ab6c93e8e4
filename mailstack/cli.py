"""What the mailstack commands (render, verify, adopt) share: exit codes, one style of error, and the
`mailstack render|verify|adopt` console script (`python -m mailstack.<cmd>` works too).

Errors go to standard error as plain text, never through a terminal renderer: rich wraps at 80
columns when the output is not a terminal, which split `pulumi config set …` fix commands in
the middle (a CI log or `2> errors.txt` then holds a command that no longer runs). Every error
reads `mailstack <command>: error: <what>`; continuation lines (one per problem, each with its
fix) follow unchanged.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
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


COMMANDS = {"render": "mailstack.render", "verify": "mailstack.verify", "adopt": "mailstack.adopt"}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        out = sys.stdout if args and args[0] in ("-h", "--help") else sys.stderr
        print(f"usage: mailstack {{{','.join(COMMANDS)}}} [options]  (mailstack <command> --help)", file=out)
        return 0 if out is sys.stdout else 2
    module = importlib.import_module(COMMANDS[args[0]])
    code: int = module.main(args[1:])
    return code


if __name__ == "__main__":
    sys.exit(main())
