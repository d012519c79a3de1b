"""The `inventory` enricher's REST source, over a real socket: pages, auth, reloads, errors."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from tests.integration.http_server import FakeService, Reply

import fido
from fido import ConfigurationError, Criticality, Host, HostContext
from fido.adapters.enrichers.inventory import Inventory
from fido.testing import check_enricher

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

TOKEN = "inv-token-0123456789"


def page(hosts: list[dict[str, Any]], next_url: str | None) -> Reply:
    return Reply(200, {"results": hosts, "next": next_url, "count": 3})


FIRST: list[dict[str, Any]] = [
    {
        "name": "ws-042",
        "primary_ip": {"address": "10.1.2.3"},
        "tenant": {"name": "finance-it"},
        "criticality": "high",
        "av_running": "no",
    },
    {
        "name": "srv-db-01",
        "primary_ip": {"address": "10.20.1.5"},
        "tenant": {"name": "payments"},
        "criticality": "critical",
        "is_server": True,
        "groups": ["pci"],
    },
]
SECOND: list[dict[str, Any]] = [
    {"name": "ws-107", "primary_ip": {"address": "10.1.2.77"}, "tenant": {"name": "eng"}}
]


@pytest.fixture
def service() -> Iterator[FakeService]:
    with FakeService() as running:
        running.route("GET", "/api/hosts", page(FIRST, "/api/hosts/page2?cursor=abc"))
        running.route("GET", "/api/hosts/page2", page(SECOND, None))
        yield running


def inventory(service: FakeService, **options: Any) -> Inventory:
    return Inventory(
        name="assets",
        url=service.url("/api/hosts"),
        api_key=TOKEN,
        records_field="results",
        next_field="next",
        fields={"hostname": "name", "ip": "primary_ip.address", "owner": "tenant.name"},
        **options,
    )


def look_up(enricher: Inventory, host: Host) -> HostContext | None:
    return asyncio.run(enricher.enrich(host))


def test_every_page_is_read_with_the_credential(service: FakeService) -> None:
    enricher = inventory(service)
    try:
        found = look_up(enricher, Host(ip="10.20.1.5"))
        assert found is not None
        assert (found.owner, found.criticality, found.is_server, found.groups) == (
            "payments",
            Criticality.CRITICAL,
            True,
            ("pci",),
        )
        last = look_up(enricher, Host(name="WS-107"))
        assert last is not None
        assert last.owner == "eng"
        assert look_up(enricher, Host(name="nowhere")) is None
        assert [r.path for r in service.requests] == ["/api/hosts", "/api/hosts/page2"]
        assert service.requests[1].query == {"cursor": ["abc"]}
        assert {r.headers["authorization"] for r in service.requests} == {f"Bearer {TOKEN}"}
        assert all(r.headers["user-agent"].startswith("fido/") for r in service.requests)
        assert enricher.stats()["hosts"] == 3
        assert TOKEN not in repr(enricher)
    finally:
        asyncio.run(enricher.aclose())


def test_it_is_fetched_again_after_the_interval(service: FakeService) -> None:
    enricher = inventory(service, check_interval=0.05)
    try:
        assert look_up(enricher, Host(name="ws-900")) is None
        service.route("GET", "/api/hosts/page2", page([*SECOND, {"name": "ws-900"}], None))
        for _ in range(100):  # the reloader runs in its own thread, after the interval
            asyncio.run(asyncio.sleep(0.05))
            if look_up(enricher, Host(name="ws-900")) is not None:
                break
        assert look_up(enricher, Host(name="ws-900")) is not None
        assert enricher.stats()["reloads"] >= 1
    finally:
        asyncio.run(enricher.aclose())


def test_a_failed_fetch_keeps_the_hosts(
    service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    enricher = inventory(service, check_interval=0.05)
    try:
        service.route("GET", "/api/hosts", Reply(403, {"error": "forbidden"}))
        enricher.reload()
        assert look_up(enricher, Host(name="ws-042")) is not None  # kept
        assert "HTTP 403" in caplog.text
        assert TOKEN not in caplog.text
    finally:
        asyncio.run(enricher.aclose())


def test_a_refused_credential_fails_at_construction(service: FakeService) -> None:
    service.route("GET", "/api/hosts", Reply(401, {"error": f"bad token {TOKEN}"}))
    with pytest.raises(ConfigurationError, match="HTTP 401") as caught:
        inventory(service)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "link",
    [
        "https://elsewhere.example/steal",
        "http://localhost:{port}/api/hosts/page2",  # another host name
        "http://127.0.0.1:{other}/api/hosts/page2",  # another port
        "//elsewhere.example/api/hosts/page2",  # scheme-relative: another server
    ],
)
def test_a_next_page_elsewhere_is_not_followed(service: FakeService, link: str) -> None:
    url = link.format(port=service.port, other=service.port + 1)
    service.route("GET", "/api/hosts", page(FIRST, url))
    with pytest.raises(ConfigurationError, match="not on the inventory's scheme, host and port"):
        inventory(service)
    assert [r.path for r in service.requests] == ["/api/hosts"]  # the token went nowhere else


def test_it_can_be_built_inside_a_running_event_loop(service: FakeService) -> None:
    """As in a notebook: construction fetches the inventory while a loop runs."""

    async def main() -> tuple[int, HostContext | None]:
        enricher = inventory(service)
        try:
            return enricher.stats()["hosts"], await enricher.enrich(Host(name="ws-107"))
        finally:
            await enricher.aclose()

    hosts, found = asyncio.run(main())
    assert hosts == 3
    assert found is not None
    assert found.owner == "eng"


def test_paging_cut_at_max_pages_says_so(
    service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    enricher = inventory(service, max_pages=1)
    try:
        stats = enricher.stats()
        assert (stats["hosts"], stats["truncated"]) == (2, True)
        assert "stopped after max_pages = 1 pages with more to read" in caplog.text
        assert [r.path for r in service.requests] == ["/api/hosts"]
    finally:
        asyncio.run(enricher.aclose())
    whole = inventory(service)
    try:
        assert whole.stats()["truncated"] is False
    finally:
        asyncio.run(whole.aclose())


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="either path"):
        Inventory(name="x")
    with pytest.raises(ConfigurationError, match="either path"):
        Inventory(name="x", path="a.csv", url="https://cmdb.example/api")
    with pytest.raises(ConfigurationError, match="http"):
        Inventory(name="x", url="ftp://cmdb.example/hosts")


def test_conformance_and_configuration(
    service: FakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enricher = inventory(service)
    try:
        check_enricher(enricher, [Host(name="ws-042"), Host(ip="10.9.9.9")], secrets=[TOKEN])
    finally:
        asyncio.run(enricher.aclose())
    monkeypatch.setenv("FIDO_TEST_ASSETS", TOKEN)
    config = tmp_path / "fido.toml"
    config.write_text(
        "[[enrichers]]\n"
        'type = "inventory"\n'
        'name = "assets"\n'
        f'url = "{service.url("/api/hosts")}"\n'
        'api_key_env = "FIDO_TEST_ASSETS"\n'
        'records_field = "results"\n'
        'next_field = "next"\n'
        'fields = { hostname = "name", ip = "primary_ip.address" }\n'
    )
    with fido.load_config(config).build() as pipeline:
        [built] = pipeline.enrichers
        assert built.stats()["hosts"] == 3
