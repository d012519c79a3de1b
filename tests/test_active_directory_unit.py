"""The `active_directory` enricher without a server: values, filters, entries, options.

The integration tests (tests/integration/test_active_directory.py) run it against slapd;
these check the parts that need no server, and the in-chain path that slapd lacks, with a
fake ldap3 connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.protocol.convert import prepare_filter_for_sending

from fido import (
    ConfigurationError,
    EnrichmentError,
    Host,
    HostContext,
    Observable,
    User,
    UserContext,
)
from fido.adapters.enrichers import _ad_support as ad
from fido.adapters.enrichers import active_directory
from fido.adapters.enrichers.active_directory import ActiveDirectory

if TYPE_CHECKING:
    from pathlib import Path

BASE = "DC=corp,DC=example"
SECRET = "Unit-Test-Pa55word"


def make(**options: Any) -> ActiveDirectory:
    settings: dict[str, Any] = {
        "url": "ldaps://dc1.corp.example",
        "base_dn": BASE,
        "bind_dn": f"CN=fido,OU=Service,{BASE}",
        "password": SECRET,
    }
    settings.update(options)
    return ActiveDirectory(**settings)


# -- escaping and filters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("bdoe", "bdoe"),
        ("*", "\\2a"),
        ("*)(objectClass=*", "\\2a\\29\\28objectClass=\\2a"),
        ("admin)(|(cn=*", "admin\\29\\28|\\28cn=\\2a"),
        ("a\\b", "a\\5cb"),
        ("nul\x00", "nul\\00"),
        ("tab\there", "tab\\09here"),
        ("del\x7f", "del\\7f"),
        ("müller", "m\\c3\\bcller"),
        ("日本", "\\e6\\97\\a5\\e6\\9c\\ac"),
        ("svc$ (x)", "svc$ \\28x\\29"),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert ad.escape(text) == escaped


def test_a_lone_surrogate_cannot_be_escaped() -> None:
    with pytest.raises(UnicodeEncodeError):
        ad.escape("a\ud800")


@given(st.text(st.characters(blacklist_categories=["Cs"])))
def test_escaped_values_reach_the_server_as_they_were(text: str) -> None:
    escaped = ad.escape(text)
    assert escaped.isascii()
    assert not set(escaped) & set("*()\x00")
    # what ldap3 puts on the wire for the assertion value: the text's own UTF-8 bytes
    assert prepare_filter_for_sending(escaped) == text.encode("utf-8")


def test_user_filters() -> None:
    base = "(objectClass=user)"
    assert ad.user_filter(User("CORP\\bdoe"), base, by_name=True) == (
        "(&(objectClass=user)(|(sAMAccountName=bdoe)))"
    )
    assert ad.user_filter(User("bdoe@corp.example"), base, by_name=True) == (
        "(&(objectClass=user)(|(sAMAccountName=bdoe)"
        "(userPrincipalName=bdoe@corp.example)(mail=bdoe@corp.example)))"
    )
    assert ad.user_filter(User("bdoe@evil.example"), base, by_name=False) == (
        "(&(objectClass=user)(|(userPrincipalName=bdoe@evil.example)(mail=bdoe@evil.example)))"
    )
    both = User("b@corp.example", email="bea.doe@corp.example")
    assert "(mail=bea.doe@corp.example)" in ad.user_filter(both, base, by_name=True)
    assert ad.user_filter(User("*)(cn=*"), base, by_name=True) == (
        "(&(objectClass=user)(|(sAMAccountName=\\2a\\29\\28cn=\\2a)))"
    )


def test_computer_filters() -> None:
    assert ad.computer_filter(Host("ws-042.corp.example"), "(objectClass=computer)") == (
        "(&(objectClass=computer)(|(sAMAccountName=ws-042$)(cn=ws-042)"
        "(dNSHostName=ws-042.corp.example)))"
    )
    assert ad.computer_filter(Host("ws*"), "(x=y)") == (
        "(&(x=y)(|(sAMAccountName=ws\\2a$)(cn=ws\\2a)))"
    )
    # a short name is looked for under the directory's DNS domains too
    assert ad.computer_filter(Host("ws-042"), "(x=y)", {"corp", "corp.example"}) == (
        "(&(x=y)(|(sAMAccountName=ws-042$)(cn=ws-042)(dNSHostName=ws-042.corp.example)))"
    )
    assert ad.computer_filter(Host(fqdn="a.other.example"), "(x=y)", {"corp.example"}) == (
        "(&(x=y)(|(sAMAccountName=a$)(cn=a)(dNSHostName=a.other.example)))"
    )


def test_the_in_chain_filter() -> None:
    dn = "CN=Doe\\, Bea (admin),OU=Staff,DC=corp,DC=example"
    assert ad.in_chain_filter(dn) == (
        "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:="
        "CN=Doe\\5c, Bea \\28admin\\29,OU=Staff,DC=corp,DC=example))"
    )


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("133559874096399883", datetime(2024, 3, 27, 4, 30, 9, 639988, tzinfo=UTC)),
        (116444736000000000, datetime(1970, 1, 1, tzinfo=UTC)),
        ("1", datetime(1601, 1, 1, tzinfo=UTC)),
        ("0", None),
        (0, None),
        ("-1", None),
        (None, None),
        ("", None),
        ("not a number", None),
        ("20240122063659.0Z", None),
        (str(0x7FFFFFFFFFFFFFFF), None),  # beyond year 9999
    ],
)
def test_filetime(value: str | int | None, expected: datetime | None) -> None:
    assert ad.filetime(value) == expected


def test_account_expiry() -> None:
    assert ad.filetime("0", expiry=True) is None
    assert ad.filetime("9223372036854775807", expiry=True) is None
    assert ad.filetime("135379296000000000", expiry=True) == datetime(2030, 1, 1, tzinfo=UTC)


def test_generalized_time() -> None:
    expected = datetime(2024, 1, 22, 6, 36, 59, tzinfo=UTC)
    assert ad.generalized_time("20240122063659.0Z") == expected
    assert ad.generalized_time("20240122063659Z") == expected
    assert ad.generalized_time("20241322063659.0Z") is None  # month 13
    assert ad.generalized_time("2024-01-22") is None
    assert ad.generalized_time(None) is None


@pytest.mark.parametrize(
    ("value", "flags"),
    [
        (512, ("NORMAL_ACCOUNT",)),
        (514, ("ACCOUNTDISABLE", "NORMAL_ACCOUNT")),
        (66048, ("NORMAL_ACCOUNT", "DONT_EXPIRE_PASSWORD")),
        (0x10 | 0x200, ("LOCKOUT", "NORMAL_ACCOUNT")),
        (4096, ("WORKSTATION_TRUST_ACCOUNT",)),
        (532480, ("SERVER_TRUST_ACCOUNT", "TRUSTED_FOR_DELEGATION")),
        (0x400200, ("NORMAL_ACCOUNT", "DONT_REQ_PREAUTH")),
        (-(2**32) + 514, ("ACCOUNTDISABLE", "NORMAL_ACCOUNT")),  # shown signed
        (0, ()),
    ],
)
def test_uac_flags(value: int, flags: tuple[str, ...]) -> None:
    assert ad.uac_flags(value) == flags


@pytest.mark.parametrize(
    ("dn", "parts"),
    [
        ("CN=Doe\\, Bea,OU=Staff,DC=corp", [("CN", "Doe, Bea"), ("OU", "Staff"), ("DC", "corp")]),
        ("cn=Doe\\2C Bea,ou=Staff", [("cn", "Doe, Bea"), ("ou", "Staff")]),
        ("CN=J\\C3\\BCrgen M\\c3\\bcller,DC=x", [("CN", "Jürgen Müller"), ("DC", "x")]),
        ("CN=Jürgen,DC=x", [("CN", "Jürgen"), ("DC", "x")]),
        ("CN=a\\+b\\=c\\\\d,DC=x", [("CN", "a+b=c\\d"), ("DC", "x")]),
        ("CN=a+UID=b,DC=x", [("CN", "a"), ("UID", "b"), ("DC", "x")]),
        ("CN = spaced , DC = x", [("CN", "spaced"), ("DC", "x")]),
        ("not a dn", []),
        ("", []),
    ],
)
def test_rdns(dn: str, parts: list[tuple[str, str]]) -> None:
    assert ad.rdns(dn) == parts


def test_cn_and_parent() -> None:
    assert ad.cn("CN=Domain Admins,CN=Users,DC=corp") == "Domain Admins"
    assert ad.cn("cn=Doe\\2C Bea,ou=Staff") == "Doe, Bea"
    assert ad.cn("Domain Admins") == "Domain Admins"
    assert ad.parent("CN=Doe\\, Bea,OU=Staff,DC=corp") == "OU=Staff,DC=corp"
    assert ad.parent("CN=WS-042, OU=Computers") == "OU=Computers"
    assert ad.parent("DC=corp") is None
    assert ad.domains_of("DC=corp,DC=example") == {"corp.example", "corp"}
    assert ad.domains_of("OU=x,DC=EU,DC=Corp,DC=example") == {"eu.corp.example", "eu"}
    assert ad.domains_of("O=corp") == frozenset()


def test_unwrap() -> None:
    assert ad.unwrap("(\"('socket error: x (_ssl.c:1000)',)\",)") == "socket error: x (_ssl.c:1000)"
    assert ad.unwrap(str(('it\'s "q"',))) == 'it\'s "q"'
    assert ad.unwrap("plain (message)") == "plain (message)"


# -- entries and findings ------------------------------------------------------------------


def entry(dn: str = f"CN=Bea,OU=Staff,{BASE}", /, **values: str | list[str]) -> ad.Entry:
    return ad.Entry(
        dn, {k.lower(): (v,) if isinstance(v, str) else tuple(v) for k, v in values.items()}
    )


def test_an_entry_from_an_ldap3_response() -> None:
    item = {
        "type": "searchResEntry",
        "dn": "CN=x,DC=corp",
        "raw_attributes": {
            "sAMAccountName": [b"x"],
            "memberOf;range=0-1": [b"CN=a,DC=corp", b"CN=b,DC=corp"],
            "displayName": [b"J\xc3\xbcrgen"],
            "broken": [b"\xff"],
        },
    }
    found = ad.Entry.from_response(item)
    assert found.dn == "CN=x,DC=corp"
    assert found.get("SAMACCOUNTNAME") == "x"
    assert found.all("memberOf") == ("CN=a,DC=corp", "CN=b,DC=corp")
    assert found.get("displayName") == "Jürgen"
    assert found.get("broken") == "\ufffd"
    assert found.get("mail") is None
    assert found.number("sAMAccountName") is None
    assert found.same("samaccountname", "X")
    assert not found.same("mail", None)


def test_a_user_context() -> None:
    manager = entry("CN=Bob,OU=Staff", displayName="Bob Boss", mail="bob@x", title="Director")
    bea = entry(
        displayName="Bea Doe",
        mail="bdoe@corp.example",
        title="Accountant",
        employeeType="Contractor",
        l="Lyon",
        telephoneNumber="+33 4",
        userAccountControl="66050",
        pwdLastSet="116444736000000000",
        accountExpires="135379296000000000",
        primaryGroupID="513",
        memberOf=["CN=Finance,OU=Groups,DC=corp"],
    )
    found = ad.user_context("ad", User("bdoe"), bea, manager=manager)
    assert isinstance(found, UserContext)
    assert (found.source, found.subject, found.dn) == ("ad", User("bdoe"), bea.dn)
    assert found.fetched_at is not None
    assert (found.manager, found.manager_email) == ("Bob Boss", "bob@x")
    assert found.details["manager_title"] == "Director"
    assert (found.location, found.phone) == ("Lyon", "+33 4")
    assert found.groups == ("Finance", "Domain Users")  # with the primary group
    assert (found.enabled, found.locked, found.password_never_expires) == (False, False, True)
    assert (found.privileged, found.service_account) == (False, False)
    assert found.password_last_set == datetime(1970, 1, 1, tzinfo=UTC)
    assert found.account_expires == datetime(2030, 1, 1, tzinfo=UTC)
    assert found.details["uac_flags"] == [
        "ACCOUNTDISABLE",
        "NORMAL_ACCOUNT",
        "DONT_EXPIRE_PASSWORD",
    ]
    assert "lockout_time" not in found.details  # empty values are left out


def test_what_an_entry_does_not_say_stays_unknown() -> None:
    found = ad.user_context("ad", User("x"), entry(cn="x"))
    assert found.display_name == "x"
    assert (found.enabled, found.locked, found.password_never_expires) == (None, None, None)
    assert (found.last_logon, found.groups, found.privileged) == (None, (), False)
    assert found.details == {}


def test_the_computed_lockout_wins_over_lockout_time() -> None:
    expired = entry(
        userAccountControl="512",
        lockoutTime="134037792000000000",
        **{"msDS-User-Account-Control-Computed": "0"},
    )
    assert ad.user_context("ad", User("x"), expired).locked is False
    current = entry(userAccountControl="512", **{"msDS-User-Account-Control-Computed": "16"})
    found = ad.user_context("ad", User("x"), current)
    assert found.locked is True
    assert "LOCKOUT" in found.details["uac_flags"]
    assert ad.user_context("ad", User("x"), entry(lockoutTime="5")).locked is True


def test_privilege_by_name_dn_or_primary_group() -> None:
    nested = ["CN=Tier0,OU=G,DC=corp", "CN=Domain Admins,CN=Users,DC=corp"]
    found = ad.user_context("ad", User("x"), entry(), groups=nested)
    assert (found.privileged, found.groups) == (True, ("Tier0", "Domain Admins"))
    by_dn = ad.user_context(
        "ad", User("x"), entry(), groups=nested[:1], privileged_groups=["cn=tier0,ou=g,dc=corp"]
    )
    assert by_dn.privileged is True
    primary = ad.user_context("ad", User("x"), entry(primaryGroupID="512"))
    assert (primary.privileged, primary.groups) == (True, ("Domain Admins",))


@pytest.mark.parametrize(
    "values",
    [
        {"servicePrincipalName": "HTTP/web.corp.example"},
        {"employeeType": "Service Account"},
        {"objectClass": ["top", "msDS-GroupManagedServiceAccount"]},
    ],
)
def test_service_account_hints(values: dict[str, str | list[str]]) -> None:
    assert ad.user_context("ad", User("x"), entry(**values)).service_account is True


def test_a_host_context() -> None:
    computer = entry(
        "CN=DC1,OU=Domain Controllers,DC=corp",
        operatingSystem="Windows Server 2022",
        userAccountControl="532482",
        primaryGroupID="516",
        whenCreated="20240122063659.0Z",
    )
    owner = entry("CN=Ops,OU=Groups", cn="Ops")
    found = ad.host_context("ad", Host("dc1"), computer, owner)
    assert isinstance(found, HostContext)
    assert (found.is_server, found.managed, found.owner) == (True, True, "Ops")
    assert found.groups == ("Domain Controllers",)
    assert found.details["ou"] == "OU=Domain Controllers,DC=corp"
    assert found.details["enabled"] is False
    assert found.details["when_created"] == "2024-01-22T06:36:59+00:00"
    unknown = ad.host_context("ad", Host("x"), entry("CN=X,DC=corp"))
    assert (unknown.is_server, unknown.os, unknown.owner) == (None, None, None)
    assert unknown.details == {"ou": "DC=corp"}
    linux = ad.host_context("ad", Host("x"), entry(operatingSystem="Ubuntu 24.04"))
    assert linux.is_server is False


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "https://dc1"}, "url must be"),
        ({"url": []}, "url must be"),
        ({"url": "ldaps://dc1/DC=corp"}, "url must be"),
        ({"url": "ldaps://dc1", "start_tls": True}, "start_tls is for ldap://"),
        ({"url": "ldap://dc1"}, "in clear"),
        ({"url": ["ldaps://dc1", "ldap://dc2"]}, "in clear"),
        ({"base_dn": "corp.example"}, "base_dn"),
        ({"base_dn": ""}, "base_dn"),
        ({"password": None}, "go together"),
        ({"bind_dn": None}, "go together"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"pool_size": 65}, "pool_size"),
        ({"group_depth": "8"}, "group_depth"),
        ({"max_groups": 0}, "max_groups"),
        ({"cache_size": 0}, "cache_size"),
        ({"cache_ttl": -1}, "cache_ttl"),
        ({"timeout": "soon"}, "timeout"),
        ({"nested_groups": "yes"}, "nested_groups"),
        ({"user_filter": "objectClass=user"}, "user_filter"),
        ({"user_filter": "(&(objectClass=user)"}, "user_filter is not an LDAP filter"),
        ({"user_filter": "(a=b)(c=d)"}, "user_filter is not an LDAP filter"),
        ({"computer_filter": ""}, "computer_filter"),
        ({"privileged_groups": [1]}, "privileged_groups"),
        ({"privileged_groups": []}, "privileged_groups"),
        ({"domains": [""]}, "domains"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        make(**options)
    assert SECRET not in str(caught.value)


def test_a_ca_file_that_is_not_pem(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="ca_file"):
        make(ca_file=str(bogus))


def test_valid_options_and_repr() -> None:
    enricher = make(
        name="corp-ad",
        url=["ldap://dc1.corp.example:389", "ldap://dc2.corp.example"],
        start_tls=True,
        timeout="1m",
        cache_ttl="1h",
        domains=["CORP", "corp.example"],
        privileged_groups="Tier0 Admins",
    )
    try:
        assert (enricher.name, enricher.timeout) == ("corp-ad", 60.0)
        assert enricher.urls == ("ldap://dc1.corp.example:389", "ldap://dc2.corp.example")
        assert enricher.privileged_groups == {"tier0 admins"}
        assert enricher.domains == {"corp", "corp.example"}
        assert SECRET not in repr(enricher)
        assert SECRET not in str(enricher)
        assert "corp-ad" in repr(enricher)
        assert enricher.stats()["lookups"] == 0
        plain = make(url="ldap://127.0.0.1:3389", allow_plaintext=True, bind_dn=None, password=None)
        assert plain.bind_dn is None
        plain.close()
    finally:
        enricher.close()


def test_tls_checks_the_chain_and_the_name_by_default() -> None:
    enricher = make()
    try:
        tls = enricher._servers[0].tls
        assert isinstance(tls, ad.VerifiedTls)
        assert tls.context.verify_mode == ssl.CERT_REQUIRED
        assert tls.context.check_hostname is True
    finally:
        enricher.close()


def test_verification_off_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    enricher = make(verify=False)
    try:
        tls = enricher._servers[0].tls
        assert tls.context.verify_mode == ssl.CERT_NONE
        assert "verification is off" in caplog.text
    finally:
        enricher.close()


def test_what_it_accepts() -> None:
    enricher = make()
    anywhere = make(domains=["*"])
    try:
        assert enricher.accepts(User("bdoe"))
        assert enricher.accepts(User("CORP\\bdoe"))
        assert enricher.accepts(User("corp.example\\bdoe"))
        assert enricher.accepts(User("bdoe@anything.example"))
        assert not enricher.accepts(User("WS-042\\administrator"))  # a local account
        assert anywhere.accepts(User("WS-042\\administrator"))
        assert enricher.accepts(Host("ws-042"))
        assert enricher.accepts(Host(fqdn="ws-042.corp.example"))
        assert not enricher.accepts(Host(ip="10.1.2.3"))
        assert not enricher.accepts(Host("10.1.2.3"))
        assert not enricher.accepts(Host(mac="aa:bb:cc:dd:ee:ff"))
        assert not enricher.accepts(Observable.parse("bdoe@corp.example"))
    finally:
        enricher.close()
        anywhere.close()


# -- the in-chain path, against a fake ldap3 connection -------------------------------------


class FakeConnection:
    """Answers searches from a list of pages; records the searches."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.searches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.result: dict[str, Any] = {}
        self.response: list[dict[str, Any]] = []

    def search(self, base: str, query: str, scope: str, **options: Any) -> bool:
        self.searches.append((base, query, scope, options))
        if options.get("paged_size") == 0:
            self.result, self.response = {"result": 0}, []
            return True
        page = self.pages.pop(0)
        cookie = b"more" if self.pages else b""
        controls = {"1.2.840.113556.1.4.319": {"value": {"size": 0, "cookie": cookie}}}
        self.result = {"result": 0, "controls": controls}
        self.response = [{"type": "searchResEntry", **item} for item in page]
        return True


def group(name: str) -> dict[str, Any]:
    return {"dn": f"CN={name},OU=Groups,{BASE}", "raw_attributes": {"cn": [name.encode()]}}


def test_active_directory_is_detected_from_the_root_dse() -> None:
    enricher = make()
    try:
        capabilities = [b"1.2.840.113556.1.4.800", b"1.2.840.113556.1.4.1670"]
        root = {"dn": "", "raw_attributes": {"supportedCapabilities": capabilities}}
        assert enricher._detect(FakeConnection([[root]])) == "in_chain"
        assert enricher._detect(FakeConnection([[{"dn": "", "raw_attributes": {}}]])) == "walk"
    finally:
        enricher.close()


def test_nested_groups_in_chain_over_paged_results() -> None:
    enricher = make(nested_groups="in_chain", page_size=2)
    try:
        connection = FakeConnection(
            [[group("Tier0"), group("Domain Admins")], [group("Administrators")]]
        )
        member = entry(f"CN=Doe\\, Bea,OU=Staff,{BASE}", memberOf=f"CN=Tier0,OU=Groups,{BASE}")
        groups, cut = enricher._groups(connection, member)
        assert [ad.cn(dn) for dn in groups] == ["Tier0", "Domain Admins", "Administrators"]
        assert cut is False
        (base, query, _, options), second = connection.searches
        assert base == BASE
        assert query == (
            "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:="
            "CN=Doe\\5c, Bea,OU=Staff,DC=corp,DC=example))"
        )
        assert options["paged_size"] == 2
        assert second[3]["paged_cookie"] == b"more"
        figures = enricher.stats()
        assert (figures["searches"], figures["pages"]) == (1, 2)
    finally:
        enricher.close()


def test_exactly_max_groups_is_not_a_cut() -> None:
    enricher = make(nested_groups="in_chain", max_groups=2)
    try:
        groups, cut = enricher._groups(FakeConnection([[group("A"), group("B")]]), entry())
        assert (len(groups), cut) == (2, False)
    finally:
        enricher.close()


def test_a_paged_search_is_cut_at_its_limit_and_abandoned() -> None:
    enricher = make(nested_groups="in_chain", page_size=1, max_groups=2)
    try:
        connection = FakeConnection([[group("A")], [group("B")], [group("C")], [group("D")]])
        groups, cut = enricher._groups(connection, entry())
        assert ([ad.cn(dn) for dn in groups], cut) == (["A", "B"], True)
        *_, (base, query, _, options) = connection.searches
        assert options["paged_size"] == 0  # tells the server to stop
        assert (options["paged_cookie"], options["attributes"]) == (b"more", ["1.1"])
        assert (base, query) == connection.searches[0][:2]
    finally:
        enricher.close()


# -- StartTLS refused, one search for concurrent look-ups ------------------------------------


class RefusingStartTls:
    """An ldap3 connection whose server refuses StartTLS (start_tls() says False)."""

    binds: ClassVar[int] = 0

    def __init__(self, server: Any, **options: Any) -> None:
        self.result: dict[str, Any] = {}

    def open(self, read_server_info: bool = True) -> None:
        return None

    def start_tls(self, read_server_info: bool = True) -> bool:
        self.result = {"description": "unavailable", "message": "TLS not configured"}
        return False

    def bind(self, read_server_info: bool = True) -> bool:
        RefusingStartTls.binds += 1
        return True

    def unbind(self) -> None:
        return None


def test_a_refused_starttls_fails_and_never_binds_in_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(active_directory, "Connection", RefusingStartTls)
    RefusingStartTls.binds = 0
    enricher = make(url="ldap://dc1.corp.example", start_tls=True)
    try:
        with pytest.raises(EnrichmentError, match="StartTLS refused: unavailable") as caught:
            asyncio.run(enricher.enrich(User("bdoe")))
        assert RefusingStartTls.binds == 0  # the password never went over plain LDAP
        assert SECRET not in str(caught.value)
    finally:
        enricher.close()


def test_concurrent_lookups_of_one_user_share_one_search(monkeypatch: pytest.MonkeyPatch) -> None:
    enricher = make(cache_ttl=0)  # no cache: the single flight alone
    searches: list[Any] = []
    answer = UserContext(source="active_directory", display_name="Bea Doe")

    def lookup(subject: Any) -> UserContext:
        searches.append(subject)
        time.sleep(0.05)  # a directory that takes its time
        return answer

    monkeypatch.setattr(enricher, "_lookup", lookup)

    async def main() -> list[Any]:
        same = [enricher.enrich(User("bdoe")) for _ in range(10)]
        return list(await asyncio.gather(*same, enricher.enrich(User("carol"))))

    try:
        found = asyncio.run(main())
        assert found == [answer] * 11
        assert [s.name for s in searches].count("bdoe") == 1
        assert len(searches) == 2
        figures = enricher.stats()
        assert (figures["lookups"], figures["shared"], figures["cache_hits"]) == (11, 9, 0)
        asyncio.run(main())  # nothing kept with cache_ttl = 0: searched again
        assert len(searches) == 4
    finally:
        enricher.close()


def test_records_carry_the_event_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fido.adapters.enrichers.active_directory")
    enricher = make(verify=False)
    try:
        [record] = [r for r in caplog.records if "verification is off" in r.getMessage()]
        assert hasattr(record, "event_id")
    finally:
        enricher.close()
