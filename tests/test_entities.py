from __future__ import annotations

import pytest

from fido import Host, InvalidEvent, Observable, ObservableKind, User


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "WS-042"}, ("ws-042", None, None, None)),
        ({"name": "WS-042.Corp.Example."}, ("ws-042", "ws-042.corp.example", None, None)),
        ({"fqdn": "srv1.corp.example"}, ("srv1", "srv1.corp.example", None, None)),
        ({"name": "srv1", "fqdn": "SRV1.corp.example"}, ("srv1", "srv1.corp.example", None, None)),
        ({"ip": "2001:DB8::0:1"}, (None, None, "2001:db8::1", None)),
        ({"name": "10.0.0.5"}, ("10.0.0.5", None, None, None)),
        ({"mac": "AA-BB-CC-DD-EE-FF"}, (None, None, None, "aa:bb:cc:dd:ee:ff")),
        ({"mac": "aabb.ccdd.eeff", "name": "x"}, ("x", None, None, "aa:bb:cc:dd:ee:ff")),
    ],
)
def test_host_normalization(kwargs: dict[str, str], expected: tuple[str | None, ...]) -> None:
    host = Host(**kwargs)
    assert (host.name, host.fqdn, host.ip, host.mac) == expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("::ffff:808:808", "::ffff:8.8.8.8"),
        ("::FFFF:8.8.8.8", "::ffff:8.8.8.8"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("2001:db8::1%eth0", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ],
)
def test_host_ip_is_canonical_on_every_python(ip: str, expected: str) -> None:
    host = Host(ip=ip)
    assert host.ip == expected
    assert host.observables()[0].value == expected


def test_host_key_and_observables() -> None:
    assert Host(name="ws-1", ip="10.0.0.1").key == "ws-1"
    assert Host(ip="10.0.0.1").key == "10.0.0.1"
    assert Host(mac="aa:bb:cc:dd:ee:ff").key == "aa:bb:cc:dd:ee:ff"
    assert Host(ip="10.0.0.1").observables() == (Observable(ObservableKind.IPV4, "10.0.0.1"),)
    assert Host(ip="::1").observables() == (Observable(ObservableKind.IPV6, "::1"),)
    assert Host(name="x").observables() == ()
    assert Host(name="ws-1", os=" Windows 11 ").os == "Windows 11"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "host"),
        ({"name": "  "}, "host"),
        ({"ip": "10.0.0.300"}, "host.ip"),
        ({"mac": "aa:bb:cc"}, "host.mac"),
        ({"mac": "zz:bb:cc:dd:ee:ff"}, "host.mac"),
        ({"name": "a\nb"}, "host.name"),
        ({"name": "x" * 300}, "host.name"),
        ({"name": 42}, "host.name"),
        ({"name": "ws\u202e1"}, "host.name"),
        ({"fqdn": "ws-1.corp\u2029.example"}, "host.fqdn"),
        ({"ip": "fe80::1%x\nforged"}, "host.ip"),
        ({"ip": "fe80::1%bad zone"}, "host.ip"),
    ],
)
def test_host_invalid(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        Host(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("bdoe",), {}, ("bdoe", None, None, None)),
        (("BDoe",), {}, ("bdoe", None, None, None)),
        (("CORP\\BDoe",), {}, ("bdoe", "corp", None, None)),
        (("CORP\\bdoe",), {"domain": "other"}, ("bdoe", "other", None, None)),
        (("BDoe@Corp.Example",), {}, ("bdoe", "corp.example", "bdoe@corp.example", None)),
        ((), {"upn": "bdoe@corp.example"}, ("bdoe", "corp.example", "bdoe@corp.example", None)),
        (
            ("bdoe",),
            {"domain": "CORP", "upn": "bdoe@corp.example"},
            ("bdoe", "corp", "bdoe@corp.example", None),
        ),
        ((), {"email": "B.Doe@Corp.Example"}, ("b.doe", None, None, "b.doe@corp.example")),
        (
            ("bdoe",),
            {"domain": "CORP", "email": "b@x.example"},
            ("bdoe", "corp", None, "b@x.example"),
        ),
    ],
)
def test_user_normalization(
    args: tuple[str, ...], kwargs: dict[str, str], expected: tuple[str | None, ...]
) -> None:
    user = User(*args, **kwargs)
    assert (user.name, user.domain, user.upn, user.email) == expected
    name, domain = expected[0], expected[1]
    assert user.key == (f"{domain}\\{name}" if domain else name)


def test_user_key_tells_a_local_account_from_a_domain_account() -> None:
    local, domain = User("WS-042\\Administrator"), User("CORP\\Administrator")
    assert local.key == "ws-042\\administrator"
    assert domain.key == "corp\\administrator"
    assert local.key != domain.key
    assert User("bdoe").key == "bdoe"
    assert User("bdoe@corp.example").key == "corp.example\\bdoe"
    assert User("bdoe@corp.example").key == User("corp.example\\bdoe").key


def test_user_str() -> None:
    assert str(User("CORP\\bdoe")) == "corp\\bdoe"
    assert str(User("bdoe")) == "bdoe"
    assert str(User("BDoe@Corp.Example")) == "bdoe@corp.example"
    assert str(User("bdoe", domain="corp", upn="bdoe@corp.example")) == "corp\\bdoe"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "user"),
        ({"name": " "}, "user"),
        ({"name": "bdoe", "email": "not-an-email"}, "user.email"),
        ({"name": "bdoe", "email": "bob@"}, "user.email"),
        ({"name": "bdoe", "email": "@corp.example"}, "user.email"),
        ({"email": "bob@"}, "user.email"),
        ({"upn": "bdoe@"}, "user.upn"),
        ({"name": "bdoe@"}, "user.name"),
        ({"name": "b\x00doe"}, "user.name"),
        ({"name": "b\x85doe"}, "user.name"),
        ({"name": "admin\u202eniam"}, "user.name"),
        ({"name": "bdoe\u2028CRITICAL forged"}, "user.name"),
        ({"name": "bdoe", "domain": "corp\u200b"}, "user.domain"),
    ],
)
def test_user_invalid(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        User(**kwargs)
    assert info.value.field == field


def test_entities_equal_after_normalization() -> None:
    assert User("CORP\\BDOE") == User("bdoe", domain="corp")
    assert Host(name="WS-1.corp.example") == Host(name="ws-1", fqdn="ws-1.corp.example")
