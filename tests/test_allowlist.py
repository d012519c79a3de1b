from __future__ import annotations

import csv
import io
import operator
import pickle
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from fido import ConfigurationError, Event, Host, Observable, ObservableKind, Subject, User
from fido._allowlist import Allowlist, AllowlistEntry, EntryKind

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MD5 = "44d88612fea8a8f36de82e1278abb02f"
SHA256 = MD5 * 2
K = EntryKind


def entry(
    kind: EntryKind,
    value: str,
    *,
    expires: datetime | None = None,
    subdomains: bool = False,
    reason: str = "known good",
    author: str = "jdoe",
) -> AllowlistEntry:
    return AllowlistEntry(
        kind=kind,
        value=value,
        reason=reason,
        author=author,
        expires=expires,
        subdomains=subdomains,
    )


def event(
    *observables: str,
    host: Host | None = None,
    user: User | None = None,
) -> Event:
    return Event(
        detector="edr",
        id="1",
        time=NOW,
        title="t",
        host=Host(name="ws-1", ip="10.0.0.5") if host is None else host,
        user=User("CORP\\bdoe") if user is None else user,
        observables=list(observables),
    )


def obs(text: str, kind: ObservableKind | None = None) -> Observable:
    return Observable.parse(text, kind)


# --- normalization ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "normalized"),
    [
        (K.HASH, MD5.upper(), MD5),
        (K.HASH, f" {SHA256} ", SHA256),
        (K.HASH, "a" * 40, "a" * 40),
        (K.IP, "10.0.0.5", "10.0.0.5"),
        (K.IP, "2001:DB8::0:1", "2001:db8::1"),
        (K.IP, "[2001:db8::1]", "2001:db8::1"),
        (K.IP, "::ffff:a00:5", "::ffff:10.0.0.5"),
        (K.IP, "2001:db8::1%eth0", "2001:db8::1"),
        (K.CIDR, "::ffff:a00:0/120", "::ffff:10.0.0.0/120"),
        (K.CIDR, "10.1.2.3/8", "10.0.0.0/8"),
        (K.CIDR, "2001:DB8::/32", "2001:db8::/32"),
        (K.CIDR, "192.0.2.7", "192.0.2.7/32"),
        (K.DOMAIN, "Corp.Example.", "corp.example"),
        (K.DOMAIN, "Bücher.Example", "xn--bcher-kva.example"),
        (K.URL, "HTTPS://Corp.Example:443", "https://corp.example/"),
        (K.URL, "https://corp.example/App/", "https://corp.example/App/"),
        (K.URL, "https://corp.example/a/../app/./", "https://corp.example/app/"),
        (K.URL, "https://corp.example\\app\\", "https://corp.example/app/"),
        (K.EMAIL, "Bob@Corp.Example", "Bob@corp.example"),
        (K.FILENAME, "  Setup.EXE ", "Setup.EXE"),
        (K.FILENAME, "*\\setup.exe", "*\\setup.exe"),
        (K.HOST, "Scanner-*", "scanner-*"),
        (K.HOST, "WS-1.Corp.Example.", "ws-1.corp.example"),
        (K.HOST, "2001:DB8::1", "2001:db8::1"),
        (K.USER, "CORP\\BDoe", "corp\\bdoe"),
        (K.USER, "BDoe@Corp.Example", "bdoe@corp.example"),
        (K.USER, "svc-scan", "svc-scan"),
    ],
)
def test_normalization(kind: EntryKind, value: str, normalized: str) -> None:
    assert entry(kind, value).value == normalized


@pytest.mark.parametrize(
    ("kind", "value", "fragment"),
    [
        (K.HASH, "corp.example", "not an MD5, SHA-1 or SHA-256 hash: it reads as domain"),
        (K.HASH, "abc", "not an MD5"),
        (K.IP, "10.0.0.0/8", "a network is a cidr entry"),
        (K.IP, "10.0.0.300", "not an IPv4 or IPv6 address"),
        (K.CIDR, "10.0.0.0/33", "not a network"),
        (K.CIDR, "corp.example", "not a network"),
        (K.DOMAIN, "corp..example", "not a domain name"),
        (K.DOMAIN, "localhost", "not a domain name"),
        (K.URL, "corp.example/path", "needs a scheme"),
        (K.EMAIL, "bob", "not an email address"),
        (K.FILENAME, "a\x00b", "control characters"),
        (K.HOST, "ws 1", "not a host name"),
        (K.HOST, "..", "not a host name"),
        (K.USER, "CORP\\", "not an account name"),
        (K.USER, "\\bdoe", "the domain before the backslash is empty"),
        (K.USER, "@corp.example", "a UPN has a name and a domain"),
        (K.DOMAIN, "   ", "value is required"),
    ],
)
def test_invalid_values(kind: EntryKind, value: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        entry(kind, value)
    assert fragment in info.value.message
    assert info.value.key == "value"
    assert info.value.file is None
    if value.strip():
        assert repr(value.strip())[1:-1] in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "key", "fragment"),
    [
        ({"reason": " "}, "reason", "reason is required"),
        ({"author": ""}, "author", "author is required"),
        ({"subdomains": True, "kind": K.IP, "value": "10.0.0.1"}, "subdomains", "domain entries"),
        ({"subdomains": "yes"}, "subdomains", "true or false"),
        ({"expires": date(2027, 1, 1)}, "expires", "a datetime"),
        ({"kind": "bogus"}, "kind", "unknown entry type 'bogus'"),
    ],
)
def test_invalid_fields(kwargs: dict[str, object], key: str, fragment: str) -> None:
    fields: dict[str, object] = {
        "kind": K.DOMAIN,
        "value": "corp.example",
        "reason": "r",
        "author": "a",
        **kwargs,
    }
    with pytest.raises(ConfigurationError) as info:
        AllowlistEntry(**fields)  # type: ignore[arg-type]
    assert info.value.key == key
    assert fragment in info.value.message


def test_kind_given_as_name_and_text_stripped() -> None:
    made = AllowlistEntry(
        kind="domain",  # type: ignore[arg-type]
        value="corp.example",
        reason=" ours ",
        author=" jdoe ",
    )
    assert (made.kind, made.reason, made.author) == (K.DOMAIN, "ours", "jdoe")


def test_expires_is_utc() -> None:
    naive = entry(K.DOMAIN, "corp.example", expires=datetime(2027, 1, 1))
    assert naive.expires == datetime(2027, 1, 1, tzinfo=UTC)
    assert naive.expires is not None
    assert naive.expires.tzinfo is UTC
    plus2 = timezone(timedelta(hours=2))
    aware = entry(K.DOMAIN, "corp.example", expires=datetime(2027, 1, 1, 2, tzinfo=plus2))
    assert aware.expires == datetime(2027, 1, 1, tzinfo=UTC)
    assert aware.expires is not None
    assert aware.expires.tzinfo is UTC


def test_describe() -> None:
    ours = entry(
        K.DOMAIN,
        "corp.example",
        subdomains=True,
        reason="our own domain",
        expires=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert ours.describe() == (
        "domain corp.example (and subdomains): our own domain (jdoe, until 2027-01-01)"
    )
    noon = entry(K.IP, "10.0.0.5", reason="scanner", expires=datetime(2027, 1, 1, 12, tzinfo=UTC))
    assert noon.describe() == "ip 10.0.0.5: scanner (jdoe, until 2027-01-01 12:00:00 UTC)"
    assert entry(K.USER, "CORP\\x", reason="pentest").describe() == "user corp\\x: pentest (jdoe)"


def test_entries_are_values() -> None:
    one = entry(K.CIDR, "10.0.0.0/8")
    assert one == entry(K.CIDR, "10.1.0.0/8")
    assert hash(one) == hash(entry(K.CIDR, "10.1.0.0/8"))
    assert one != entry(K.CIDR, "10.0.0.0/8", reason="other")
    again = pickle.loads(pickle.dumps(one))  # noqa: S301 - our own object
    assert again == one
    assert again.matches(Host(ip="10.9.9.9"))


# --- matching -----------------------------------------------------------------------------

SCANNER = Host(name="scanner-01.corp.example", ip="10.0.0.9")
UP = "../../redirect?to=evil.example"
BACKSLASH = "https://evil.example\\@corp.example/login"  # a browser opens evil.example


@pytest.mark.parametrize(
    ("made", "subject", "expected"),
    [
        # hashes
        (entry(K.HASH, MD5), obs(MD5), True),
        (entry(K.HASH, MD5.upper()), obs(MD5), True),
        (entry(K.HASH, MD5), obs(SHA256), False),
        (entry(K.HASH, SHA256), obs(SHA256), True),
        (entry(K.HASH, MD5), obs(MD5, ObservableKind.FILENAME), False),
        # addresses
        (entry(K.IP, "10.0.0.5"), obs("10.0.0.5"), True),
        (entry(K.IP, "10.0.0.5"), obs("10.0.0.6"), False),
        (entry(K.IP, "2001:db8::1"), obs("2001:DB8:0::1"), True),
        (entry(K.IP, "10.0.0.5"), obs("::ffff:10.0.0.5"), True),
        (entry(K.IP, "::ffff:10.0.0.5"), obs("10.0.0.5"), True),
        (entry(K.IP, "10.0.0.5"), Host(name="ws-1", ip="10.0.0.5"), True),
        (entry(K.IP, "10.0.0.5"), Host(name="ws-1"), False),
        (entry(K.IP, "10.0.0.5"), User("bdoe"), False),
        (entry(K.CIDR, "10.0.0.0/8"), obs("10.200.1.1"), True),
        (entry(K.CIDR, "10.0.0.0/8"), obs("11.0.0.1"), False),
        (entry(K.CIDR, "10.0.0.0/8"), Host(ip="10.1.1.1"), True),
        (entry(K.CIDR, "10.0.0.0/8"), Host(ip="2001:db8::1"), False),
        (entry(K.CIDR, "10.0.0.0/8"), obs("2001:db8::1"), False),
        (entry(K.CIDR, "10.0.0.0/8"), obs("::ffff:10.0.0.1"), True),
        (entry(K.CIDR, "2001:db8::/32"), Host(ip="10.0.0.1"), False),
        (entry(K.CIDR, "2001:db8::/32"), obs("2001:db8:1::5"), True),
        (entry(K.CIDR, "10.0.0.0/8"), obs("10.example"), False),
        # domains, and the hosts of URLs and mail addresses
        (entry(K.DOMAIN, "corp.example"), obs("corp.example"), True),
        (entry(K.DOMAIN, "corp.example"), obs("www.corp.example"), False),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("www.corp.example"), True),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("a.b.corp.example"), True),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("corp.example"), True),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("evil-corp.example"), False),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("corp.example.evil"), False),
        (entry(K.DOMAIN, "corp.example"), obs("https://corp.example/login"), True),
        (entry(K.DOMAIN, "corp.example"), obs("https://www.corp.example/"), False),
        (entry(K.DOMAIN, "corp.example"), obs("https://corp.example@evil.example/"), False),
        (entry(K.DOMAIN, "corp.example"), obs("https://evil.example/corp.example"), False),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("https://www.corp.example/"), True),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("http://evilcorp.example/"), False),
        (entry(K.DOMAIN, "corp.example"), obs("bob@corp.example"), True),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs("bob@mail.corp.example"), True),
        (entry(K.DOMAIN, "corp.example"), obs("corp.example@evil.example"), False),
        (entry(K.DOMAIN, "corp.example"), Host(fqdn="ws-1.corp.example"), False),
        # URL prefixes
        (entry(K.URL, "https://corp.example/app/"), obs("https://corp.example/app/x?y=1"), True),
        (entry(K.URL, "https://corp.example/app/"), obs("https://corp.example/other"), False),
        (entry(K.URL, "https://corp.example"), obs("HTTPS://CORP.EXAMPLE/anything"), True),
        (entry(K.URL, "https://corp.example"), obs("https://corp.example.evil/"), False),
        (entry(K.URL, "https://corp.example"), obs("http://corp.example/"), False),
        (entry(K.URL, "https://corp.example"), obs("https://corp.example@evil.example/"), False),
        (entry(K.URL, "https://corp.example"), obs("https://corp.example:8443/"), False),
        (entry(K.URL, "https://corp.example"), obs("corp.example"), False),
        (entry(K.URL, "https://corp.example/app"), obs("https://corp.example/app"), True),
        (entry(K.URL, "https://corp.example/app"), obs("https://corp.example/app/x"), True),
        (entry(K.URL, "https://corp.example/app"), obs("https://corp.example/app?q=1"), True),
        (entry(K.URL, "https://corp.example/app"), obs("https://corp.example/application"), False),
        (entry(K.URL, "https://corp.example/app?q="), obs("https://corp.example/app?q=1"), True),
        (entry(K.URL, "https://corp.example/app?q=1"), obs("https://corp.example/app?q=10"), False),
        # dot segments and backslashes: what a browser would open
        (entry(K.URL, "https://corp.example/app/"), obs(f"https://corp.example/app/{UP}"), False),
        (
            entry(K.URL, "https://corp.example/app/"),
            obs("https://corp.example/app/%2e%2e/x"),
            False,
        ),
        (entry(K.URL, "https://corp.example/app/"), obs("https://corp.example/app/./x"), True),
        (entry(K.URL, "https://corp.example/"), obs("https://evil.example\\@corp.example/"), False),
        (entry(K.DOMAIN, "corp.example", subdomains=True), obs(BACKSLASH), False),
        (entry(K.DOMAIN, "evil.example"), obs(BACKSLASH), True),
        # email addresses
        (entry(K.EMAIL, "noreply@corp.example"), obs("noreply@corp.example"), True),
        (entry(K.EMAIL, "NoReply@corp.example"), obs("noreply@CORP.example"), True),
        (entry(K.EMAIL, "noreply@corp.example"), obs("other@corp.example"), False),
        (entry(K.EMAIL, "bdoe@corp.example"), User(email="BDoe@corp.example"), True),
        (entry(K.EMAIL, "bdoe@corp.example"), User(upn="bdoe@corp.example"), True),
        (entry(K.EMAIL, "bdoe@corp.example"), User("CORP\\bdoe"), False),
        # file names
        (entry(K.FILENAME, "setup.exe"), obs("SETUP.EXE"), True),
        (entry(K.FILENAME, "setup.exe"), obs("evilsetup.exe"), False),
        (entry(K.FILENAME, "setup.exe"), obs("C:\\Temp\\setup.exe"), False),
        (entry(K.FILENAME, "*\\setup.exe"), obs("C:\\Temp\\Setup.exe"), True),
        (entry(K.FILENAME, "*\\setup.exe"), obs("C:\\Temp\\evilsetup.exe"), False),
        (entry(K.FILENAME, "backup-??.zip"), obs("Backup-01.zip"), True),
        (entry(K.FILENAME, "backup-??.zip"), obs("backup-001.zip"), False),
        (entry(K.FILENAME, "setup.exe"), obs("setup.exe", ObservableKind.DOMAIN), False),
        # hosts
        (entry(K.HOST, "ws-1"), Host(name="WS-1"), True),
        (entry(K.HOST, "ws-1"), Host(name="ws-10"), False),
        (entry(K.HOST, "ws-1.corp.example"), Host(name="ws-1.corp.example"), True),
        (entry(K.HOST, "ws-1.corp.example"), Host(name="ws-1"), False),
        (entry(K.HOST, "scanner-*"), SCANNER, True),
        (entry(K.HOST, "scanner-*"), Host(name="ws-scanner-1"), False),
        (entry(K.HOST, "*.lab.corp.example"), Host(name="x.lab.corp.example"), True),
        (entry(K.HOST, "*.lab.corp.example"), Host(name="x.corp.example"), False),
        (entry(K.HOST, "scanner-0?"), SCANNER, True),
        (entry(K.HOST, "10.0.0.9"), SCANNER, True),
        (entry(K.HOST, "10.0.0.9"), Host(name="10.0.0.9"), True),
        (entry(K.HOST, "scanner-*"), obs("scanner-01.corp.example"), False),
        (entry(K.HOST, "scanner-*"), User("scanner-01"), False),
        # users
        (entry(K.USER, "bdoe"), User("CORP\\BDoe"), True),
        (entry(K.USER, "bdoe"), User("bdoe"), True),
        (entry(K.USER, "bdoe"), User("jdoe"), False),
        (entry(K.USER, "CORP\\bdoe"), User("corp\\bdoe"), True),
        (entry(K.USER, "CORP\\bdoe"), User("LAB\\bdoe"), False),
        (entry(K.USER, "CORP\\bdoe"), User("bdoe"), False),
        (entry(K.USER, "bdoe@corp.example"), User(upn="BDoe@Corp.Example"), True),
        (entry(K.USER, "bdoe@corp.example"), User("x", email="bdoe@corp.example"), True),
        (entry(K.USER, "bdoe@corp.example"), User("OTHER\\bdoe"), False),
        (entry(K.USER, "bdoe@corp.example"), User("bdoe@lab.example"), False),
        (entry(K.USER, "bdoe"), obs("bdoe@corp.example"), False),
        # a name alone matches in every domain, a UPN's suffix included
        (entry(K.USER, "bdoe"), User("bdoe@corp.example"), True),
        (entry(K.USER, "bdoe"), User("WS-042\\bdoe"), True),
        (entry(K.USER, "corp.example\\bdoe"), User("bdoe@corp.example"), True),
        (entry(K.USER, "CORP\\bdoe"), User("bdoe@corp.example"), False),
        (entry(K.USER, "CORP\\administrator"), User("WS-042\\Administrator"), False),
        (entry(K.USER, "bdoe"), Host(name="bdoe"), False),
    ],
)
def test_matches(made: AllowlistEntry, subject: Subject, expected: bool) -> None:
    assert made.matches(subject) is expected
    assert (Allowlist([made]).match(subject, NOW) is made) is expected


def test_expiry() -> None:
    soon = entry(K.HASH, MD5, expires=NOW + timedelta(seconds=1))
    past = entry(K.HASH, MD5, expires=NOW)
    allow = Allowlist([past, soon])
    assert past.expired(NOW)
    assert not soon.expired(NOW)
    assert past.matches(obs(MD5))  # `matches` ignores the expiry
    assert allow.match(obs(MD5), NOW) is soon
    assert allow.match(obs(MD5), NOW + timedelta(seconds=1)) is None
    assert allow.match(obs(MD5), NOW - timedelta(days=1)) is past
    assert allow.match(obs(MD5), NOW.replace(tzinfo=None)) is soon  # naive: UTC
    assert allow.expired(NOW) == (past,)
    assert allow.expired(NOW + timedelta(days=1)) == (past, soon)
    assert Allowlist([entry(K.HASH, MD5)]).expired(datetime.max.replace(tzinfo=UTC)) == ()


def test_first_matching_entry_wins() -> None:
    wide = entry(K.CIDR, "10.0.0.0/8", reason="wide")
    exact = entry(K.IP, "10.0.0.5", reason="exact")
    allow = Allowlist([wide, exact])
    assert allow.match(obs("10.0.0.5"), NOW) is wide
    assert (Allowlist([exact]) + Allowlist([wide])).match(obs("10.0.0.5"), NOW) is exact
    later = entry(K.HASH, MD5, reason="later")
    earlier = entry(K.HASH, MD5, reason="earlier")
    mixed = Allowlist([entry(K.DOMAIN, "corp.example"), earlier, entry(K.IP, "10.0.0.1"), later])
    assert mixed.match(obs(MD5), NOW) is earlier
    assert mixed.match(obs(SHA256), NOW) is None


def test_collection() -> None:
    one, two = entry(K.HASH, MD5), entry(K.IP, "10.0.0.5")
    allow = Allowlist([one]) + Allowlist([two])
    assert len(allow) == 2
    assert list(allow) == [one, two]
    assert allow.entries == (one, two)
    assert repr(allow) == "Allowlist(2 entries)"
    assert repr(Allowlist([one])) == "Allowlist(1 entry)"
    assert len(Allowlist()) == 0
    assert Allowlist(iter([one])).entries == (one,)
    with pytest.raises(TypeError):
        Allowlist(["10.0.0.5"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        operator.add(allow, [one])


# --- events -------------------------------------------------------------------------------

ALLOW = Allowlist(
    [
        entry(K.HOST, "scanner-*", reason="vulnerability scanner"),
        entry(K.CIDR, "192.0.2.0/24", reason="pentest range"),
        entry(K.USER, "CORP\\pentest", reason="pentest account"),
        entry(K.EMAIL, "svc@corp.example", reason="service account"),
        entry(K.DOMAIN, "corp.example", subdomains=True, reason="our domain"),
        entry(K.HASH, MD5, reason="known-good installer"),
        entry(K.FILENAME, "setup.exe", reason="installer"),
        entry(K.HASH, "b" * 40, reason="gone", expires=NOW - timedelta(days=1)),
    ]
)


@pytest.mark.parametrize(
    ("made", "reason"),
    [
        (event(SHA256, host=Host(name="scanner-01")), "vulnerability scanner"),
        (event(SHA256, host=Host(name="ws-9", ip="192.0.2.44")), "pentest range"),
        (event(SHA256, user=User("corp\\PENTEST")), "pentest account"),
        (event(SHA256, user=User(upn="svc@corp.example")), "service account"),
        (event("https://www.corp.example/x", MD5), "our domain"),
        (event(MD5, "https://www.corp.example/x"), "known-good installer"),
        (event("setup.exe", "mail.corp.example"), "installer"),
        (event(), None),
        (event(SHA256), None),
        (event(MD5, SHA256), None),
        (event(MD5, "evil-corp.example"), None),
        (event(MD5, "b" * 40), None),
        (event(SHA256, host=Host(name="ws-9", ip="2001:db8::1")), None),
        (event(SHA256, user=User("LAB\\pentest")), None),
    ],
)
def test_match_event(made: Event, reason: str | None) -> None:
    found = ALLOW.match_event(made, NOW)
    assert (None if found is None else found.reason) == reason


def test_match_event_without_host_or_user() -> None:
    bare = Event(detector="edr", id="2", time=NOW, title="t", observables=[MD5])
    found = ALLOW.match_event(bare, NOW)
    assert found is not None
    assert found.reason == "known-good installer"
    assert ALLOW.match_event(Event(detector="edr", id="3", time=NOW, title="t"), NOW) is None


def test_match_observables() -> None:
    made = event(MD5, SHA256, "www.corp.example", "evil-corp.example", "b" * 40)
    found = ALLOW.match_observables(made, NOW)
    assert list(found) == [obs(MD5), obs("www.corp.example")]
    assert found[obs(MD5)].reason == "known-good installer"
    assert found[obs("www.corp.example")].reason == "our domain"
    assert ALLOW.match_event(made, NOW) is None  # partial: not suppressed
    assert ALLOW.match_observables(event(SHA256), NOW) == {}
    # the host or user suppresses the event, but only observables are listed here
    assert ALLOW.match_observables(event(SHA256, host=Host(name="scanner-1")), NOW) == {}


# --- TOML ---------------------------------------------------------------------------------

TOML = """\
# known-good things
[[allow]]
type = "domain"
value = "Corp.Example"
subdomains = true
reason = "our own domain"
author = "jdoe"
expires = 2027-01-01T00:00:00Z

[[allow]]
type = "HOST"
value = "scanner-*"
reason = "vulnerability scanner"
author = "asmith"
expires = 2027-01-01T12:00:00

[[allow]]
type = "cidr"
value = "192.0.2.0/24"
reason = "pentest range"
author = "jdoe"
expires = 2026-07-01

[[allow]]
type = "user"
value = 'CORP\\pentest'
reason = "pentest account"
author = "jdoe"
expires = "2026-07-01T08:00:00+02:00"

[[allow]]
type = "hash"
value = "44D88612FEA8A8F36DE82E1278ABB02F"
reason = "installer"
author = "jdoe"
expires = "2026-08-01"
"""


def test_from_toml() -> None:
    allow = Allowlist.from_toml(TOML)
    assert [(e.kind, e.value) for e in allow] == [
        (K.DOMAIN, "corp.example"),
        (K.HOST, "scanner-*"),
        (K.CIDR, "192.0.2.0/24"),
        (K.USER, "corp\\pentest"),
        (K.HASH, MD5),
    ]
    assert [e.expires for e in allow] == [
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, 12, tzinfo=UTC),
        datetime(2026, 7, 1, tzinfo=UTC),
        datetime(2026, 7, 1, 6, tzinfo=UTC),
        datetime(2026, 8, 1, tzinfo=UTC),
    ]
    assert allow.entries[0].subdomains
    assert allow.entries[1].author == "asmith"
    assert len(Allowlist.from_toml("")) == 0
    assert len(Allowlist.from_toml("allow = []")) == 0


def test_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "allow.toml"
    path.write_text(TOML, encoding="utf-8")
    assert Allowlist.from_toml(path).entries == Allowlist.from_toml(TOML).entries
    assert Allowlist.from_toml(str(path)).entries == Allowlist.from_toml(TOML).entries
    path.write_text(TOML.replace("scanner-*", "scanner *"), encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_toml(path)
    assert (info.value.file, info.value.key, info.value.line) == (str(path), "allow[1].value", 12)
    assert "'scanner *' is not a host name" in info.value.message


BAD_ENTRY = """\
[[allow]]
type = "ip"
value = "10.0.0.5"
reason = "r"
author = "a"

[[allow]]
{body}
"""
BASE = 'type = "domain"\nvalue = "corp.example"\nreason = "r"\nauthor = "a"'


@pytest.mark.parametrize(
    ("body", "key", "line", "fragment"),
    [
        (BASE + "\nbogus = 1", "allow[1].bogus", 12, "unknown key 'bogus'"),
        ('value = "corp.example"\nreason = "r"\nauthor = "a"', "allow[1].type", 7, "type is"),
        ('type = "domain"\nreason = "r"\nauthor = "a"', "allow[1].value", 7, "value is required"),
        ('type = "domain"\nvalue = "corp.example"\nauthor = "a"', "allow[1].reason", 7, "reason"),
        ('type = "domain"\nvalue = "corp.example"\nreason = "r"', "allow[1].author", 7, "author"),
        (BASE.replace('"domain"', '"ipv4"'), "allow[1].type", 8, "unknown type 'ipv4'"),
        (BASE.replace('"corp.example"', '"corp..example"'), "allow[1].value", 9, "corp..example"),
        (BASE.replace('"corp.example"', "42"), "allow[1].value", 9, "a string, not int"),
        (BASE.replace('reason = "r"', 'reason = ""'), "allow[1].reason", 10, "reason is required"),
        (BASE + '\nsubdomains = "yes"', "allow[1].subdomains", 12, "true or false, not 'yes'"),
        (
            BASE.replace('"domain"', '"ip"').replace('"corp.example"', '"10.0.0.1"')
            + "\nsubdomains = true",
            "allow[1].subdomains",
            12,
            "for domain entries",
        ),
        (BASE + '\nexpires = "next week"', "allow[1].expires", 12, "'next week'"),
        (BASE + "\nexpires = 12:00:00", "allow[1].expires", 12, "a date or a date and time"),
    ],
)
def test_toml_errors(body: str, key: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_toml(BAD_ENTRY.format(body=body))
    error = info.value
    assert (error.key, error.line, error.file) == (key, line, None)
    assert fragment in error.message
    assert f"key={key}" in str(error)
    assert f"line={line}" in str(error)


@pytest.mark.parametrize(
    ("text", "key", "line", "fragment"),
    [
        ('name = "x"\n' + BAD_ENTRY.format(body=BASE), "name", 1, "unknown key 'name'"),
        (BAD_ENTRY.format(body=BASE) + "\n[policy]\nx = 1\n", "policy", 13, "unknown key"),
        ('allow = "all"\n', "allow", 1, "array of tables"),
        ("allow = [1]\n", "allow[0]", 1, "a table, not int"),
        ("[[allow]]\ntype = \n", None, 2, "not valid TOML"),
        ('[[allow]]\ntype = "ip"\ntype = "ip"\n', None, 3, "not valid TOML"),
    ],
)
def test_toml_file_errors(text: str, key: str | None, line: int, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_toml(text)
    assert (info.value.key, info.value.line) == (key, line)
    assert fragment in info.value.message


# --- CSV ----------------------------------------------------------------------------------

CSV = """\
type,value,reason,author,expires,subdomains
# comments and blank lines are skipped

domain,Corp.Example,our own domain,jdoe,2027-01-01,yes
host,scanner-*,"scanner, weekly",asmith,,
ip,10.0.0.5,"two
lines",jdoe,2027-01-01T12:00:00+00:00,0
hash,44D88612FEA8A8F36DE82E1278ABB02F,installer,jdoe,,false
"""


def test_from_csv() -> None:
    allow = Allowlist.from_csv(CSV)
    assert allow.entries == (
        entry(
            K.DOMAIN,
            "corp.example",
            subdomains=True,
            reason="our own domain",
            expires=datetime(2027, 1, 1, tzinfo=UTC),
        ),
        entry(K.HOST, "scanner-*", reason="scanner, weekly", author="asmith"),
        entry(K.IP, "10.0.0.5", reason="two\nlines", expires=datetime(2027, 1, 1, 12, tzinfo=UTC)),
        entry(K.HASH, MD5, reason="installer"),
    )


def test_csv_optional_columns_in_any_order(tmp_path: Path) -> None:
    text = "Author, Type ,value,reason\r\njdoe,USER,CORP\\pentest,pentest\r\n"
    assert Allowlist.from_csv(text).entries == (entry(K.USER, "corp\\pentest", reason="pentest"),)
    path = tmp_path / "allow.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a byte order mark, as Excel writes
    assert Allowlist.from_csv(path).entries == Allowlist.from_csv(text).entries
    assert len(Allowlist.from_csv("")) == 0
    assert len(Allowlist.from_csv("type,value,reason,author\n")) == 0


HEADER = "type,value,reason,author,expires,subdomains\n"


@pytest.mark.parametrize(
    ("text", "key", "line", "fragment"),
    [
        ("type,value,reason,author,notes\n", "notes", 1, "unknown column 'notes'"),
        ("\n# header next\ntype,value,reason\n", "author", 3, "no author column"),
        ("type,value,value,reason,author\n", "value", 1, "appears twice"),
        ("type,value,reason,author,\n", None, 1, "unknown column ''"),
        (HEADER + "domain,corp..example,r,a\n", "value", 2, "'corp..example'"),
        (HEADER + "# x\n\ndomain,,r,a\n", "value", 4, "value is required"),
        (HEADER + "domain,corp.example,,a\n", "reason", 2, "reason is required"),
        (HEADER + "domain,corp.example,r\n", "author", 2, "author is required"),
        (HEADER + "domian,corp.example,r,a\n", "type", 2, "unknown type 'domian'"),
        (HEADER + "domain,corp.example,r,a,,maybe\n", "subdomains", 2, "not 'maybe'"),
        (HEADER + "ip,10.0.0.1,r,a,,true\n", "subdomains", 2, "for domain entries"),
        (HEADER + "ip,10.0.0.1,r,a,soon,\n", "expires", 2, "'soon'"),
        (HEADER + 'ip,10.0.0.1,"multi\nline",a,,\nip,x,r,a\n', "value", 4, "'x'"),
        (HEADER + "ip,10.0.0.1,r,a,,,extra\n", None, 2, "7 cells"),
    ],
)
def test_csv_errors(text: str, key: str | None, line: int, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_csv(text)
    assert (info.value.key, info.value.line, info.value.file) == (key, line, None)
    assert fragment in info.value.message


def test_csv_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "allow.csv"
    path.write_text(HEADER + "hash,1234,r,a\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        Allowlist.load(path)
    assert (info.value.file, info.value.key, info.value.line) == (str(path), "value", 2)
    assert "'1234' is not an MD5, SHA-1 or SHA-256 hash" in info.value.message
    # trailing cells that are empty are fine
    assert len(Allowlist.from_csv(HEADER + "ip,10.0.0.1,r,a,,,,\n")) == 1


# --- round trips and loading --------------------------------------------------------------

ROUND_TRIP = Allowlist(
    [
        entry(K.DOMAIN, "corp.example", subdomains=True, expires=datetime(2027, 1, 1, tzinfo=UTC)),
        entry(K.URL, "https://corp.example/app/", reason='says "hi", twice'),
        entry(K.USER, "CORP\\pentest", expires=datetime(2026, 7, 1, 8, 30, tzinfo=UTC)),
        entry(K.FILENAME, "C:\\Program Files\\*\\setup.exe", author="Zoë"),
        entry(K.CIDR, "2001:db8::/32", reason="lab\tv6"),
        entry(K.EMAIL, "noreply@corp.example"),
        entry(K.HASH, SHA256),
        entry(K.IP, "10.0.0.5"),
        entry(K.HOST, "scanner-*"),
    ]
)


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return f'"{escaped}"'


def to_toml(allow: Allowlist) -> str:
    blocks = []
    for item in allow:
        lines = ["[[allow]]"]
        for key, value in (
            ("type", item.kind.value),
            ("value", item.value),
            ("reason", item.reason),
            ("author", item.author),
        ):
            lines.append(f"{key} = {_toml_string(value)}")
        if item.subdomains:
            lines.append("subdomains = true")
        if item.expires is not None:
            lines.append(f"expires = {item.expires.isoformat()}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def to_csv(allow: Allowlist) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["type", "value", "reason", "author", "expires", "subdomains"])
    for item in allow:
        expires = "" if item.expires is None else item.expires.isoformat()
        flag = "yes" if item.subdomains else ""
        writer.writerow([item.kind.value, item.value, item.reason, item.author, expires, flag])
    return buffer.getvalue()


def test_round_trips(tmp_path: Path) -> None:
    toml_path = tmp_path / "allow.toml"
    toml_path.write_text(to_toml(ROUND_TRIP), encoding="utf-8")
    csv_path = tmp_path / "allow.CSV"
    csv_path.write_text(to_csv(ROUND_TRIP), encoding="utf-8", newline="")
    assert Allowlist.load(toml_path).entries == ROUND_TRIP.entries
    assert Allowlist.load(str(csv_path)).entries == ROUND_TRIP.entries
    assert Allowlist.from_toml(to_toml(ROUND_TRIP)).entries == ROUND_TRIP.entries
    assert Allowlist.from_csv(to_csv(ROUND_TRIP)).entries == ROUND_TRIP.entries
    assert [e.describe() for e in Allowlist.load(toml_path)] == [e.describe() for e in ROUND_TRIP]


def test_load_errors(tmp_path: Path) -> None:
    text = tmp_path / "allow.txt"
    text.write_text(TOML, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        Allowlist.load(text)
    assert info.value.file == str(text)
    assert "ends in .toml or .csv" in info.value.message
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigurationError) as info:
        Allowlist.load(missing)
    assert info.value.file == str(missing)
    assert "cannot read the allowlist" in info.value.message
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_csv(str(tmp_path / "missing.csv"))
    assert info.value.file == str(tmp_path / "missing.csv")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigurationError) as info:
        Allowlist.load(folder)
    assert info.value.file == str(folder)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + "ip,10.0.0.1,café,a\n".encode("latin-1"))
    with pytest.raises(ConfigurationError) as info:
        Allowlist.load(latin)
    assert info.value.file == str(latin)
    assert "cannot read the allowlist" in info.value.message


def test_text_that_is_not_a_file_name() -> None:
    long_line = "type,value,reason,author" + ",x" * 2000
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_csv(long_line)
    assert info.value.file is None
    assert info.value.key == "x"
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_toml("a\x00b = 1")
    assert info.value.file is None


def test_csv_that_the_csv_module_refuses() -> None:
    with pytest.raises(ConfigurationError) as info:
        Allowlist.from_csv(HEADER + "ip,10.0.0.1,r,a\nip,10.0.0.2," + "x" * 200_000 + ",a\n")
    assert info.value.line == 3
    assert "not valid CSV" in info.value.message


def test_the_guide_examples_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guide = (Path(__file__).parents[1] / "docs" / "allowlist.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(\w+)\n(.*?)```", guide, re.DOTALL)
    (toml,) = [body for lang, body in blocks if lang == "toml"]
    (table,) = [body for lang, body in blocks if lang == "text" and body.startswith("type,")]
    (tmp_path / "allowlist.toml").write_text(toml, encoding="utf-8")
    (tmp_path / "allowlist.csv").write_text(table, encoding="utf-8")
    assert len(Allowlist.load(tmp_path / "allowlist.toml")) == 5
    assert len(Allowlist.load(tmp_path / "allowlist.csv")) == 4
    monkeypatch.chdir(tmp_path)
    for lang, body in blocks:
        if lang == "python":
            exec(compile(body, "docs/allowlist.md", "exec"), {})  # noqa: S102 - our own docs
