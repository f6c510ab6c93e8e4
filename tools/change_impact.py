"""Change impact: what a configuration change does to every resource of the stack.

Evaluates the program twice under Pulumi's mock runtime (tools/harness.py), once with a base
configuration and once with a changed one, and classifies every resource as `unchanged`,
`updated` (in place), `replaced`, `added` or `removed`, using each provider's replace-on-change
rules (RULES below) and each resource's own `replace_on_changes` / `ignore_changes` options.

What this is not: the mock runtime shows the inputs the program plans to send, not the engine's
diff. The real engine diffs against the last deployed state through the provider (which may
normalise values, or see drift), and shows outputs of replaced resources as unknown until they are
created. Two of those effects are modelled here: an input that depends on a replaced resource counts
as changed, and the base side is what the provider reads back into state after creating a resource
(READ_BACK: healthcheck durations in Go's `Duration.String()` form, Docker's own `memory_swap`), so
a value sent in another form shows as the perpetual diff it is on a real engine. Anything else a
provider or engine decides at run time (e.g. Docker recreating a container whose image digest moved,
an image's HEALTHCHECK filling unset fields) is not.

    python -m tools.change_impact            # print the report (Markdown)
    python -m tools.change_impact --write    # regenerate docs/change-impact.md
    python -m tools.change_impact --check    # exit 1 if docs/change-impact.md is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tools
from mailstack.config.containers import go_duration
from tools import example_home, harness
from tools.stacks import PROD_EXAMPLE, PROD_SECRET_KEYS, prod_config_values

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "change-impact.md"

Impact = Literal["unchanged", "updated", "replaced", "added", "removed"]
IMPACTS: tuple[Impact, ...] = ("unchanged", "updated", "replaced", "added", "removed")
EVERY = "*"
CONTAINER = "docker:index/container:Container"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
"""In a rule: every input not listed as updatable forces replacement."""


@dataclass(frozen=True)
class Rule:
    """How one provider resource type reacts to an input change."""

    replaces: tuple[str, ...]
    """Inputs (snake_case, as in the Python SDK) whose change forces replacement; `("*",)` = all but `updates`."""
    updates: tuple[str, ...] = ()
    """With `replaces=("*",)`: the inputs that are updated in place instead."""
    source: str = ""
    """Where the rule comes from: provider source file:line at the commit read."""
    not_applied: tuple[tuple[str, str], ...] = ()
    """Updatable inputs the provider's Update stores in state without applying: (input, when it takes effect)."""


# Provider sources the rules were read from (file:line below are at these commits).
DOCKER_SRC = "kreuzwerker/terraform-provider-docker v4.5.0 (5074970c, the `upstream` of pulumi-docker 5.x)"
PULUMI_DOCKER_SRC = "pulumi/pulumi-docker v5.1.0 (e944612c; unchanged to 237b7899)"
COMMAND_SRC = "pulumi/pulumi-command v1.2.1 (7f3eb6f3)"
TLS_SRC = "hashicorp/terraform-provider-tls d72d90e1 (v4.3 line, under pulumi-tls 5.6)"
RANDOM_SRC = "hashicorp/terraform-provider-random f8d869dc (pinned by pulumi-random 4.21)"
CLOUDFLARE_SRC = "cloudflare/terraform-provider-cloudflare v5.19.1 (b2277b8b, under pulumi-cloudflare 6.23)"

_AT_DELETE = "stored only; used when the container is next stopped and deleted"
_AT_CREATE = "stored only; the running container keeps its old value until it is replaced"

# Replace-vs-update rules per resource type: the single place they are kept, each read from the
# provider's own schema (ForceNew / RequiresReplace / replaceOnChanges) and Update function.
RULES: dict[str, Rule] = {
    CONTAINER: Rule(
        # Every argument not listed is ForceNew (internal/provider/resource_docker_container.go:49-1190).
        replaces=(EVERY,),
        updates=(
            # Applied by resourceDockerContainerUpdate through ContainerUpdate
            # (resource_docker_container_funcs.go:1016-1019) ...
            "restart",
            "max_retry_count",
            "cpu_shares",
            "cpu_set",
            "memory",
            "memory_reservation",
            "memory_swap",
            "device_read_bps",
            "device_read_iops",
            "device_write_bps",
            "device_write_iops",
            # ... and must_run false → true starts the container (funcs.go:998-1013).
            "must_run",
            # Not ForceNew (container.go:57-100, 256, 482, 827, 1045, 1098, 1126, 1164-1175), but
            # Update never applies them: see not_applied.
            "rm",
            "start",
            "wait",
            "wait_timeout",
            "attach",
            "logs",
            "remove_volumes",
            "tmpfs",
            "destroy_grace_seconds",
            "healthcheck",
            "container_read_refresh_timeout_milliseconds",
            "init",
            "cpu_period",
            "cpu_quota",
        ),
        source=(
            f"{DOCKER_SRC}: internal/provider/resource_docker_container.go:49-1190 (ForceNew), "
            "resource_docker_container_funcs.go:991-1077 (Update), :1079-1101 (Delete reads attach, "
            f"destroy_grace_seconds, remove_volumes); {PULUMI_DOCKER_SRC} provider/resources.go:112-114 "
            "(DeleteBeforeReplace)"
        ),
        not_applied=(
            ("attach", _AT_DELETE),
            ("destroy_grace_seconds", _AT_DELETE),
            ("remove_volumes", _AT_DELETE),
            ("rm", _AT_CREATE),
            ("start", _AT_CREATE),
            ("wait", _AT_CREATE),
            ("wait_timeout", _AT_CREATE),
            ("logs", _AT_CREATE),
            ("tmpfs", _AT_CREATE),
            ("init", _AT_CREATE),
            ("healthcheck", _AT_CREATE),
            ("cpu_period", _AT_CREATE),
            ("cpu_quota", _AT_CREATE),
            ("container_read_refresh_timeout_milliseconds", _AT_CREATE),
        ),
    ),
    "docker:index/volume:Volume": Rule(
        replaces=("name", "labels", "driver", "driver_opts"),
        source=f"{DOCKER_SRC}: internal/provider/resource_docker_volume.go:41-66 (ForceNew; `cluster` :73 updates)",
    ),
    "docker:index/remoteImage:RemoteImage": Rule(
        # `build` (buildSchema, resource_docker_image.go:101) is a block of ForceNew fields.
        replaces=("name", "pull_triggers", "triggers", "platform", "build"),
        source=(
            f"{DOCKER_SRC}: internal/provider/resource_docker_image.go:40, 65, 88, 95 (ForceNew: name, "
            "pull_triggers, triggers, platform), :101 (build: ForceNew fields); keep_locally, force_remove update"
        ),
    ),
    "command:remote:Command": Rule(
        replaces=("triggers",),
        source=f"{COMMAND_SRC}: provider/pkg/provider/common/inputs.go:10 (`triggers` replaceOnChanges)",
    ),
    "command:local:Command": Rule(
        replaces=("triggers",),
        source=f"{COMMAND_SRC}: provider/pkg/provider/common/inputs.go:10 (`triggers` replaceOnChanges)",
    ),
    "command:remote:CopyToRemote": Rule(
        replaces=("triggers",),
        source=f"{COMMAND_SRC}: provider/pkg/provider/remote/copy.go:38 (`triggers` replaceOnChanges)",
    ),
    "tls:index/privateKey:PrivateKey": Rule(
        replaces=(EVERY,),
        source=f"{TLS_SRC}: internal/provider/resource_private_key.go:60, 75, 84 (RequiresReplace)",
    ),
    "tls:index/selfSignedCert:SelfSignedCert": Rule(
        # Also replaced, whatever changed, by the plan once inside the early-renewal window
        # (resource_self_signed_cert.go:480-482, modifyPlanIfCertificateReadyForRenewal).
        replaces=(EVERY,),
        updates=("early_renewal_hours",),
        source=(
            f"{TLS_SRC}: internal/provider/resource_self_signed_cert.go:52-318 (RequiresReplace on every "
            "argument but early_renewal_hours, :127-141), :469-473 (Update)"
        ),
    ),
    "random:index/randomPassword:RandomPassword": Rule(
        replaces=(EVERY,),
        source=f"{RANDOM_SRC}: internal/provider/resource_password.go:570-721 (RequiresReplace)",
    ),
    "random:index/randomBytes:RandomBytes": Rule(
        replaces=(EVERY,),
        source=f"{RANDOM_SRC}: internal/provider/resource_bytes.go:142-155 (RequiresReplace)",
    ),
    DNS_RECORD: Rule(
        replaces=("zone_id", "type"),
        source=f"{CLOUDFLARE_SRC}: internal/services/dns_record/schema.go:47 (zone_id), :98 (type) RequiresReplace",
    ),
    "cloudflare:index/workersScript:WorkersScript": Rule(
        replaces=("account_id", "script_name"),
        source=f"{CLOUDFLARE_SRC}: internal/services/workers_script/schema.go:47 (script_name), :52 (account_id) "
        "RequiresReplace; content and the rest update in place",
    ),
    "cloudflare:index/workersCustomDomain:WorkersCustomDomain": Rule(
        replaces=("account_id", "hostname", "service", "environment", "zone_id", "zone_name"),
        source=f"{CLOUDFLARE_SRC}: internal/services/workers_custom_domain/schema.go:35 (account_id), :40 (hostname), "
        ":45 (service) RequiresReplace; :52 (environment), :58 (zone_id), :64 (zone_name) RequiresReplaceIfConfigured",
    ),
    "cloudflare:index/zoneDnssec:ZoneDnssec": Rule(
        replaces=("zone_id",),
        source=f"{CLOUDFLARE_SRC}: internal/services/zone_dnssec/schema.go:38 (zone_id) RequiresReplace",
    ),
}
# A type without a rule is assumed to be replaced on any change: the cautious reading.
UNKNOWN_RULE = Rule(replaces=(EVERY,), source="no rule: assumed to replace")


# --- What the provider reads back ------------------------------------------------------------------

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
HEALTHCHECK_DURATIONS = ("interval", "timeout", "startPeriod", "startInterval")


def go_duration_read_back(text: str) -> str:
    """The form the Docker provider stores for a healthcheck duration sent as `text`.

    It parses with Go's `time.ParseDuration` (resource_docker_container_funcs.go:148-157) and reads
    Docker's nanoseconds back with `time.Duration.String()` (funcs.go:964-967): "600s" → "10m0s".
    Whole seconds only (what mailstack sends); anything else is returned as sent.
    """
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return text
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in parts)
    return go_duration(int(seconds)) if seconds == int(seconds) else text


def _container_read_back(inputs: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(inputs)
    check = harness.plain(inputs.get("healthcheck"))
    if isinstance(check, dict):
        out["healthcheck"] = {
            k: go_duration_read_back(v) if k in HEALTHCHECK_DURATIONS and isinstance(v, str) else v
            for k, v in check.items()
        }
    memory = harness.plain(inputs.get("memory"))
    if memory and harness.plain(inputs.get("memorySwap")) is None:
        # Docker sets MemorySwap itself when only Memory is given: twice the memory (Docker docs,
        # "Runtime options with Memory, CPUs, and GPUs": --memory-swap unset), -1 without swap
        # accounting; the provider reads it back (funcs.go:940-944) into an argument it does not
        # compute (container.go:856-861), so not sending it is an update on every run.
        out["memorySwap"] = 2 * int(memory)
    return out


READ_BACK: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {CONTAINER: _container_read_back}
"""Type → the state the provider holds after creating a resource from these inputs (inputs as sent otherwise)."""
READ_BACK_DOC: dict[str, str] = {
    CONTAINER: "healthcheck durations as Go's `Duration.String()` (`600s` → `10m0s`); `memory_swap` as Docker "
    "sets it when not sent (2 × `memory`)",
}


def read_back(typ: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    convert = READ_BACK.get(typ)
    return convert(inputs) if convert else dict(inputs)


def wire_name(snake: str) -> str:
    """The camelCase property name the engine sees (`max_retry_count` → `maxRetryCount`)."""
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def rule_for(typ: str) -> Rule:
    return RULES.get(typ, UNKNOWN_RULE)


def has_rule(typ: str) -> bool:
    """Provider and component resources need no rule (see `classify`); every other type does."""
    return typ in RULES or typ.startswith("pulumi:providers:")


@dataclass(frozen=True)
class Change:
    """The impact of a configuration change on one resource."""

    urn: str
    type: str
    name: str
    impact: Impact
    changed: tuple[str, ...] = ()
    """Inputs whose planned value differs (wire names)."""
    replacing: tuple[str, ...] = ()
    """The subset of `changed` that forces replacement."""
    via: tuple[str, ...] = ()
    """Inputs counted as changed because a resource they depend on is replaced."""
    notes: tuple[str, ...] = ()


def _top(path: str) -> str:
    """Top-level property of an option path such as `envs[*]` or `healthcheck.tests`."""
    for sep in (".", "["):
        path = path.split(sep, 1)[0]
    return path


def _differs(old: Any, new: Any) -> bool:
    # Secret-ness alone is not a diff; an absent input and an explicit None are the same to the engine.
    return bool(harness.plain(old) != harness.plain(new))


def changed_inputs(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = ()) -> set[str]:
    """Top-level inputs whose planned value differs, minus `ignore_changes`."""
    ignored = {_top(p) for p in ignore}
    return {k for k in set(old) | set(new) if k not in ignored and _differs(old.get(k), new.get(k))}


def decide(typ: str, custom: bool, changed: set[str], replace_on_changes: Sequence[str]) -> tuple[Impact, set[str]]:
    """Impact of changing `changed` inputs of one resource; also returns the inputs that force replacement."""
    if not changed:
        return "unchanged", set()
    forced = {_top(p) for p in replace_on_changes}
    if EVERY in forced:
        return "replaced", set(changed)
    if not custom or typ.startswith("pulumi:providers:"):
        # Components have no provider; provider config is diffed by the plugin (not modelled, see docs).
        replacing = changed & forced
        return ("replaced" if replacing else "updated"), replacing
    rule = rule_for(typ)
    updatable = {wire_name(p) for p in rule.updates}
    if EVERY in rule.replaces:
        replacing = {p for p in changed if p not in updatable}
    else:
        replacing = changed & {wire_name(p) for p in rule.replaces}
    replacing |= changed & forced
    return ("replaced" if replacing else "updated"), replacing


def classify(base: harness.RunResult, changed: harness.RunResult) -> list[Change]:
    """Classify every resource of both evaluations; resources present only in `base` come last."""
    before = {r.urn: r for r in base.resources}
    after = {r.urn for r in changed.resources}
    replaced: set[str] = set()
    while True:
        # A dependency normally registers before its dependents; iterating to a fixed point makes
        # the propagation of replacements independent of that order anyway.
        out = [_classify_one(before.get(reg.urn), reg, replaced) for reg in changed.resources]
        now = {c.urn for c in out if c.impact == "replaced"}
        if now == replaced:
            break
        replaced = now
    for reg in base.resources:
        if reg.urn not in after:
            out.append(Change(reg.urn, reg.type, reg.name, "removed", notes=_notes(reg, "removed")))
    return out


def _classify_one(old: harness.Registration | None, reg: harness.Registration, replaced: set[str]) -> Change:
    if old is None:
        return Change(reg.urn, reg.type, reg.name, "added", notes=_notes(reg, "added"))
    # The engine diffs the new inputs against the state the provider read back, not against the old inputs.
    diff = changed_inputs(read_back(old.type, old.inputs), reg.inputs, reg.options.get("ignore_changes", ()))
    prop_deps: Mapping[str, Sequence[str]] = reg.options.get("property_dependencies", {})
    via = {p for p, urns in prop_deps.items() if replaced.intersection(urns)} - diff
    impact, replacing = decide(reg.type, reg.custom, diff | via, reg.options.get("replace_on_changes", ()))
    return Change(
        reg.urn,
        reg.type,
        reg.name,
        impact,
        changed=tuple(sorted(diff | via)),
        replacing=tuple(sorted(replacing)),
        via=tuple(sorted(via)),
        notes=_notes(reg, impact, diff | via),
    )


def _notes(reg: harness.Registration, impact: Impact, changed: set[str] | None = None) -> tuple[str, ...]:
    opts = reg.options
    notes: list[str] = []
    if impact in ("replaced", "removed") and opts.get("protect"):
        notes.append("protected: `pulumi up` stops until the protection is removed")
    if impact in ("replaced", "removed") and opts.get("retain_on_delete"):
        notes.append("retained on delete: the old one stays on the host")
    if impact == "replaced":
        notes.append(
            "deleted before the new one is created" if opts.get("delete_before_replace") else "new one created first"
        )
    if impact == "updated" and changed:
        for snake, when in rule_for(reg.type).not_applied:
            if wire_name(snake) in changed:
                notes.append(f"`{wire_name(snake)}` is not applied by the provider's Update ({when})")
    if reg.custom and not has_rule(reg.type):
        notes.append("no replace rule for this type: replacement assumed")
    return tuple(notes)


# --- Evaluation -----------------------------------------------------------------------------------


def evaluate(
    config: Mapping[str, Any], secret_keys: Sequence[str], stack: str, program: Path = harness.PROGRAM
) -> harness.RunResult:
    """Run the program under the proof mocks (per-input dependencies recorded); raise if it fails.

    Call it inside `tools.example_home()` (the production example reads ~/.ssh/id_ed25519); compared
    evaluations must share one home, because the expanded key path is an input of the Docker provider.
    """
    result = tools.evaluate(config, secret_keys, stack=stack, program=program)
    if result.error is not None:
        raise RuntimeError(f"evaluation failed: {result.error}") from result.error
    return result


# --- Scenarios ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    title: str
    change: str
    """The change, as the user would make it (a `pulumi config set` command or a stack file edit)."""
    paths: Mapping[str, Any]
    """tests.harness.with_values paths applied to the base configuration."""


# Secrets the scenarios set are secrets in the config too: the whole `mailstack:accounts` and
# `mailstack:relay` objects are secret keys of the production example (tests/conftest.py).
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "nothing changed",
        "none: the second `pulumi up` (or `pulumi preview --refresh --expect-no-changes`) after a deploy",
        {},
    ),
    Scenario(
        "add account",
        "`pulumi config set --path --secret 'mailstack:accounts[\"new@example.com\"].password' …`",
        {"accounts/new@example.com": {"password": "a brand new passphrase", "quota": "2G"}},
    ),
    Scenario(
        "change password",
        "`pulumi config set --path --secret 'mailstack:accounts[\"me@example.com\"].password' …`",
        {"accounts/me@example.com/password": "a changed passphrase"},
    ),
    Scenario(
        "add alias",
        "`pulumi config set --path 'mailstack:aliases[\"sales@example.com\"]' me@example.com`",
        {"aliases/sales@example.com": "me@example.com"},
    ),
    Scenario(
        "change quota",
        "`pulumi config set --path 'mailstack:accounts[\"me@another.com\"].quota' 8G`",
        {"accounts/me@another.com/quota": "8G"},
    ),
    Scenario(
        "rotate relay password",
        "`pulumi config set --path --secret 'mailstack:relay.password' …`",
        {"relay/password": "xsmtpsib-rotated-brevo-key"},
    ),
    Scenario(
        "add domain",
        "add `example.net: {}` under `mailstack:domains` in the stack file (a zone in the same Cloudflare account)",
        {"domains/example.net": {}},
    ),
    Scenario(
        "rotate DKIM selector",
        'pulumi config set --path \'mailstack:domains["example.com"].dkim\' \'{"selector": "mail2", "retired": ["mail"]}\'',
        {"domains/example.com/dkim": {"selector": "mail2", "retired": ["mail"]}},
    ),
    Scenario(
        "bump image",
        "`pulumi config set mailstack:image ghcr.io/docker-mailserver/docker-mailserver:15.1.1`",
        {"image": "ghcr.io/docker-mailserver/docker-mailserver:15.1.1"},
    ),
    Scenario(
        "switch TLS mode",
        'pulumi config set --path mailstack:tls \'{"mode": "existing", "path": "/etc/letsencrypt"}\'',
        {"tls": {"mode": "existing", "path": "/etc/letsencrypt"}},
    ),
)


def scenario_config(base: Mapping[str, Any], scenario: Scenario) -> dict[str, Any]:
    return harness.with_values(base, **dict(scenario.paths))


def run_scenarios(
    scenarios: Sequence[Scenario] = SCENARIOS,
    base_config: Callable[[], Mapping[str, Any]] = prod_config_values,
    secret_keys: Sequence[str] = PROD_SECRET_KEYS,
    stack: str = "prod",
) -> tuple[harness.RunResult, list[tuple[Scenario, list[Change]]]]:
    config = base_config()
    with example_home():
        base = evaluate(config, secret_keys, stack)
        return base, [(s, classify(base, evaluate(scenario_config(config, s), secret_keys, stack))) for s in scenarios]


# --- Report ---------------------------------------------------------------------------------------


def _short_type(typ: str) -> str:
    """`docker:index/container:Container` → `docker Container`."""
    package = typ.split(":", 1)[0]
    return f"{package} {typ.rsplit(':', 1)[-1]}"


def _counts(changes: Sequence[Change]) -> dict[Impact, int]:
    return {impact: sum(1 for c in changes if c.impact == impact) for impact in IMPACTS}


def _containers(changes: Sequence[Change]) -> str:
    touched = [f"`{c.name}` {c.impact}" for c in _ordered(changes) if c.type == CONTAINER and c.impact != "unchanged"]
    return ", ".join(touched) or "unchanged"


def _records(changes: Sequence[Change]) -> str:
    counts = _counts([c for c in changes if c.type == DNS_RECORD])
    touched = [f"{counts[i]} {i}" for i in IMPACTS[1:] if counts[i]]
    return ", ".join(touched) or "unchanged"


def _ordered(changes: Sequence[Change]) -> list[Change]:
    """Report order: by impact, then name (registration order varies between runs)."""
    return sorted(changes, key=lambda c: (IMPACTS.index(c.impact), c.name, c.type))


def render(base: harness.RunResult, results: Sequence[tuple[Scenario, Sequence[Change]]]) -> str:
    lines = [
        "# Change impact",
        "",
        "<!-- Generated by `python -m tools.change_impact --write`; tests/test_change_impact.py fails when stale. -->",
        "",
        "What each common change does to the production example "
        f"(`{PROD_EXAMPLE.relative_to(ROOT)}`, with the test secrets of `tests/conftest.py`; "
        f"{len(base.resources)} resources). Every resource is classified as **unchanged**, **updated** "
        "(in place), **replaced** (deleted and created again), **added** or **removed**.",
        "",
        "How it is computed: `tools/change_impact.py` evaluates `__main__.py` under Pulumi's mock runtime with the "
        "base configuration and with the changed one, compares the inputs each resource is registered with, and "
        "applies each provider's replace-on-change rules (table at the end) and the resource's own "
        "`replace_on_changes` / `ignore_changes` options.",
        "",
        "**What the provider reads back.** The engine diffs the new inputs against the state the provider read "
        "back after the last deploy, so every row compares with that state: a Docker container's healthcheck "
        "durations as Go's `Duration.String()` writes them (`600s` is stored as `10m0s`), and the `memory_swap` "
        "Docker sets itself when only `memory` is sent (twice the memory). A value sent in another form is a "
        "change on every run: the *nothing changed* row shows any such perpetual diff.",
        "",
        "**Limits.** The mock runtime shows the inputs the program *plans* to send; only the read-back forms "
        "above are modelled, not other normalisation or drift (`pulumi preview` diffs through the provider). "
        "Outputs of a replaced resource are unknown until it is created; this is modelled (an input "
        "that depends on a replaced resource counts as changed), but decisions a provider or Docker makes at "
        "run time are not (an image's HEALTHCHECK filling unset fields, a new image digest). Confirm with "
        "`pulumi preview --diff` before an `up`.",
        "",
        "## Summary",
        "",
        "| change | unchanged | updated | replaced | added | removed | containers | Cloudflare DNS records |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for scenario, changes in results:
        counts = _counts(changes)
        lines.append(
            f"| {scenario.title} | "
            + " | ".join(str(counts[i]) for i in IMPACTS)
            + f" | {_containers(changes)} | {_records(changes)} |"
        )
    for scenario, changes in results:
        lines += ["", f"### {scenario.title}", "", f"Change: {scenario.change}", ""]
        touched = [c for c in _ordered(changes) if c.impact != "unchanged"]
        if not touched:
            lines.append("Nothing changes.")
            continue
        lines += ["| resource | type | impact | because of | notes |", "|---|---|---|---|---|"]
        for c in touched:
            because = ", ".join(
                f"`{p}`"
                + (" (replaces)" if p in c.replacing else "")
                + (" (from a replaced dependency)" if p in c.via else "")
                for p in c.changed
            )
            lines.append(
                f"| `{c.name}` | {_short_type(c.type)} | **{c.impact}** | {because or '–'} | {'; '.join(c.notes) or '–'} |"
            )
    lines += [
        "",
        "## Replace rules",
        "",
        "Kept as data in `tools/change_impact.RULES`. A resource's `replace_on_changes` option adds to them; "
        "`ignore_changes` removes inputs from the comparison. Component resources are never replaced by a rule.",
        "",
        "| type | replaced when these inputs change | updated in place | stored but not applied by Update "
        "| read back as (modelled) | source |",
        "|---|---|---|---|---|---|",
    ]
    for typ, rule in RULES.items():
        replaces = "any other input" if EVERY in rule.replaces else ", ".join(f"`{p}`" for p in rule.replaces)
        updates = ", ".join(f"`{p}`" for p in rule.updates) if rule.updates else "any other input"
        if EVERY in rule.replaces and not rule.updates:
            replaces, updates = "any input", "–"
        stored = ", ".join(f"`{p}` ({when})" for p, when in rule.not_applied) or "–"
        stored_as = READ_BACK_DOC.get(typ, "as sent")
        lines.append(f"| `{typ}` | {replaces} | {updates} | {stored} | {stored_as} | {rule.source} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(ROOT)}")
    group.add_argument("--check", action="store_true", help=f"exit 1 if {DOC.relative_to(ROOT)} is stale")
    args = parser.parse_args(argv)
    text = render(*run_scenarios())
    if args.write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
    elif args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python -m tools.change_impact --write", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
