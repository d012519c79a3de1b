from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fido import FidoError, InvalidObservable, Observable, ObservableKind
from tests.strategies import kinds, observables, raw_observables

K = ObservableKind
SHA256 = "44d88612fea8a8f36de82e1278abb02f" * 2


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (K.MD5, " 44D88612FEA8A8F36DE82E1278ABB02F ", "44d88612fea8a8f36de82e1278abb02f"),
        (
            K.SHA1,
            "3395856CE81F2B7382DEE72602F798B642F14140",
            "3395856ce81f2b7382dee72602f798b642f14140",
        ),
        (K.SHA256, SHA256.upper(), SHA256),
        (K.IPV4, "192.0.2.10", "192.0.2.10"),
        (K.IPV6, "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        (K.IPV6, "[::0:1]", "::1"),
        (K.DOMAIN, "Evil.Example.", "evil.example"),
        (K.DOMAIN, "Bücher.example", "xn--bcher-kva.example"),
        (K.DOMAIN, "_dmarc.example.com", "_dmarc.example.com"),
        (K.URL, "HTTPS://Evil.Example:443/Path?Q=1#Frag", "https://evil.example/Path?Q=1#Frag"),
        (K.URL, "http://evil.example", "http://evil.example/"),
        (K.URL, "http://evil.example:8080/x", "http://evil.example:8080/x"),
        (K.URL, "http://user:pw@Host.Example/a", "http://user:pw@host.example/a"),
        (K.URL, "http://[2001:DB8::1]:80/", "http://[2001:db8::1]/"),
        (K.URL, "http://intranet/login", "http://intranet/login"),
        (K.EMAIL, "Bob.Doe@Corp.Example", "Bob.Doe@corp.example"),
        (K.FILENAME, "  C:\\Users\\Public\\Invoice.PDF.exe ", "C:\\Users\\Public\\Invoice.PDF.exe"),
    ],
)
def test_normalization(kind: ObservableKind, value: str, expected: str) -> None:
    observable = Observable(kind, value)
    assert observable.value == expected
    assert observable.kind is kind
    assert Observable(kind, observable.value) == observable


def test_kind_by_name() -> None:
    assert Observable("sha256", SHA256) == Observable(K.SHA256, SHA256)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (K.MD5, "44d88612fea8a8f36de82e1278abb02", "32 hex digits"),
        (K.SHA1, "z" * 40, "only hex digits"),
        (K.SHA256, SHA256 + "0", "64 hex digits"),
        (K.IPV4, "256.1.1.1", "not an ipv4 address"),
        (K.IPV4, "2001:db8::1", "it is IPv6"),
        (K.IPV6, "192.0.2.1", "it is IPv4"),
        (K.DOMAIN, "localhost", "at least two labels"),
        (K.DOMAIN, "-evil.example", "label"),
        (K.DOMAIN, "evil..example", "label"),
        (K.DOMAIN, "evil.123", "top-level domain"),
        (K.DOMAIN, "a" * 64 + ".example", "label"),
        (K.DOMAIN, ".".join(["a" * 60] * 5), "at most 253"),
        (K.DOMAIN, "", "cannot be empty"),
        (K.URL, "evil.example/path", "needs a scheme"),
        (K.URL, "http://", "needs a host"),
        (K.URL, "http://evil.example:99999/", "not a URL"),
        (K.URL, "http://evil.example/a b", "spaces"),
        (K.EMAIL, "no-at-sign", "local@domain"),
        (K.EMAIL, "@evil.example", "local@domain"),
        (K.EMAIL, "a b@evil.example", "no spaces"),
        (K.FILENAME, "   ", "cannot be empty"),
        (K.FILENAME, "evil\x00.exe", "control characters"),
    ],
)
def test_invalid_values(kind: ObservableKind, value: str, message: str) -> None:
    with pytest.raises(InvalidObservable, match=message) as info:
        Observable(kind, value)
    assert info.value.kind == kind.value
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FidoError)


def test_invalid_kind_and_type() -> None:
    with pytest.raises(InvalidObservable, match="unknown observable kind"):
        Observable("hash", SHA256)
    with pytest.raises(InvalidObservable, match="is a str, not int"):
        Observable(K.IPV4, 1234)  # type: ignore[arg-type]
    with pytest.raises(InvalidObservable, match="parsed from a str"):
        Observable.parse(b"1.2.3.4")  # type: ignore[arg-type]
    with pytest.raises(InvalidObservable, match="at most 8192"):
        Observable.parse("a" * 9000)


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("44D88612FEA8A8F36DE82E1278ABB02F", K.MD5, "44d88612fea8a8f36de82e1278abb02f"),
        ("3395856ce81f2b7382dee72602f798b642f14140", K.SHA1, None),
        (SHA256, K.SHA256, None),
        ("203.0.113[.]7", K.IPV4, "203.0.113.7"),
        ("203(.)0(.)113(.)7", K.IPV4, "203.0.113.7"),
        ("2001[:]db8[:][:]1", K.IPV6, "2001:db8::1"),
        ("[2001:db8::1]", K.IPV6, "2001:db8::1"),
        ("hxxp://evil[.]example/a", K.URL, "http://evil.example/a"),
        ("HXXPS://evil[dot]example", K.URL, "https://evil.example/"),
        ("hxxps[://]evil[.]example/x", K.URL, "https://evil.example/x"),
        ("fxp://files{.}example/a.zip", K.URL, "ftp://files.example/a.zip"),
        ("evil[.]example/login.php", K.URL, "http://evil.example/login.php"),
        ("198.51.100.7:8080/gate", K.URL, "http://198.51.100.7:8080/gate"),
        ("bob[at]corp[.]example", K.EMAIL, "bob@corp.example"),
        ("bob[@]corp(.)example", K.EMAIL, "bob@corp.example"),
        ("bob(at)corp.example", K.EMAIL, "bob@corp.example"),
        ("evil[.]example", K.DOMAIN, "evil.example"),
        ("EVIL.example.", K.DOMAIN, "evil.example"),
        ("invoice.pdf.exe", K.FILENAME, "invoice.pdf.exe"),
        ("update.zip", K.FILENAME, "update.zip"),
        ("C:\\Windows\\Temp\\a.dll", K.FILENAME, None),
        ("/var/tmp/payload", K.FILENAME, None),  # noqa: S108
        ("..\\payload", K.FILENAME, None),
    ],
)
def test_parse_infers_and_refangs(text: str, kind: ObservableKind, value: str | None) -> None:
    observable = Observable.parse(text)
    assert observable.kind is kind
    assert observable.value == (value if value is not None else text)


def test_parse_with_kind() -> None:
    assert Observable.parse("update.zip", kind="domain") == Observable(K.DOMAIN, "update.zip")
    assert Observable.parse("evil[.]example/x", K.URL).value == "http://evil.example/x"
    assert Observable.parse("  Evil.Example ", K.DOMAIN).value == "evil.example"


@pytest.mark.parametrize("text", ["", "   ", "hello world", "nope", "12345", "a@b", "1.2.3.999"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidObservable):
        Observable.parse(text)
    assert Observable.try_parse(text) is None


def test_try_parse() -> None:
    assert Observable.try_parse("evil.example") == Observable(K.DOMAIN, "evil.example")


@pytest.mark.parametrize(
    ("kind", "value", "defanged"),
    [
        (K.DOMAIN, "evil.example", "evil[.]example"),
        (K.IPV4, "203.0.113.7", "203[.]0[.]113[.]7"),
        (K.IPV6, "2001:db8::1", "2001[:]db8[:][:]1"),
        (K.URL, "https://evil.example/a.php?x=1.2", "hxxps://evil[.]example/a.php?x=1.2"),
        (K.URL, "http://203.0.113.7:81/", "hxxp://203[.]0[.]113[.]7:81/"),
        (K.URL, "ftp://files.example/a", "fxp://files[.]example/a"),
        (K.URL, "ssh://host.example/", "ssh://host[.]example/"),
        (K.URL, "http://[2001:db8::1]/", "hxxp://[2001:db8::1]/"),
        (K.EMAIL, "bob@corp.example", "bob[@]corp[.]example"),
        (K.SHA256, SHA256, SHA256),
        (K.FILENAME, "evil.exe", "evil.exe"),
    ],
)
def test_defanged(kind: ObservableKind, value: str, defanged: str) -> None:
    observable = Observable(kind, value)
    assert observable.defanged() == defanged
    assert Observable.parse(defanged) == observable


@pytest.mark.parametrize(
    ("text", "internal"),
    [
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("127.0.0.1", True),
        ("169.254.1.1", True),
        ("224.0.0.251", True),
        ("192.0.2.1", True),
        ("255.255.255.255", True),
        ("8.8.8.8", False),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:10.0.0.1", True),
        ("2606:4700::1111", False),
        ("http://localhost/x", True),
        ("http://10.0.0.5:8080/", True),
        ("http://evil.example/", False),
        ("evil.example", False),
        (SHA256, False),
    ],
)
def test_is_internal(text: str, internal: bool) -> None:
    assert Observable.parse(text).is_internal is internal


def test_text_forms() -> None:
    observable = Observable(K.DOMAIN, "evil.example")
    assert str(observable) == "evil.example"
    assert repr(observable) == "Observable('domain', 'evil.example')"
    assert observable.key == "domain:evil.example"
    assert K.SHA1.is_hash
    assert not K.URL.is_hash
    assert K.IPV6.is_ip
    assert not K.DOMAIN.is_ip


def test_frozen_and_hashable() -> None:
    observable = Observable(K.DOMAIN, "evil.example")
    with pytest.raises(AttributeError):
        observable.value = "other.example"  # type: ignore[misc]
    assert len({observable, Observable(K.DOMAIN, "EVIL.example")}) == 1


def test_match_args() -> None:
    match Observable(K.IPV4, "203.0.113.7"):
        case Observable(ObservableKind.IPV4, value):
            assert value == "203.0.113.7"
        case _:
            pytest.fail("pattern did not match")


# -- properties ---------------------------------------------------------------------------


@given(observables())
def test_parse_of_defanged_is_identity(observable: Observable) -> None:
    assert Observable.parse(observable.defanged()) == observable


@given(st.data(), kinds)
def test_normalization_is_idempotent(data: st.DataObject, kind: ObservableKind) -> None:
    text = data.draw(raw_observables(kind))
    once = Observable.parse(text, kind)
    assert Observable(kind, once.value) == once
    assert Observable.parse(once.value) == once


@given(st.text(max_size=300))
@example("hxxp://[")
@example("http://[::1")
@example("xn--.com")
@example("xn--a.xn--")
@example("a@xn--zz.com")
@example("\u00df\u0301.example")
@example("http://exa mple.com")
@example("[.]")
def test_parse_raises_only_invalid_observable(text: str) -> None:
    try:
        observable = Observable.parse(text)
    except InvalidObservable:
        return
    assert Observable(observable.kind, observable.value) == observable
