"""Hypothesis strategies for the model, shared by the property tests."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

import fido

HEX = "0123456789abcdefABCDEF"
TLDS = ["com", "net", "org", "example", "io", "ru", "co", "xn--p1ai", "museum", "de"]
EXTENSIONS = ["exe", "dll", "docm", "pdf", "ps1", "zip", "lnk", "js", "hta", "iso"]
LABEL_CHARS = string.ascii_lowercase + string.digits


@st.composite
def labels(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from(LABEL_CHARS))
    middle = draw(st.text(alphabet=LABEL_CHARS + "-", max_size=12))
    last = draw(st.sampled_from(LABEL_CHARS))
    return (first + middle + last) if draw(st.booleans()) else first


@st.composite
def domains(draw: st.DrawFn) -> str:
    names = draw(st.lists(labels(), min_size=1, max_size=3))
    unicode_label = draw(st.sampled_from([None, "bücher", "пример", "münchen", "faß", "ςa"]))
    if unicode_label is not None:
        names.append(unicode_label)
    tld = draw(st.sampled_from(TLDS))
    text = ".".join([*names, tld])
    upper = draw(st.booleans())
    return text.upper() if upper and text.isascii() else text


def hashes(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=HEX, min_size=length, max_size=length)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "ftp", "HTTP", "hxxp", "ssh"]))
    host = draw(
        st.one_of(
            domains(),
            st.ip_addresses(v=4).map(str),
            st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
            st.integers(min_value=0, max_value=2**32 - 1).map(str),  # 2130706433
            st.integers(min_value=0, max_value=2**32 - 1).map(hex),  # 0x7f000001
            st.sampled_from(["127.1", "0177.0.0.1", "0x7f.1", "10.0x10.1"]),
        )
    )
    port = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=65535)))
    path = draw(
        st.lists(st.sampled_from(["a", "B", "x.php", ".", "..", "%2e%2E", "", "~u", "%20"]))
    )
    separator = "/" if scheme.lower() == "ssh" else draw(st.sampled_from(["/", "\\"]))
    query = draw(st.text(alphabet=string.ascii_letters + string.digits + "=&./\\", max_size=12))
    text = f"{scheme}://{host}"
    if port is not None:
        text += f":{port}"
    if path:
        text += separator + separator.join(path)
    if query:
        text += "?" + query
    return text


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(
        st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20)
    )
    return f"{local}@{draw(domains())}"


@st.composite
def filenames(draw: st.DrawFn) -> str:
    stem = draw(
        st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
    )
    directory = draw(st.sampled_from(["", "C:\\Users\\Public\\", "/var/tmp/", "..\\"]))  # noqa: S108
    return f"{directory}{stem}.{draw(st.sampled_from(EXTENSIONS))}"


# File names that read as something else without `kind=`: a domain (`evil.py`), a URL.
ambiguous_filenames = st.builds(
    "{}.{}".format,
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    st.sampled_from(["py", "sh", "app", "mov", "one", "com"]),
) | st.sampled_from(["evil.example/x.exe", "a(.)b.exe", "C:\\Temp\\a[.]dll", "x\u202egpj.exe"])

# Text that looks like an indicator: the pieces of hosts, ports, schemes and defanging,
# with the characters that broke parsing once (superscript digits, NBSP, line breaks,
# bidi and zero-width characters, full-width dots).
PIECES = [
    *["http://", "https://", "hxxp://", "[.]", "(.)", "[:]", "[at]", "@", ":", "/", "\\"],
    *[".", "[", "]", "%", "%25", "xn--", "com", "evil", "1", "255", "::", "ffff", "80", "0x"],
    *["\u00b2", "\u00b9", "\u0660", "\u00df", "\u00fc", "\u3002", "\uff0e", "-", "_"],
    *["?", "#", " ", "\n", "\t", "\u00a0", "\u2028", "\u202e", "\u200b", "\u0301", "\u0130"],
    *["\ufeff", "\x85", "..", "exe", "zip", "~", "\x00", "a" * 63, "K", "\udc80"],
]
indicator_like = st.lists(st.sampled_from(PIECES), min_size=1, max_size=12).map("".join)


def raw_observables(kind: fido.ObservableKind) -> st.SearchStrategy[str]:
    """Un-normalized text that is a valid observable of `kind`."""
    k = fido.ObservableKind
    return {
        k.MD5: hashes(32),
        k.SHA1: hashes(40),
        k.SHA256: hashes(64),
        k.IPV4: st.ip_addresses(v=4).map(str),
        k.IPV6: st.ip_addresses(v=6).map(lambda a: a.exploded),
        k.DOMAIN: domains(),
        k.URL: urls(),
        k.EMAIL: emails(),
        k.FILENAME: filenames(),
    }[kind]


kinds = st.sampled_from(list(fido.ObservableKind))


@st.composite
def observables(draw: st.DrawFn, kind: fido.ObservableKind | None = None) -> fido.Observable:
    chosen = kind if kind is not None else draw(kinds)
    return fido.Observable.parse(draw(raw_observables(chosen)), chosen)


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

names = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=15)

hosts = st.builds(
    fido.Host,
    name=names,
    fqdn=st.one_of(st.none(), domains()),
    ip=st.one_of(st.none(), st.ip_addresses().map(str)),
    mac=st.one_of(st.none(), st.binary(min_size=6, max_size=6).map(lambda b: b.hex("-"))),
    os=st.one_of(st.none(), st.sampled_from(["Windows 11", "Ubuntu 24.04", "macOS 15"])),
)

users = st.builds(
    fido.User,
    name=names,
    domain=st.one_of(st.none(), st.sampled_from(["CORP", "corp.example"])),
    upn=st.one_of(st.none(), emails()),
    email=st.one_of(st.none(), emails()),
)

times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))]),
)


# Ids are the detector's: any text but control, format and line-separator characters.
ids = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cf", "Zl", "Zp")), min_size=1, max_size=30
).filter(str.strip)


@st.composite
def events(draw: st.DrawFn) -> fido.Event:
    return fido.Event(
        detector=draw(names),
        id=draw(ids),
        time=draw(times),
        title=draw(st.text(min_size=1, max_size=60).filter(str.strip)),
        severity=draw(st.sampled_from(list(fido.Severity))),
        category=draw(st.one_of(st.none(), st.sampled_from(["malware", "c2", "phishing"]))),
        host=draw(st.one_of(st.none(), hosts)),
        user=draw(st.one_of(st.none(), users)),
        observables=draw(st.lists(observables(), max_size=5)),
        raw=draw(json_values),
        extra=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
    )
