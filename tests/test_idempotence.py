"""Idempotence: the same configuration always registers the same stack, whatever its dict order.

A second `pulumi preview` of an unchanged stack must show no changes. Under the mock runtime that
means: the same resources (type, name, parent), with identical inputs (file texts, hashes, record
contents, labels), the same secret-ness and options, and the same stack outputs. A configuration
whose mappings list their keys in another order (YAML mappings are unordered to the user) must
give exactly the same result.

Evaluations use tools.evaluate: the harness mocks with one correction, keys handed out by resource
name rather than registration order, because the mock runtime registers resources from a thread
pool and the order of the harness's key pool is not part of the program's behaviour.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.conftest import DEV_STACK, PROD_SECRET_KEYS, prod_config_values
from tests.harness import RunResult, is_secret, plain, stack_config
from tools import evaluate, example_home
from tools.secret_audit import walk_strings

STACKS = {
    "dev": (lambda: stack_config(DEV_STACK), ()),
    "prod": (prod_config_values, PROD_SECRET_KEYS),
}


def snapshot(result: RunResult) -> dict[str, Any]:
    """Everything a preview would compare, keyed by URN (registration order is not part of it)."""
    assert result.error is None, result.error
    urns = [r.urn for r in result.resources]
    assert len(urns) == len(set(urns)), "duplicate URNs"
    return {
        "resources": {
            r.urn: {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "custom": r.custom,
                "inputs": plain(r.inputs),
                "secret_inputs": sorted(path for path, _, secret in walk_strings(r.inputs) if secret),
                "options": r.options,
            }
            for r in result.resources
        },
        "outputs": plain(result.outputs),
        "secret_outputs": sorted(k for k, v in result.outputs.items() if is_secret(v)),
    }


def reorder(value: Any, order: str, rng: random.Random) -> Any:
    """The same data with every mapping's keys reversed or shuffled (list order is meaningful: kept)."""
    if isinstance(value, dict):
        items = list(value.items())
        if order == "reversed":
            items.reverse()
        else:
            original = list(items)
            rng.shuffle(items)
            if items == original:  # a shuffle that changes nothing proves nothing
                items = items[1:] + items[:1]
        return {k: reorder(v, order, rng) for k, v in items}
    if isinstance(value, list):
        return [reorder(v, order, rng) for v in value]
    return value


def reordered_config(config: dict[str, str], order: str, seed: int = 6) -> dict[str, str]:
    """Top-level keys and every nested object (JSON text, as Pulumi passes them) in another order."""
    rng = random.Random(seed)
    out: dict[str, str] = {}
    for key, text in reorder(dict(config), order, rng).items():
        decoded = json.loads(text) if text[:1] in "{[" else None
        out[key] = json.dumps(reorder(decoded, order, rng)) if decoded is not None else text
    return out


def _decoded(text: str) -> Any:
    return json.loads(text) if text[:1] in "{[" else text


def run(stack: str, config: dict[str, str]) -> RunResult:
    return evaluate(config, STACKS[stack][1], stack=stack)


@pytest.mark.parametrize("stack", list(STACKS))
def test_same_config_twice_registers_the_same_stack(stack: str) -> None:
    config = STACKS[stack][0]()
    with example_home():
        first, second = run(stack, config), run(stack, config)
    assert snapshot(second) == snapshot(first)
    assert len(first.resources) == {"dev": 27, "prod": 56}[stack]


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
@pytest.mark.parametrize("stack", list(STACKS))
def test_dict_order_does_not_change_the_stack(stack: str, order: str) -> None:
    config = STACKS[stack][0]()
    moved = reordered_config(config, order)
    # Guard against a vacuous test: same data, but objects really spelt in another order.
    assert moved.keys() == config.keys() and list(moved) != list(config)
    assert {k: _decoded(v) for k, v in moved.items()} == {k: _decoded(v) for k, v in config.items()}
    assert [k for k in config if moved[k] != config[k]] != []
    with example_home():
        base, other = run(stack, config), run(stack, moved)
    assert snapshot(other) == snapshot(base)


def test_reordered_config_keeps_lists_and_values() -> None:
    config = {"mailstack:x": json.dumps({"a": 1, "b": {"c": [3, {"d": 4, "e": 5}]}}), "mailstack:y": "v"}
    assert reordered_config(config, "reversed") == {
        "mailstack:y": "v",
        "mailstack:x": json.dumps({"b": {"c": [3, {"e": 5, "d": 4}]}, "a": 1}),
    }
