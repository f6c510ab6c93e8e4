"""verify with `ddns`: the hostname's A record is ddclient's, so it is compared with the host's current
address (`--current-address`), not with the stack's first one. Real knotd on loopback, as in test_verify."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.dnsserver import KnotServer
from tests.test_verify import dns_args, loopback_only, run_verify, skip_ports
from tests.verify_zones import HOST, IPV4, NS1, good_stack, zone

__all__ = ["loopback_only"]  # the autouse fixture of test_verify: only loopback is reached here too

pytestmark = pytest.mark.integration

MOVED = "198.51.100.99"
"""The home address after a change: what ddclient published."""


@pytest.fixture
def knot() -> Iterator[Callable[..., KnotServer]]:
    with ExitStack() as stack:

        def start(zones: Mapping[str, str]) -> KnotServer:
            return stack.enter_context(KnotServer(zones, address=NS1))

        yield start


def ddns_stack(published: str) -> tuple[dict[str, object], dict[str, str]]:
    data, zones = good_stack()
    data["ddns"] = {"hostname": HOST, "provider": "cloudflare", "updater": "ddclient"}
    records = data["dnsRecords"]
    assert isinstance(records, list)
    live = [dict(r, content=published) if (r["name"], r["type"]) == (HOST, "A") else r for r in records]
    zones["example.com"] = zone("example.com", live)
    return data, zones


def test_the_address_ddclient_published_is_not_a_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    data, zones = ddns_stack(MOVED)
    run = run_verify(tmp_path, capsys, data, *dns_args(knot(zones)), *skip_ports(), "--skip", "ports,ptr")
    assert run.problems() == {}
    assert run.one("mx", f"A {HOST}")["detail"] == (
        f"{MOVED}, kept current by ddclient (pass --current-address to compare it with the host's)"
    )
    assert [f for f in run.findings if f["check"] == "records" and f["subject"] == f"A {HOST}"] == []


def test_a_stale_published_address_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knot: Callable[..., KnotServer]
) -> None:
    data, zones = ddns_stack(IPV4)  # still the first address, though the host has moved on
    server = knot(zones)
    run = run_verify(tmp_path, capsys, data, *dns_args(server), "--skip", "ports,ptr", "--current-address", MOVED)
    # The stale address breaks SPF too: `mx` resolves to the old address, not the host sending now.
    assert run.problems() == {
        ("mx", f"A {HOST}"): "different",
        ("spf", f"SPF another.com permits {MOVED}"): "fail",
        ("spf", f"SPF example.com permits {MOVED}"): "fail",
    }
    finding = run.one("mx", f"A {HOST}")
    assert finding["detail"] == (
        f"published {IPV4}, but the host's current address is {MOVED}: ddclient has not updated it "
        "(yet: resolvers may also still hold the old answer for its TTL)"
    )
    assert finding["fix"] == (
        "on the host: systemctl status ddclient; journalctl -u ddclient; ddclient -daemon=0 -verbose -force"
    )
    assert run.code == 1
    ok = run_verify(tmp_path, capsys, data, *dns_args(server), "--skip", "ports,ptr", "--current-address", IPV4)
    assert ok.problems() == {}
    assert ok.one("mx", f"A {HOST}")["detail"] == f"{IPV4}, the host's current address (ddclient)"
