"""The `inventory` enricher: host context from CMDB exports in CSV and JSON."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import fido
from fido import ConfigurationError, Criticality, Dimension, Host, HostContext
from fido.adapters.enrichers._inventory_rest import RestSource
from fido.adapters.enrichers._inventory_rows import Reader
from fido.adapters.enrichers.feeds import Feeds
from fido.adapters.enrichers.inventory import Inventory
from fido.testing import check_enricher
from tests.factories import event

DATA = Path(__file__).parent / "data" / "inventory"
FEEDS = Path(__file__).parent / "data" / "feeds"
JSON_FIELDS = {
    "hostname": "name",
    "fqdn": "network.fqdn",
    "ip": "network.addresses",
    "owner": "owner.team",
    "criticality": "business_criticality",
    "is_server": "role.server",
    "managed": "agent.managed",
    "av_installed": "agent.edr_installed",
    "av_running": "agent.edr_running",
    "missing_critical_patches": "patches.critical",
    "missing_high_patches": "patches.high",
    "location": "site",
}
HEADER = "hostname,fqdn,ip,owner,criticality\n"


def lookup(inventory: Inventory, host: Host) -> HostContext | None:
    return asyncio.run(inventory.enrich(host))


def found(inventory: Inventory, host: Host) -> HostContext:
    context = lookup(inventory, host)
    assert context is not None, host
    return context


def bump(path: Path, text: str | bytes) -> None:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


# -- CSV ------------------------------------------------------------------------------------


def test_csv_export_with_the_default_columns() -> None:
    inventory = Inventory(path=str(DATA / "cmdb_hosts.csv"), name="cmdb")
    stats = inventory.stats()
    assert (stats["rows"], stats["hosts"], stats["skipped"], stats["bad_values"]) == (7, 6, 1, 6)
    ws = found(inventory, Host(name="WS-042"))
    assert ws.source == "cmdb"
    assert ws.subject == Host(name="WS-042")
    assert ws.os == "Windows 11 Enterprise 24H2"  # the later of two rows wins
    assert (ws.criticality, ws.is_server, ws.managed) == (Criticality.MEDIUM, False, True)
    assert (ws.av_installed, ws.av_running) == (True, False)
    assert (ws.missing_critical_patches, ws.missing_high_patches) == (1, 5)
    assert (ws.groups, ws.tags, ws.location) == (
        ("workstations", "finance"),
        ("laptop",),
        "Berlin HQ",
    )
    assert ws.last_seen == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert ws.details["serial_number"] == "PF3KX9Q1"  # unmapped columns are details
    assert ws.details["cost_center"] == "CC-4100"
    assert ws.details["matched_by"] == "name"
    assert ws.details["record"] == {
        "hostname": "ws-042",
        "fqdn": "ws-042.corp.example",
        "ip": ["10.1.2.3"],
    }
    assert ws.fetched_at == datetime.fromisoformat(stats["loaded_at"])
    dc = found(inventory, Host(name="dc-01.CORP.example"))
    assert (dc.criticality, dc.groups) == (Criticality.CRITICAL, ("domain-controllers", "tier0"))
    assert dc.last_seen == datetime(2026, 11, 28, 6, 55, 10, tzinfo=UTC)
    assert dc.details["matched_by"] == "fqdn"
    payments = found(inventory, Host(ip="10.20.1.5"))  # the second of two addresses
    assert payments.owner == "Payments, Platform"
    assert payments.tags == ('prod,"pci-scope"',)
    assert payments.criticality is Criticality.CRITICAL
    assert payments.last_seen == datetime.fromtimestamp(1764300000, UTC)
    assert payments.details["matched_by"] == "ip"


def test_values_that_cannot_be_read_are_unknown() -> None:
    printer = found(Inventory(path=str(DATA / "cmdb_hosts.csv")), Host(name="printer-3"))
    assert printer.criticality is None  # "sometimes"
    assert printer.is_server is None  # "maybe"
    assert (printer.managed, printer.av_installed) == (True, False)  # 1 and 0
    assert printer.missing_critical_patches is None  # -3
    assert printer.missing_high_patches is None  # "lots"
    assert printer.last_seen is None  # "yesterday"
    assert printer.details["record"]["ip"] == []  # "not-an-ip"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (Host(name="ws-042"), "ws-042"),
        (Host(name="ws-042", ip="10.99.99.99"), "ws-042"),
        (Host(fqdn="ws-042.corp.example"), "ws-042"),
        (Host(ip="10.1.2.3"), "ws-042"),
        (Host(ip="10.0.0.10", name="dc-01"), "dc-01"),
        (Host(name="kiosk-07", fqdn="kiosk-07.other.example"), "kiosk-07"),  # row has no fqdn
        (Host(mac="aa:bb:cc:dd:ee:ff"), None),
        (Host(name="ws-042", fqdn="ws-042.lab.example"), None),  # another domain's ws-042
        (Host(name="ws-999", ip="10.1.2.3"), None),  # the address, but another name
        (Host(ip="10.1.2.4"), None),
        (Host(name="ws-04"), None),
    ],
)
def test_matching(host: Host, expected: str | None) -> None:
    context = lookup(Inventory(path=str(DATA / "cmdb_hosts.csv")), host)
    name = None if context is None else context.details["record"]["hostname"]
    assert name == expected


def test_excel_export_with_a_bom_crlf_semicolons_and_a_stray_latin1_byte() -> None:
    inventory = Inventory(
        path=str(DATA / "cmdb_export_excel.csv"),
        fields={
            "hostname": "Host Name",
            "ip": "ip address",  # column names match ignoring case
            "owner": "Assigned To",
            "criticality": "Business Criticality",
            "is_server": "Server",
            "av_installed": "Antivirus",
        },
    )
    assert inventory.stats()["bad_values"] == 2  # "nein", "ja"
    laptop = found(inventory, Host(name="LT-0815"))
    assert laptop.owner == "Jürgen M\ufffdller"
    assert laptop.criticality is Criticality.HIGH  # tier 2
    assert (laptop.is_server, laptop.av_installed) == (None, None)
    server = found(inventory, Host(ip="10.9.0.2"))
    assert (server.owner, server.is_server) == ("IT; Storage", True)
    assert "Host Name" not in server.details


def test_csv_delimiter_and_encoding_options(tmp_path: Path) -> None:
    path = tmp_path / "hosts.txt"
    path.write_bytes("hostname\towner\nws-1\tJos\xe9 \u00c5\n".encode("cp1252"))
    inventory = Inventory(path=str(path), delimiter="\t", encoding="cp1252")
    assert found(inventory, Host(name="ws-1")).owner == "José Å"


@pytest.mark.parametrize(
    ("body", "hosts", "skipped"),
    [
        ("ws-1,,10.0.0.1,a,low\n", 1, 0),
        ("ws-1,,10.0.0.1,a,low\nws-2,,10.0.0.2,a,low,extra\n", 1, 1),  # a shifted row
        ("ws-1,,10.0.0.1\n", 1, 0),  # short rows are padded
        ('ws-1,,10.0.0.1,"unterminated,low\nws-2,,,b,high\n', 1, 0),  # the quote eats on
        ("ws-1,,,a,low\n" + "ws-2,,,b," + "x" * 200_000 + "\n", 1, 1),  # field too large
        ("ws-1,,,a,low\n" + "x" * 300 + ",,,a,low\n", 1, 1),  # a name too long for a host
        ("ws-1,,,a,low\nws\x01bad,,,a,low\n", 1, 1),  # control characters
        ("ws-1,,,a,low\nws\x00nul,,,a,low\n", 1, 1),  # NUL
        ("ws-1,,,a,low\n,,,a,low\n", 1, 1),  # no key at all
        ("ws-1,,,a,low\n,,999.1.1.1,a,low\n", 1, 1),  # nor a valid address
        ("\n\nws-1,,,a,low\n\n", 1, 0),
    ],
)
def test_hostile_csv(tmp_path: Path, body: str, hosts: int, skipped: int) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(HEADER + body)
    stats = Inventory(path=str(path)).stats()
    assert (stats["hosts"], stats["skipped"]) == (hosts, skipped)


def test_an_overlong_text_value_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(HEADER + "ws-1,,," + "o" * 5000 + ",low\n")
    inventory = Inventory(path=str(path))
    assert found(inventory, Host(name="ws-1")).owner is None
    assert inventory.stats()["bad_values"] == 1
    assert csv.field_size_limit() == 131072  # the module-wide limit is left alone


# -- JSON -----------------------------------------------------------------------------------


def test_json_export_with_nested_fields() -> None:
    inventory = Inventory(path=str(DATA / "cmdb_hosts.json"), fields=JSON_FIELDS)
    stats = inventory.stats()
    assert (stats["rows"], stats["hosts"], stats["skipped"]) == (4, 2, 2)
    web = found(inventory, Host(ip="2001:db8::10"))
    assert (web.owner, web.criticality, web.is_server) == ("Web Platform", Criticality.HIGH, True)
    assert (web.av_installed, web.av_running, web.managed) == (True, True, True)
    assert (web.missing_critical_patches, web.missing_high_patches) == (0, 3)
    assert (web.groups, web.tags, web.location) == (("dmz", "web"), ("internet-facing",), "AMS-1")
    assert web.last_seen == datetime(2026, 11, 28, 5, 59, 0, 123456, tzinfo=UTC)
    assert web.details["asset_id"] == "A-000981"
    assert web.details["custom"] == {"backup": "daily"}
    assert "network" not in web.details  # used by a mapping
    jump = found(inventory, Host(name="JUMP-01.corp.example"))
    assert (jump.groups, jump.criticality) == (("admin-hosts", "tier0"), Criticality.CRITICAL)
    assert jump.last_seen == datetime.fromtimestamp(1764307200, UTC)  # milliseconds


@pytest.mark.parametrize(
    ("document", "records_field"),
    [
        ([{"hostname": "ws-1"}], None),
        ({"items": [{"hostname": "ws-1"}]}, None),
        ({"data": [{"hostname": "ws-1"}]}, None),
        ({"results": [{"hostname": "ws-1"}]}, None),
        ({"result": [{"hostname": "ws-1"}]}, None),
        ({"meta": {}, "payload": {"machines": [{"hostname": "ws-1"}]}}, "payload.machines"),
        ({"hosts": "no", "data": [{"hostname": "ws-1"}]}, None),
    ],
)
def test_json_shapes(tmp_path: Path, document: Any, records_field: str | None) -> None:
    path = tmp_path / "export"  # no extension: the content tells
    path.write_text(json.dumps(document))
    inventory = Inventory(path=str(path), records_field=records_field)
    assert found(inventory, Host(name="ws-1")).details["matched_by"] == "name"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"hosts": [', "not JSON"),
        ('{"hosts": [{"hostname": NaN}]}', "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
        ('{"machines": []}', "no list of hosts"),
        ('"hosts"', "no list of hosts"),
        ('[1, 2, "three"]', "not one host"),
        ('[{"owner": "nobody"}]', "not one host"),
    ],
)
def test_bad_json_is_a_configuration_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hosts.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        Inventory(path=str(path))


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("low", Criticality.LOW),
        ("Medium", Criticality.MEDIUM),
        ("moderate", Criticality.MEDIUM),
        ("HIGH", Criticality.HIGH),
        ("critical", Criticality.CRITICAL),
        ("Very  High", Criticality.CRITICAL),
        ("mission critical", Criticality.CRITICAL),
        ("0", Criticality.CRITICAL),
        (1, Criticality.CRITICAL),
        ("2", Criticality.HIGH),
        (3, Criticality.MEDIUM),
        ("4", Criticality.LOW),
        ("tier 0", Criticality.CRITICAL),
        ("Tier-1", Criticality.CRITICAL),
        ("tier2", Criticality.HIGH),
        ("1 - most critical", Criticality.CRITICAL),
        ("3 - less critical", Criticality.MEDIUM),
        ("gold", Criticality.CRITICAL),  # from criticality_values
        ("", None),
        (None, None),
    ],
)
def test_criticality_spellings(value: object, expected: Criticality | None) -> None:
    reader = Reader({"gold": Criticality.CRITICAL})
    assert reader.criticality(value) is expected
    assert reader.bad == 0


@pytest.mark.parametrize("value", ["5", 5, "10", "1.5", "tier 9", "urgent", True, 2.0, ["high"]])
def test_criticality_that_cannot_be_read(value: object) -> None:
    reader = Reader({})
    assert reader.criticality(value) is None
    assert reader.bad == 1


@pytest.mark.parametrize(
    ("value", "expected", "bad"),
    [
        *((word, True, 0) for word in ("yes", "Y", "true", "T", "on", "1", True, 1)),
        *((word, False, 0) for word in ("no", "N", "FALSE", "f", "off", "0", False, 0)),
        ("", None, 0),
        (None, None, 0),
        ("maybe", None, 1),
        (2, None, 1),
        ([True], None, 1),
    ],
)
def test_yes_and_no(value: object, expected: bool | None, bad: int) -> None:
    reader = Reader({})
    assert reader.flag(value) is expected
    assert reader.bad == bad


@pytest.mark.parametrize(
    ("value", "expected", "bad"),
    [
        (3, 3, 0),
        ("3", 3, 0),
        (" 12 ", 12, 0),
        (4.0, 4, 0),
        ("0", 0, 0),
        ("", None, 0),
        (-1, None, 1),
        ("1.5", None, 1),
        ("nan", None, 1),
        ("inf", None, 1),
        (True, None, 1),
        ("many", None, 1),
    ],
)
def test_counts(value: object, expected: int | None, bad: int) -> None:
    reader = Reader({})
    assert reader.count(value) == expected
    assert reader.bad == bad


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T07:12:00Z", datetime(2026, 11, 28, 7, 12, tzinfo=UTC)),
        ("2026-11-28T08:12:00+01:00", datetime(2026, 11, 28, 7, 12, tzinfo=UTC)),
        ("2026-11-28 07:12:00", datetime(2026, 11, 28, 7, 12, tzinfo=UTC)),
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
        (1764300000, datetime.fromtimestamp(1764300000, UTC)),
        ("1764300000", datetime.fromtimestamp(1764300000, UTC)),
        (1764300000123, datetime.fromtimestamp(1764300000.123, UTC)),
        ("yesterday", None),
        (10**30, None),
        (True, None),
    ],
)
def test_times(value: object, expected: datetime | None) -> None:
    assert Reader({}).time(value) == expected


def test_lists_and_addresses() -> None:
    reader = Reader({})
    assert reader.names("a; b |c;;a") == ("a", "b", "c")
    assert reader.names(["x", 2, "", None]) == ("x", "2")
    assert reader.names({"a": 1}) == ()
    assert reader.addresses("10.0.0.1, 10.0.0.2;2001:DB8::1 | 10.0.0.1") == [
        "10.0.0.1",
        "10.0.0.2",
        "2001:db8::1",
    ]
    assert reader.addresses(["10.0.0.1", "bad", 7]) == ["10.0.0.1"]
    assert reader.bad == 3


# -- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path": "missing.csv"}, "path: no inventory file"),
        ({"path": ""}, "path is the path"),
        ({"path": "hosts.csv", "format": "xml"}, "format is one of"),
        ({"path": "hosts.csv", "fields": {"colour": "c"}}, "fields.colour is not a field"),
        ({"path": "hosts.csv", "fields": {"owner": ""}}, "fields.owner is a column"),
        ({"path": "hosts.csv", "fields": ["owner"]}, "fields is a table"),
        ({"path": "hosts.csv", "records_field": ""}, "records_field is a key"),
        ({"path": "hosts.csv", "delimiter": ";;"}, "delimiter is one character"),
        ({"path": "hosts.csv", "encoding": "klingon"}, "encoding: unknown"),
        ({"path": "hosts.csv", "criticality_values": {"x": "huge"}}, "criticality_values.x"),
        ({"path": "hosts.csv", "criticality_values": ["x"]}, "criticality_values is a table"),
        ({"path": "hosts.csv", "check_interval": -1}, "check_interval"),
        ({"path": "hosts.csv", "reload": 1}, "reload is true or false"),
        ({"path": "empty.csv"}, "no header line"),
        ({"path": "hosts.csv", "format": "json"}, "not JSON"),
    ],
)
def test_bad_options_name_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], message: str
) -> None:
    (tmp_path / "hosts.csv").write_text(HEADER + "ws-1,,,a,low\n")
    (tmp_path / "empty.csv").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=message):
        Inventory(**options)


# -- reloading ------------------------------------------------------------------------------


def test_a_changed_export_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(HEADER + "ws-1,,,alice,low\n")
    inventory = Inventory(path=str(path), check_interval=0)
    bump(path, HEADER + "ws-1,,,bob,high\nws-2,,,carol,low\n")
    assert lookup(inventory, Host(name="ws-3")) is None  # starts the reload, in a thread
    inventory._reloader.join(10)
    assert found(inventory, Host(name="ws-1")).owner == "bob"
    assert found(inventory, Host(name="ws-2")).owner == "carol"
    assert inventory.stats()["reloads"] == 1
    assert (inventory.stats()["lookups"], inventory.stats()["hits"]) == (3, 2)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("hosts.csv", HEADER),  # only the header: an export being written
        ("hosts.csv", ""),
        ("hosts.csv", HEADER + ",,,nobody,low\n"),
        ("hosts.json", '[{"hostname": "ws-1"'),
    ],
)
def test_a_failed_reload_keeps_the_hosts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, bad: str
) -> None:
    path = tmp_path / name
    good = HEADER + "ws-1,,,alice,low\n" if name.endswith(".csv") else '[{"hostname": "ws-1"}]'
    path.write_text(good)
    inventory = Inventory(path=str(path), check_interval="1h")
    bump(path, bad)
    with caplog.at_level(logging.WARNING, logger="fido.adapters.inventory"):
        inventory.reload()
    assert lookup(inventory, Host(name="ws-1")) is not None
    assert inventory.stats()["reload_failures"] == 1
    [record] = [r for r in caplog.records if r.name == "fido.adapters.inventory"]
    assert "keeping its 1 hosts" in record.getMessage()
    inventory.reload()  # not tried again until the file changes
    assert inventory.stats()["reload_failures"] == 1


def test_a_deleted_export_keeps_the_hosts(tmp_path: Path) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(HEADER + "ws-1,,,alice,low\n")
    inventory = Inventory(path=str(path), check_interval=0)
    path.unlink()
    lookup(inventory, Host(name="ws-1"))
    inventory._reloader.join(10)
    assert found(inventory, Host(name="ws-1")).owner == "alice"
    assert inventory.stats()["reload_failures"] == 1
    asyncio.run(inventory.aclose())


# -- the contract, the configuration, the pipeline ------------------------------------------


def test_inventory_keeps_the_enricher_protocol() -> None:
    inventory = Inventory(path=str(DATA / "cmdb_hosts.csv"), name="cmdb")
    check_enricher(inventory)
    check_enricher(inventory, [Host(name="ws-042"), Host(ip="10.0.0.10"), Host(name="nope")])
    assert isinstance(inventory, fido.Enricher)
    assert not inventory.accepts(fido.Observable.parse("10.1.2.3"))
    assert lookup(inventory, fido.User("bdoe")) is None  # type: ignore[arg-type]
    assert "cmdb" in repr(inventory)
    assert all(isinstance(v, int) for k, v in inventory.stats().items() if k != "loaded_at")


def test_inventory_built_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    (folder / "exports").mkdir(parents=True)
    (folder / "exports" / "hosts.json").write_bytes((DATA / "cmdb_hosts.json").read_bytes())
    config = folder / "fido.toml"
    fields = ", ".join(f'{key} = "{value}"' for key, value in JSON_FIELDS.items())
    config.write_text(
        f"""
[store]
type = "memory"

[[enrichers]]
type = "inventory"
name = "cmdb"
path = "exports/hosts.json"
records_field = "hosts"
check_interval = "2m"
criticality_values = {{ "gold" = "critical" }}
fields = {{ {fields} }}
"""
    )
    monkeypatch.chdir(tmp_path)
    with fido.load_config(config).build() as pipeline:
        [inventory] = pipeline.enrichers
        assert isinstance(inventory, Inventory)
        assert found(inventory, Host(name="web-01")).owner == "Web Platform"
        assert inventory._reloader.interval == 120


def test_pipeline_uses_feeds_and_inventory() -> None:
    feeds = Feeds(name="abuse-ch", path=str(FEEDS / "malwarebazaar_full.csv"), reliability="B")
    inventory = Inventory(name="cmdb", path=str(DATA / "cmdb_hosts.csv"))
    with fido.Pipeline(enrichers=[feeds, inventory]) as pipeline:
        incident = pipeline.process(event())  # ws-042 (10.1.2.3) and the Emotet hash
    sources = {(f.source, type(f).__name__) for f in incident.findings}
    assert {("abuse-ch", "Reputation"), ("cmdb", "HostContext")} <= sources
    contributions = incident.assessment.contributions
    threat = [c for c in contributions if c.source == "abuse-ch"]
    machine = [c for c in contributions if c.source == "cmdb"]
    assert threat
    assert all(c.dimension is Dimension.THREAT for c in threat)
    assert machine
    assert all(c.dimension is Dimension.MACHINE for c in machine)
    assert incident.assessment.threat > 0
    assert incident.assessment.machine > 0


# -- the REST source's next-page links ------------------------------------------------------


def rest_source(url: str) -> RestSource:
    return RestSource(
        url=url,
        api_key="token-never-sent-elsewhere",
        auth_header="Authorization",
        auth_scheme="Bearer",
        records_field="results",
        next_field="links.next",
        max_pages=10,
        verify=True,
        ca_file=None,
        proxy=None,
        request_timeout=5.0,
    )


@pytest.mark.parametrize(
    ("link", "followed"),
    [
        ("/api/hosts?page=2", "https://cmdb.example/api/hosts?page=2"),
        ("?page=2", "https://cmdb.example/api/hosts?page=2"),
        ("https://CMDB.example:443/api/hosts?page=2", "https://CMDB.example:443/api/hosts?page=2"),
        ("http://cmdb.example/api/hosts?page=2", None),  # downgraded: the token in clear
        ("http://cmdb.example:443/api/hosts?page=2", None),
        ("https://cmdb.example:8443/api/hosts?page=2", None),
        ("https://cmdb.example.evil.example/api/hosts", None),
        ("//evil.example/api/hosts", None),
        ("https://cmdb.example:x/api", None),
    ],
)
def test_a_next_link_is_followed_only_on_the_same_scheme_host_and_port(
    link: str, followed: str | None
) -> None:
    source = rest_source("https://cmdb.example/api/hosts")
    body = {"results": [], "links": {"next": link}}
    if followed is None:
        with pytest.raises(ValueError, match="not on the inventory's scheme, host and port"):
            source._next(body, source.url)
    else:
        assert source._next(body, source.url) == followed
