"""The `feeds` enricher: abuse.ch exports, plain lists and STIX bundles, read from files."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import fido
from fido import ConfigurationError, Observable, Reliability, Reputation, Verdict
from fido.adapters.enrichers._feed_formats import detect
from fido.adapters.enrichers._stix import parse_pattern
from fido.adapters.enrichers.feeds import Feeds
from fido.testing import check_enricher
from tests.factories import SHA256

DATA = Path(__file__).parent / "data" / "feeds"
MB_SHA256 = "4b00e68ebeac62c645cdc643ff61c308dc06fafa81d7012c96018dff083421ae"
MB_MD5 = "d1a3c9065958156714c0d64c8521a1e0"
MB_SHA1 = "51edafc176f318b2d99ce4085fb8aba1d75b1147"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def lookup(feeds: Feeds, text: str) -> Reputation | None:
    return asyncio.run(feeds.enrich(Observable.parse(text)))


def hit(feeds: Feeds, text: str) -> Reputation:
    found = lookup(feeds, text)
    assert found is not None, text
    return found


def feed(path: Path, **options: Any) -> Feeds:
    made = Feeds(path=str(path), **options)
    made._clock = lambda: NOW
    return made


def bump(path: Path, text: str | bytes) -> None:
    """Rewrite a file and move its modification time on (coarse clocks see the change)."""
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


# -- abuse.ch formats ----------------------------------------------------------------------


def test_malwarebazaar_indexes_every_hash_of_a_row() -> None:
    feeds = feed(DATA / "malwarebazaar_full.csv", reliability="B")
    stats = feeds.stats()
    assert stats["files"][0]["format"] == "malwarebazaar"
    assert (stats["indicators"], stats["skipped"]) == (14, 1)  # 4 rows x 3, 2 of a bad row
    for text in (MB_SHA256, MB_MD5, MB_SHA1.upper()):
        found = hit(feeds, text)
        assert found.verdict is Verdict.MALICIOUS
        assert found.reliability is Reliability.B
        assert found.label == "AgentTesla"
        assert found.tags == ("AgentTesla",)
        assert found.link == f"https://bazaar.abuse.ch/sample/{MB_SHA256}/"
        assert found.details["file_name"] == "invoice_2611.exe"
        assert found.details["feed"] == str(DATA / "malwarebazaar_full.csv")
        assert found.subject == Observable.parse(text)
        assert found.fetched_at == datetime.fromisoformat(stats["files"][0]["loaded_at"])
    unsigned = hit(feeds, "1abbb342435f240ab964b5cbda1a37d47a0cd09f8bce56a35003c8833afded79")
    assert (unsigned.label, unsigned.tags) == (None, ())  # signature "n/a"
    quoted = hit(feeds, "afc5f7af6da0fe0ddd7838b545a8523c9242814536e32082cb642b45c92a9b1c")
    assert quoted.details["file_name"] == 'report "final", v2.zip'
    partial = hit(feeds, "9569403845813221070c4ed0fb86551d")  # bad sha256, md5 kept
    assert partial.link is None
    assert lookup(feeds, "0" * 64) is None


def test_urlhaus_normalizes_urls_and_reads_tags() -> None:
    feeds = feed(DATA / "urlhaus.csv")
    assert (feeds.stats()["indicators"], feeds.stats()["skipped"]) == (3, 2)
    found = hit(feeds, "https://CDN.evil-updates.example/payload/stage2.ps1")
    assert found.tags == ("ps1", "AsyncRAT")
    assert found.label == "malware_download"
    assert found.link == "https://urlhaus.abuse.ch/url/3311999/"
    assert found.details["url_status"] == "online"
    assert hit(feeds, "hxxp://invoice-portal[.]example/download.php?id=42&t=x").tags == ()
    assert hit(feeds, "http://198.51.100.23:40271/i").details["reporter"] == "geenensp"
    assert lookup(feeds, "http://203.0.113.9/bins/x86") is None  # its row has 8 columns
    assert lookup(feeds, "https://cdn.evil-updates.example/") is None


@pytest.mark.parametrize("name", ["feodo_ipblocklist.csv", "feodo_ipblocklist.txt"])
def test_feodo_blocklists(name: str) -> None:
    feeds = feed(DATA / name)
    assert feeds.stats()["files"][0]["format"] == "feodo"
    found = hit(feeds, "203.0.113.45")
    assert hit(feeds, "198.51.100.77").verdict is Verdict.MALICIOUS
    assert lookup(feeds, "203.0.113.46") is None
    if name.endswith(".csv"):
        assert (found.label, found.tags) == ("QakBot", ("QakBot",))
        assert found.details["port"] == 443
        assert found.link == "https://feodotracker.abuse.ch/browse/host/203.0.113.45/"
        assert feeds.stats()["skipped"] == 1  # 198.51.100.300
    else:
        assert hit(feeds, "2001:db8::c2").label is None


# -- one indicator per line ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None),
        ("evil.example", None),
        ("phish-kit.example", "*.phish-kit.example"),
        ("a.b.phish-kit.example", "*.phish-kit.example"),
        ("http://login-microsoft.example/owa", None),
        ("billing@invoice-portal.example", None),
        ("203.0.113.0", "203.0.113.0/24"),
        ("203.0.113.255", "203.0.113.0/24"),
        ("198.51.100.7", None),
        ("2001:db8:bad:ffff::1", "2001:db8:bad::/48"),
        ("dropper.scr", None),
        ("http://frag.example/a#b", None),
    ],
)
def test_lines_hits(text: str, matched: str | None) -> None:
    found = hit(feed(DATA / "indicators.txt", tags=["blocklist"], label="internal-list"), text)
    assert found.details.get("matched") == matched
    assert found.tags == ("blocklist",)
    assert found.label == "internal-list"


@pytest.mark.parametrize(
    "text",
    [
        "sub.evil.example",  # exact by default: a parent entry does not match
        "203.0.114.1",
        "198.51.100.8",
        "2001:db8:bae::1",
        "http://login-microsoft.example/",
        "other@invoice-portal.example",
        "notphish-kit.example",
    ],
)
def test_lines_misses(text: str) -> None:
    assert lookup(feed(DATA / "indicators.txt"), text) is None


def test_lines_comments_and_counts() -> None:
    feeds = feed(DATA / "indicators.txt")
    assert (feeds.stats()["indicators"], feeds.stats()["skipped"]) == (10, 1)
    assert hit(feeds, "203.0.113.9").details["comment"] == "bulletproof hosting range"
    assert feeds.accepts(Observable.parse("8.8.8.8"))
    assert not feeds.accepts(Observable.parse("a" * 40))  # no SHA-1 in this list
    assert not feeds.accepts(fido.Host(name="ws-042"))


def test_subdomains_option_makes_domains_match_their_subdomains(tmp_path: Path) -> None:
    path = tmp_path / "domains.txt"
    path.write_text("evil.example\n")
    feeds = feed(path, subdomains=True)
    assert hit(feeds, "a.evil.example").details["matched"] == "*.evil.example"
    assert hit(feeds, "evil.example").details["matched"] == "*.evil.example"
    assert lookup(feed(path), "a.evil.example") is None


LONG = "a" * 70_000


@pytest.mark.parametrize(
    ("content", "indicators", "skipped"),
    [
        (b"\xef\xbb\xbfevil.example\n", 1, 0),  # byte order mark
        (b"evil.example\r\nbad.example\r\n", 2, 0),  # CRLF
        (b"evil.example\nb\xe4d.example\n", 1, 1),  # a byte that is not UTF-8
        (b"evil.example\n" + LONG.encode() + b".example\n", 1, 1),  # overlong line
        (b"evil.example\n" + b"f" * 63 + b"\n", 1, 1),  # a hash one digit short
        (b"evil.example\n" + b"g" * 64 + b"\n", 1, 1),  # not hex
        (b"evil.example\n\x00\x00\x00\n", 1, 1),  # NUL bytes
        (b"evil.example\n'quoted.example'\n\"x\"\n", 1, 2),
        (b"evil.example\nevil\x0bexample\n", 1, 1),  # a vertical tab does not split a line
        (b"evil.example\n10.0.0.0/33\n", 1, 1),
        (b"evil.example\n*.\n", 1, 1),
        (b"\n\n# only comments\n   \n", 0, 0),
    ],
)
def test_hostile_lines_are_skipped_and_counted(
    tmp_path: Path, content: bytes, indicators: int, skipped: int
) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(content)
    stats = feed(path, format="lines").stats()
    assert (stats["indicators"], stats["skipped"]) == (indicators, skipped)


MB_HEAD = (
    '# "first_seen_utc","sha256_hash","md5_hash","sha1_hash","reporter","file_name",'
    '"file_type_guess","mime_type","signature","clamav","vtpercent","imphash","ssdeep","tlsh"\n'
)


def mb_row(sha256: str = MB_SHA256, *, file_name: str = "a.exe", signature: str = "Emotet") -> str:
    values = ["2026-11-27 00:00:00", sha256, MB_MD5, MB_SHA1, "r", file_name, "exe", "m"]
    values += [signature, "n/a", "n/a", "n/a", "n/a", "n/a"]
    return ", ".join(f'"{v}"' for v in values) + "\n"


@pytest.mark.parametrize(
    ("body", "indicators", "skipped"),
    [
        (mb_row(), 3, 0),
        (mb_row().replace('", "', '","'), 3, 0),  # no space after the commas
        (mb_row(file_name='say ""hi""'), 3, 0),  # doubled quotes inside a value
        (mb_row(file_name='broken "quote'), 0, 1),  # a stray quote: the row is skipped
        (mb_row()[:-2] + "\n", 0, 1),  # an unterminated quote
        (mb_row() + '"only", "three", "columns"\n', 3, 1),
        (mb_row() + mb_row(file_name="x" * 70_000), 3, 1),  # overlong
        (mb_row() + mb_row(file_name="caf\udce9"), 3, 1),  # not UTF-8
        (mb_row(sha256="z" * 64), 2, 0),  # md5 and sha1 still count
        (mb_row(signature="  "), 3, 0),
    ],
)
def test_hostile_csv_rows(tmp_path: Path, body: str, indicators: int, skipped: int) -> None:
    path = tmp_path / "full.csv"
    path.write_bytes((MB_HEAD + body).encode("utf-8", "surrogateescape"))
    if indicators == 0:
        with pytest.raises(ConfigurationError, match="not one indicator"):
            feed(path)
        return
    stats = feed(path).stats()
    assert (stats["indicators"], stats["skipped"]) == (indicators, skipped)


def test_csv_without_its_header_uses_the_documented_columns(tmp_path: Path) -> None:
    path = tmp_path / "full.csv"
    path.write_text("# no header here\n" + mb_row())
    assert hit(feed(path, format="malwarebazaar"), MB_SHA256).label == "Emotet"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "bundle", "objects": []}', "stix"),
        ("  [\n]", "stix"),
        (MB_HEAD, "malwarebazaar"),
        (
            "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n",
            "urlhaus",
        ),
        ('# "first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"', "feodo"),
        ("# abuse.ch Feodo Tracker Botnet C2 IP Blocklist\n203.0.113.1\n", "feodo"),
        ("evil.example\n", "lines"),
        ("", "lines"),
    ],
)
def test_format_detection(text: str, expected: str) -> None:
    assert detect(text) == expected


# -- STIX ----------------------------------------------------------------------------------


def test_stix_bundle() -> None:
    feeds = feed(DATA / "stix_bundle.json")
    stats = feeds.stats()
    file = stats["files"][0]
    assert (file["format"], file["indicators"], file["unsupported"]) == ("stix", 9, 3)
    assert (stats["expired"], stats["revoked"], stats["skipped"]) == (1, 1, 3)
    beacon = hit(feeds, "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f")
    assert beacon.label == "Cobalt Strike beacon"
    assert beacon.tags == ("cobalt-strike", "malicious-activity")
    assert beacon.score == 85
    assert beacon.link == "https://intel.example/reports/cs-beacon-2026-11"
    assert beacon.details["stix_id"] == "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
    for text in (
        "secure-login.example",
        "https://secure-login.example/owa/auth.php",
        "it-support@secure-login.example",
        "2001:db8:c2::1",
        "0cc175b9c0f1b6a831c399e269772661",
        "loader-v2.example",  # the later version of the indicator
    ):
        assert hit(feeds, text).verdict is Verdict.MALICIOUS
    assert hit(feeds, "192.0.2.127").details["matched"] == "192.0.2.0/25"
    for text in (
        "192.0.2.128",
        "expired-c2.example",  # valid_until passed
        "198.51.100.200",  # revoked
        "92eb5ffee6ae2fec3ad71c777531578f",  # inside an AND
        "203.0.113.80",  # inside a FOLLOWEDBY
        "loader-v1.example",  # replaced by a later version
        "future-campaign.example",  # valid_from not reached
    ):
        assert lookup(feeds, text) is None, text


def test_stix_validity_is_checked_at_look_up(tmp_path: Path) -> None:
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    bundle = {
        "type": "bundle",
        "objects": [
            {
                "type": "indicator",
                "id": "indicator--1",
                "pattern": "[domain-name:value = 'soon-gone.example']",
                "pattern_type": "stix",
                "valid_from": "2026-01-01T00:00:00Z",
                "valid_until": until.isoformat().replace("+00:00", "Z"),
            }
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    feeds = feed(path)
    assert hit(feeds, "soon-gone.example").details["valid_until"] == until.isoformat()
    feeds._clock = lambda: until
    assert lookup(feeds, "soon-gone.example") is None
    future = feed(DATA / "stix_bundle.json")
    future._clock = lambda: datetime(2099, 1, 2, tzinfo=UTC)
    assert lookup(future, "future-campaign.example") is not None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[file:hashes.'SHA-256' = 'ab']", [("sha256", "ab")]),
        ("[file:hashes.SHA256 = 'ab']", [("sha256", "ab")]),
        ("[file:hashes.'SHA-1' = 'ab']", [("sha1", "ab")]),
        ("[file:hashes.MD5 = 'ab']", [("md5", "ab")]),
        ("[file:name = 'a.exe']", [("filename", "a.exe")]),
        ("[ipv4-addr:value = '192.0.2.0/24']", [("ipv4", "192.0.2.0/24")]),
        ("[ipv6-addr:value = '2001:db8::1']", [("ipv6", "2001:db8::1")]),
        ("[domain-name:value='a.example']", [("domain", "a.example")]),
        ("[url:value = 'http://a.example/it\\'s']", [("url", "http://a.example/it's")]),
        ("[email-addr:value = 'a@b.example']", [("email", "a@b.example")]),
        (
            "[domain-name:value = 'a.example' OR url:value = 'http://b.example/']",
            [("domain", "a.example"), ("url", "http://b.example/")],
        ),
        (
            "[domain-name:value = 'a.example'] OR [ipv4-addr:value = '192.0.2.1']",
            [("domain", "a.example"), ("ipv4", "192.0.2.1")],
        ),
        ("[process:name = 'x.exe']", []),  # well formed, nothing to index
        ("[domain-name:value = 'a.example' OR process:name = 'x']", [("domain", "a.example")]),
        ("[domain-name:value = 'a.example' AND url:value = 'http://a.example/']", None),
        ("[domain-name:value = 'a'] FOLLOWEDBY [domain-name:value = 'b']", None),
        ("[domain-name:value = 'a.example'] AND [domain-name:value = 'b.example']", None),
        ("[domain-name:value = 'a.example'] WITHIN 300 SECONDS", None),
        ("[domain-name:value = 'a.example'] REPEATS 5 TIMES", None),
        ("[domain-name:value != 'a.example']", None),
        ("[domain-name:value LIKE '%.example']", None),
        ("[domain-name:value MATCHES '^a']", None),
        ("[ipv4-addr:value ISSUBSET '192.0.2.0/24']", None),
        ("[file:size = 1024]", None),
        ("([domain-name:value = 'a.example'])", None),
        ("[domain-name:value = 'a.example'", None),
        ("domain-name:value = 'a.example'", None),
        ("[domain-name:value = 'a.example'] OR", None),
        ("[]", None),
        ("", None),
        ("[" * 100_000, None),
    ],
)
def test_stix_patterns(pattern: str, expected: list[tuple[str, str]] | None) -> None:
    assert parse_pattern(pattern) == expected


@pytest.mark.parametrize(
    "objects",
    [
        [{"type": "indicator", "pattern": "[domain-name:value = 'bad domain']"}],
        [{"type": "indicator", "pattern": "[file:hashes.MD5 = 'xyz']"}],
        [{"type": "indicator", "pattern": "[ipv4-addr:value = '2001:db8::1']"}],
        [{"type": "indicator", "pattern": "[url:value = 'http://a.example/']", "valid_until": 5}],
        ["not an object"],
    ],
)
def test_stix_malformed_objects_make_a_feed_that_cannot_load(
    tmp_path: Path, objects: list[Any]
) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"type": "bundle", "objects": objects}))
    with pytest.raises(ConfigurationError, match="not one indicator"):
        feed(path)


@pytest.mark.parametrize(
    "text",
    ['{"type": "bundle"', '{"type": "bundle"}', '"a string"', "[" * 50_000, '{"x": NaN}'],
)
def test_stix_that_is_not_a_bundle_is_a_configuration_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"bundle\.json"):
        feed(path, format="stix")


def test_stix_forms_other_than_a_bundle(tmp_path: Path) -> None:
    one = {"type": "indicator", "pattern": "[domain-name:value = 'one.example']"}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(one))
    assert hit(feed(path), "one.example").label is None
    path.write_text(json.dumps([one]))
    assert hit(feed(path), "one.example").verdict is Verdict.MALICIOUS
    path.write_text(json.dumps({"objects": [one]}))  # a TAXII envelope
    assert hit(feed(path), "one.example").verdict is Verdict.MALICIOUS


# -- several feeds, options ----------------------------------------------------------------


def test_the_strongest_hit_wins_and_names_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("198.51.100.7\n")
    (tmp_path / "b.txt").write_text("198.51.100.0/24\n")
    feeds = Feeds(
        feeds=[
            {"path": "a.txt", "verdict": "suspicious", "reliability": "A", "tags": ["scanner"]},
            {"path": "b.txt", "reliability": "D", "tags": "c2"},
            {"path": "a.txt", "reliability": "B"},
        ],
        feeds_dir=str(tmp_path),
        verdict="malicious",
    )
    found = hit(feeds, "198.51.100.7")
    assert (found.verdict, found.reliability) == (Verdict.MALICIOUS, Reliability.B)
    assert found.details["feed"] == str(tmp_path / "a.txt")
    assert found.details["also_in"] == [str(tmp_path / "b.txt"), str(tmp_path / "a.txt")]
    assert found.tags == ("c2", "scanner")
    assert hit(feeds, "198.51.100.8").reliability is Reliability.D


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give a feed file"),
        ({"path": "missing.txt"}, "path: no feed file at"),
        ({"path": "list.txt", "format": "csv"}, "format is one of"),
        ({"path": "list.txt", "verdict": "unknown"}, "verdict is one of"),
        ({"path": "list.txt", "reliability": "Z"}, "reliability is a letter"),
        ({"path": "list.txt", "reliability": 3}, "reliability is a letter"),
        ({"path": "list.txt", "tags": [1]}, "tags is a list of strings"),
        ({"path": "list.txt", "tags": 1}, "tags is a list of strings"),
        ({"path": "list.txt", "feeds_dir": 1}, "feeds_dir is the path of a folder"),
        ({"path": "list.txt", "subdomains": "yes"}, "subdomains is true or false"),
        ({"path": "list.txt", "label": 5}, "label is a string"),
        ({"path": "list.txt", "check_interval": "soon"}, "check_interval"),
        ({"path": "list.txt", "reload": "yes"}, "reload is true or false"),
        ({"feeds": {"path": "list.txt"}}, "feeds is a list of tables"),
        ({"feeds": ["list.txt"]}, r"feeds\[0\] is a table"),
        ({"feeds": [{"path": "list.txt", "colour": "red"}]}, r"unknown option feeds\[0\].colour"),
        ({"feeds": [{"path": "list.txt", "verdict": "bad"}]}, r"feeds\[0\].verdict is one of"),
        ({"feeds": [{"format": "lines"}]}, r"feeds\[0\].path is the path"),
        ({"path": "garbage.txt"}, "not one indicator could be read as lines"),
    ],
)
def test_bad_options_name_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], message: str
) -> None:
    (tmp_path / "list.txt").write_text("evil.example\n")
    (tmp_path / "garbage.txt").write_text("no indicator here\nnor here\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=message):
        Feeds(**options)


# -- reloading -----------------------------------------------------------------------------


def test_a_changed_file_is_reloaded_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("evil.example\n")
    feeds = feed(path, check_interval=0)
    assert lookup(feeds, "worse.example") is None
    bump(path, "worse.example\n")
    assert lookup(feeds, "other.example") is None  # starts the reload, in a thread
    feeds._reloader.join(10)
    assert lookup(feeds, "worse.example") is not None
    assert lookup(feeds, "evil.example") is None
    assert feeds.stats()["reloads"] == 1
    assert feeds.stats()["lookups"] == 4
    assert feeds.stats()["hits"] == 1


def test_the_check_interval_spaces_the_checks(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("evil.example\n")
    feeds = feed(path, check_interval="1h")
    bump(path, "worse.example\n")
    lookup(feeds, "worse.example")
    feeds._reloader.join(10)
    assert lookup(feeds, "worse.example") is None
    feeds.reload()  # on demand
    assert lookup(feeds, "worse.example") is not None


def test_reload_false_never_reloads(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("evil.example\n")
    feeds = feed(path, check_interval=0, reload=False)
    bump(path, "worse.example\n")
    lookup(feeds, "worse.example")
    feeds._reloader.join(10)
    assert lookup(feeds, "evil.example") is not None


GOOD_PATTERN = "[domain-name:value = 'evil.example']"


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        (
            "bundle.json",
            json.dumps({"objects": [{"type": "indicator", "pattern": GOOD_PATTERN}]}),
            '{"objects": [ truncated',
        ),
        ("list.txt", "evil.example\n", "no indicator here\n"),
        ("list.txt", "evil.example\n", ""),  # emptied: taken for a file being written
        ("list.txt", "evil.example\n", b"\xff\xfe\x00\x00"),
    ],
)
def test_a_failed_reload_keeps_the_indicators(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, good: str, bad: str | bytes
) -> None:
    path = tmp_path / name
    path.write_text(good)
    feeds = feed(path, check_interval=0)
    bump(path, bad)
    with caplog.at_level(logging.WARNING, logger="fido.adapters.feeds"):
        feeds.reload()
    assert lookup(feeds, "evil.example") is not None
    assert feeds.stats()["reload_failures"] == 1
    [record] = [r for r in caplog.records if r.name == "fido.adapters.feeds"]
    assert "keeping its 1 indicators" in record.getMessage()
    feeds.reload()  # the same bad file is not tried again
    assert feeds.stats()["reload_failures"] == 1
    bump(path, good.replace("evil", "worse"))
    feeds.reload()
    assert lookup(feeds, "worse.example") is not None


def test_a_deleted_file_keeps_its_indicators_until_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("evil.example\n")
    feeds = feed(path, check_interval=0)
    path.unlink()
    lookup(feeds, "evil.example")
    feeds._reloader.join(10)
    assert lookup(feeds, "evil.example") is not None
    bump(path, "worse.example\n")
    feeds.reload()
    assert lookup(feeds, "worse.example") is not None
    assert feeds.stats()["reload_failures"] == 1


def test_aclose_stops_reloading(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("evil.example\n")
    feeds = feed(path, check_interval=0)
    asyncio.run(feeds.aclose())
    bump(path, "worse.example\n")
    lookup(feeds, "worse.example")
    feeds._reloader.join(10)
    assert lookup(feeds, "worse.example") is None


# -- the contract --------------------------------------------------------------------------


def test_feeds_keep_the_enricher_protocol() -> None:
    feeds = Feeds(
        name="abuse-ch",
        feeds=[{"path": str(path)} for path in sorted(DATA.iterdir())],
    )
    check_enricher(feeds)
    check_enricher(feeds, [Observable.parse(MB_SHA256), Observable.parse("203.0.113.45")])
    assert isinstance(feeds, fido.Enricher)
    assert "abuse-ch" in repr(feeds)
    numbers = {k: v for k, v in feeds.stats().items() if k != "files"}
    assert all(isinstance(v, int) for v in numbers.values())


def test_feeds_built_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    (folder / "feeds").mkdir(parents=True)
    (folder / "feeds" / "full.csv").write_bytes((DATA / "malwarebazaar_full.csv").read_bytes())
    (folder / "feeds" / "c2.txt").write_text("198.51.100.7\n")
    (folder / "single.txt").write_text("evil.example\n")
    config = folder / "fido.toml"
    config.write_text(
        """
[store]
type = "memory"

[[enrichers]]
type = "feeds"
name = "abuse-ch"
feeds_dir = "feeds"
check_interval = "5m"
reliability = "B"

[[enrichers.feeds]]
path = "full.csv"
format = "malwarebazaar"

[[enrichers.feeds]]
path = "c2.txt"
verdict = "suspicious"
tags = ["c2"]

[[enrichers]]
type = "feeds"
name = "blocklist"
path = "single.txt"
"""
    )
    monkeypatch.chdir(tmp_path)  # relative paths follow the configuration file, not this
    with fido.load_config(config).build() as pipeline:
        abuse, blocklist = pipeline.enrichers
        assert isinstance(abuse, Feeds)
        assert isinstance(blocklist, Feeds)
        assert hit(abuse, MB_SHA256).reliability is Reliability.B
        c2 = hit(abuse, "198.51.100.7")
        assert (c2.verdict, c2.tags, c2.source) == (Verdict.SUSPICIOUS, ("c2",), "abuse-ch")
        assert hit(blocklist, "evil.example").source == "blocklist"
        assert abuse._reloader.interval == 300


def test_a_bad_feed_option_in_the_configuration_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("evil.example\n")
    config = tmp_path / "fido.toml"
    config.write_text(
        '[store]\ntype = "memory"\n\n[[enrichers]]\ntype = "feeds"\npath = "list.txt"\n'
        'verdict = "terrible"\n'
    )
    with pytest.raises(ConfigurationError) as caught:
        fido.load_config(config).build()
    assert caught.value.key == "enrichers[0]"
    assert "verdict is one of" in str(caught.value)


def test_the_event_hash_of_the_factories_is_in_the_fixture() -> None:
    found = hit(feed(DATA / "malwarebazaar_full.csv"), SHA256)
    assert found.label == "Emotet"


def test_the_reloader_survives_broken_checks_and_reloads(caplog: pytest.LogCaptureFixture) -> None:
    from fido._logging import get_logger
    from fido.adapters.enrichers._files import Reloader

    release = threading.Event()
    calls: list[str] = []

    def broken() -> bool:
        raise OSError("no stat today")

    def slow_reload() -> None:
        calls.append("reload")
        release.wait(10)
        raise RuntimeError("the reload broke")

    log = get_logger("fido.adapters.feeds")
    with caplog.at_level(logging.ERROR, logger="fido.adapters.feeds"):
        Reloader(
            what="t", interval=0, enabled=True, changed=broken, reload=slow_reload, log=log
        ).poke()
        reloader = Reloader(
            what="t", interval=0, enabled=True, changed=lambda: True, reload=slow_reload, log=log
        )
        reloader.poke()
        reloader.poke()  # one reload at a time
        release.set()
        reloader.join(10)
    assert calls == ["reload"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "t: checking the source for changes failed",
        "t: reloading the source failed",
    ]
