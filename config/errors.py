"""Configuration problems: every one is reported at once, with its key and the command that fixes it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NAMESPACE = "mailstack"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the stack configuration."""

    key: str
    """Full config path as `pulumi config --path` spells it, e.g. `mailstack:accounts["a@b.org"].quota`."""
    message: str
    """What is wrong, in one sentence."""
    fix: str
    """The command (or action) that fixes it."""

    def render(self) -> str:
        return f"- {self.key}: {self.message}\n    fix: {self.fix}"


class ConfigError(ValueError):
    """Raised once, before any resource exists, listing every configuration problem."""

    def __init__(self, problems: Iterable[Problem], stack: str = "<stack>") -> None:
        self.problems: tuple[Problem, ...] = tuple(dict.fromkeys(problems))
        self.stack = stack
        count = len(self.problems)
        lines = [
            f"mailstack: the configuration of stack '{stack}' has {count} problem{'s' if count != 1 else ''}"
            " (nothing was created):",
            *(p.render() for p in self.problems),
        ]
        super().__init__("\n".join(lines))


def key_path(path: Sequence[str | int]) -> str:
    """Render a location such as ("accounts", "a@b.org", "quota") as `mailstack:accounts["a@b.org"].quota`.

    Segments that are not plain identifiers (addresses, domains) use the bracket form that
    `pulumi config set --path` understands.
    """
    if not path:
        return NAMESPACE
    head, *rest = path
    return config_path(f"{NAMESPACE}:{head}", rest)


def config_path(key: str, rest: Sequence[str | int]) -> str:
    """`pulumi config --path` spelling of a full config key plus nested segments (ints are list indices)."""
    out = key
    for seg in rest:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif seg.isidentifier():
            out += f".{seg}"
        else:
            out += f"[{json.dumps(seg)}]"
    return out


def set_command(path: Sequence[str | int], value: str = "<value>", *, secret: bool = False) -> str:
    """The `pulumi config set` command for a location (with `--path` when nested)."""
    flags = []
    if len(path) > 1:
        flags.append("--path")
    if secret:
        flags.append("--secret")
    flag_text = " ".join(flags)
    return f"pulumi config set {flag_text + ' ' if flag_text else ''}'{key_path(path)}' {value}"


def rm_command(path: Sequence[str | int]) -> str:
    flags = "--path " if len(path) > 1 else ""
    return f"pulumi config rm {flags}'{key_path(path)}'"


def problem(path: Sequence[str | int], message: str, fix: str | None = None, *, value: str = "<value>") -> Problem:
    """Build a Problem whose default fix is the `pulumi config set` command for its key."""
    return Problem(key_path(path), message, fix if fix is not None else set_command(path, value))
