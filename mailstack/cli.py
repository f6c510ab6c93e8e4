"""`mailstack render|verify|adopt …`: one console script for the three commands (`python -m mailstack.<cmd>` works too)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

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
