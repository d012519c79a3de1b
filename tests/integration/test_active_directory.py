"""The `active_directory` enricher against a real OpenLDAP slapd on 127.0.0.1.

The directory (tests/data/ldap/seed.ldif) holds people with a manager chain, an admin
account nested three groups deep into Administrators, a group cycle, disabled, locked and
service accounts, names with parentheses and umlauts, and three computers. slapd knows no
in-chain matching rule, so the nested groups come from the walk over memberOf.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from tests.integration.ldap_server import BIND_DN, BIND_PASSWORD, SUFFIX, LdapServer, free_port

from fido import EnrichmentError, Host, HostContext, User, UserContext
from fido.adapters.enrichers import active_directory
from fido.adapters.enrichers.active_directory import ActiveDirectory
from fido.testing import check_enricher

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fido import Finding, Subject

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapServer]:
    running = LdapServer(tmp_path_factory.mktemp("slapd"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def make(server: LdapServer, **options: Any) -> ActiveDirectory:
    settings: dict[str, Any] = {
        "url": server.ldap_url,
        "start_tls": True,
        "ca_file": str(server.ca_file),
        "base_dn": SUFFIX,
        "bind_dn": BIND_DN,
        "password": BIND_PASSWORD,
        "connect_timeout": 3,
        "request_timeout": 3,
    }
    settings.update(options)
    return ActiveDirectory(**settings)


@pytest.fixture(scope="module")
def directory(server: LdapServer) -> Iterator[ActiveDirectory]:
    """One enricher for the read-only tests (no cache: each test asks the server)."""
    enricher = make(server, cache_ttl=0)
    yield enricher
    enricher.close()


def lookup(enricher: ActiveDirectory, subject: Subject) -> Finding | None:
    return asyncio.run(enricher.enrich(subject))


def user(enricher: ActiveDirectory, subject: User) -> UserContext:
    found = lookup(enricher, subject)
    assert isinstance(found, UserContext), found
    return found


def host(enricher: ActiveDirectory, subject: Host) -> HostContext:
    found = lookup(enricher, subject)
    assert isinstance(found, HostContext), found
    return found


# -- users ---------------------------------------------------------------------------------


def test_a_user_by_domain_and_sam_account_name(directory: ActiveDirectory) -> None:
    found = user(directory, User("CORP\\bdoe"))
    assert found.source == directory.name
    assert found.subject == User("CORP\\bdoe")
    assert found.from_cache is False
    assert found.dn is not None
    assert found.dn.lower() == "cn=doe\\2c bea,ou=staff,dc=corp,dc=example"
    assert (found.display_name, found.email) == ("Bea Doe", "bdoe@corp.example")
    assert (found.title, found.department) == ("Senior Accountant", "Finance")
    assert found.employee_type == "Employee"
    assert found.location == "Lyon, Auvergne-Rhône-Alpes"
    assert found.phone == "+33 6 12 34 56 78"
    assert (found.enabled, found.locked, found.service_account) == (True, False, False)
    assert found.password_never_expires is True
    assert found.details["sam_account_name"] == "bdoe"
    assert found.details["uac_flags"] == ["NORMAL_ACCOUNT", "DONT_EXPIRE_PASSWORD"]
    assert found.details["when_created"] == "2024-01-22T06:36:59+00:00"
    assert found.details["nested_groups"] == "walk"  # slapd is not AD: no in-chain rule


def test_filetime_dates_are_decoded(directory: ActiveDirectory) -> None:
    bea = user(directory, User("bdoe"))
    assert bea.last_logon == datetime(2024, 3, 27, 4, 30, 9, 639988, tzinfo=UTC)
    assert bea.password_last_set == datetime(2024, 1, 22, 6, 15, 39, 870356, tzinfo=UTC)
    assert bea.account_expires is None  # accountExpires 0: never
    etl = user(directory, User("svc-etl"))
    assert etl.account_expires == datetime(2030, 1, 1, tzinfo=UTC)
    locked = user(directory, User("llocked"))
    assert (locked.last_logon, locked.password_last_set) == (None, None)  # 0: never


def test_a_user_by_upn_and_by_mail(directory: ActiveDirectory) -> None:
    assert user(directory, User("carol@corp.example")).display_name == "Carol Chief"
    by_mail = user(directory, User(email="carol.chief@corp.example"))
    assert by_mail.details["sam_account_name"] == "carol"
    # name@domain that is a mail address rather than a UPN
    assert user(directory, User("bob.boss@corp.example")).details["sam_account_name"] == "bboss"


def test_a_foreign_address_is_not_read_as_a_local_account_name(
    directory: ActiveDirectory,
) -> None:
    # bdoe@evil.example must not find CORP\bdoe through sAMAccountName=bdoe
    assert lookup(directory, User("bdoe@evil.example")) is None
    assert not directory.accepts(User("OTHERDOM\\bdoe"))
    assert directory.accepts(User("corp.example\\bdoe"))


def test_the_manager_entry(directory: ActiveDirectory) -> None:
    bea = user(directory, User("bdoe"))
    assert (bea.manager, bea.manager_email) == ("Bob Boss", "bob.boss@corp.example")
    assert bea.details["manager_title"] == "Finance Director"
    bob = user(directory, User("bboss"))
    assert (bob.manager, bob.manager_email) == ("Carol Chief", "carol.chief@corp.example")
    assert user(directory, User("carol")).manager is None
    gone = user(directory, User("ddis"))  # the manager's entry no longer exists
    assert (gone.manager, gone.manager_email) == ("Gone Boss", None)


def test_nested_groups_make_an_account_privileged(directory: ActiveDirectory) -> None:
    admin = user(directory, User("adm-bdoe"))
    assert set(admin.groups) == {"Tier0 Admins", "Domain Admins", "Administrators"}
    assert admin.privileged is True
    assert admin.details["admin_count"] == 1
    assert len(admin.details["member_of"]) == 1  # only Tier0 Admins directly


def test_the_walk_ends_on_a_group_cycle(directory: ActiveDirectory) -> None:
    bea = user(directory, User("bdoe"))
    assert set(bea.groups) == {"Finance", "All Staff", "Loop A", "Loop B"}
    assert bea.privileged is False
    assert "groups_truncated" not in bea.details


def test_the_walk_is_bounded(server: LdapServer) -> None:
    shallow = make(server, group_depth=1)
    few = make(server, max_groups=2)
    direct = make(server, nested_groups="direct")
    try:
        admin = user(shallow, User("adm-bdoe"))
        assert admin.groups == ("Tier0 Admins",)
        assert (admin.privileged, admin.details["groups_truncated"]) == (False, True)
        admin = user(few, User("adm-bdoe"))
        assert admin.groups == ("Tier0 Admins", "Domain Admins")
        assert admin.details["groups_truncated"] is True
        admin = user(direct, User("adm-bdoe"))
        assert (admin.groups, admin.details["nested_groups"]) == (("Tier0 Admins",), "direct")
    finally:
        for enricher in (shallow, few, direct):
            enricher.close()


def test_privileged_groups_can_be_configured(server: LdapServer) -> None:
    enricher = make(server, privileged_groups=["Finance"])
    try:
        assert user(enricher, User("bdoe")).privileged is True
        assert user(enricher, User("adm-bdoe")).privileged is False
    finally:
        enricher.close()


def test_disabled_and_locked_accounts(directory: ActiveDirectory) -> None:
    disabled = user(directory, User("ddis"))
    assert (disabled.enabled, disabled.locked) == (False, False)
    assert "ACCOUNTDISABLE" in disabled.details["uac_flags"]
    assert disabled.account_expires is None  # 0x7FFFFFFFFFFFFFFF: never
    locked = user(directory, User("llocked"))
    assert (locked.enabled, locked.locked) == (True, True)  # lockoutTime > 0
    assert locked.details["lockout_time"] == "2025-10-01T08:00:00+00:00"


def test_service_accounts(directory: ActiveDirectory) -> None:
    backup = user(directory, User("svc-backup"))
    assert backup.service_account is True  # a servicePrincipalName
    assert backup.details["service_principal_names"] == ["MSSQLSvc/db1.corp.example:1433"]
    assert user(directory, User("svc-etl")).service_account is True  # employeeType
    assert user(directory, User("carol")).service_account is False


def test_names_with_special_and_non_ascii_characters(directory: ActiveDirectory) -> None:
    assert user(directory, User("j(smith)")).display_name == "Jo Smith"
    assert user(directory, User("jmüller")).display_name == "Jürgen Müller"
    assert user(directory, User("JÜRGEN@corp.example")).details["sam_account_name"] == "jmüller"


def test_an_unknown_user_is_none(directory: ActiveDirectory) -> None:
    assert lookup(directory, User("nobody")) is None
    assert lookup(directory, User("CORP\\nobody")) is None


@pytest.mark.parametrize(
    "name",
    [
        "*",
        "*)(objectClass=*",
        "admin)(|(cn=*",
        "bdoe)(|(sAMAccountName=*",
        "bd*",
        "*)(sAMAccountName=bdoe",
        "bdoe)(!(cn=x",
        "\\2a",
        "bdoe\\29",
        "x))(|(objectClass=*)(cn=x",
    ],
)
def test_filter_injection_finds_nothing(directory: ActiveDirectory, name: str) -> None:
    assert lookup(directory, User(name)) is None
    assert lookup(directory, User(f"{name}@corp.example")) is None
    assert lookup(directory, Host(name.replace(".", "_"))) is None


def test_a_name_that_cannot_be_encoded_finds_nothing(directory: ActiveDirectory) -> None:
    assert lookup(directory, User("bdoe\ud800")) is None
    assert lookup(directory, Host("ws\ud800")) is None


# -- computers -----------------------------------------------------------------------------


def test_a_workstation(directory: ActiveDirectory) -> None:
    found = host(directory, Host("WS-042"))
    assert found.subject == Host("WS-042")
    assert (found.os, found.is_server, found.managed) == ("Windows 11 Enterprise", False, True)
    assert found.description == "Kretts, Topsy"
    assert found.owner == "Bea Doe"
    assert found.location == "Lyon"
    assert found.groups == ("GPOD Windows 11", "Domain Computers")
    assert found.dn is not None
    assert found.dn.lower() == "cn=ws-042,ou=workstations,ou=computers,dc=corp,dc=example"
    assert found.details["ou"].lower() == "ou=workstations,ou=computers,dc=corp,dc=example"
    assert found.details["os_version"] == "10.0 (26100)"
    assert found.last_seen == datetime(2025, 9, 30, 14, 42, 35, 784008, tzinfo=UTC)
    assert found.details["enabled"] is True


def test_computers_by_fqdn_and_servers(directory: ActiveDirectory) -> None:
    assert host(directory, Host("ws-042.corp.example")).details["sam_account_name"] == "WS-042$"
    server = host(directory, Host(fqdn="srv-db1.corp.example"))
    assert (server.os, server.is_server) == ("Windows Server 2022 Standard", True)
    controller = host(directory, Host("dc1", ip="10.0.0.5"))
    assert controller.is_server is True
    assert "Domain Controllers" in controller.groups  # primaryGroupID 516
    assert "TRUSTED_FOR_DELEGATION" in controller.details["uac_flags"]


def test_a_long_host_name_is_found_by_its_dns_name(directory: ActiveDirectory) -> None:
    kiosk = host(directory, Host("kiosk-lobby-building-7"))
    assert kiosk.details["sam_account_name"] == "KIOSK-LOBBY-BUI$"
    assert host(directory, Host("KIOSK-LOBBY-BUI")).dn == kiosk.dn


def test_unknown_and_foreign_computers_are_none(directory: ActiveDirectory) -> None:
    assert lookup(directory, Host("ws-999")) is None
    assert lookup(directory, Host("ws-042.other.example")) is None  # same name, other domain
    assert not directory.accepts(Host(ip="10.1.2.3"))
    assert lookup(directory, Host(ip="10.1.2.3")) is None
    # a user is not a computer, nor a computer a user
    assert lookup(directory, Host("bdoe")) is None
    assert lookup(directory, User("WS-042$")) is None


# -- connections, TLS, errors ---------------------------------------------------------------


def test_ldaps_with_the_test_ca(server: LdapServer) -> None:
    enricher = make(server, url=server.ldaps_url, start_tls=False)
    try:
        assert user(enricher, User("bdoe")).display_name == "Bea Doe"
    finally:
        enricher.close()


@pytest.mark.parametrize("ldaps", [True, False], ids=["ldaps", "starttls"])
def test_a_certificate_from_another_ca_is_refused(server: LdapServer, *, ldaps: bool) -> None:
    url = server.ldaps_url if ldaps else server.ldap_url
    enricher = make(server, url=url, start_tls=not ldaps, ca_file=str(server.other_ca_file))
    try:
        with pytest.raises(EnrichmentError) as caught:
            lookup(enricher, User("bdoe"))
        assert "certificate verify failed" in str(caught.value)
        assert caught.value.adapter == enricher.name
        assert caught.value.subject == "user:bdoe"
    finally:
        enricher.close()


@pytest.mark.parametrize("ldaps", [True, False], ids=["ldaps", "starttls"])
def test_the_host_name_is_checked(server: LdapServer, *, ldaps: bool) -> None:
    # "127.1" reaches 127.0.0.1, but it is not a name the certificate holds
    port = server.ldaps_port if ldaps else server.ldap_port
    url = f"{'ldaps' if ldaps else 'ldap'}://127.1:{port}"
    enricher = make(server, url=url, start_tls=not ldaps)
    try:
        with pytest.raises(EnrichmentError, match="Hostname mismatch"):
            lookup(enricher, User("bdoe"))
    finally:
        enricher.close()


def test_verification_can_be_turned_off(server: LdapServer) -> None:
    enricher = make(server, url=server.ldaps_url, start_tls=False, ca_file=None, verify=False)
    try:
        assert user(enricher, User("bdoe")).display_name == "Bea Doe"
    finally:
        enricher.close()


def test_a_wrong_password_is_an_error_without_the_password(server: LdapServer) -> None:
    wrong = "Wr0ng-Secret-Pa55!"
    enricher = make(server, password=wrong)
    try:
        with pytest.raises(EnrichmentError) as caught:
            lookup(enricher, User("bdoe"))
        error = caught.value
        assert "invalidCredentials" in str(error)
        assert (error.adapter, error.subject, error.skipped) == (enricher.name, "user:bdoe", False)
        for text in (str(error), repr(error), repr(error.args), repr(enricher)):
            assert wrong not in text
        assert error.__cause__ is None
        assert error.__context__ is None
        assert enricher.stats()["errors"] == 1
    finally:
        enricher.close()


def test_no_server_answers(server: LdapServer) -> None:
    enricher = make(server, url=f"ldap://127.0.0.1:{free_port()}", connect_timeout=1)
    try:
        with pytest.raises(EnrichmentError, match="cannot connect"):
            lookup(enricher, User("bdoe"))
    finally:
        enricher.close()


def test_the_next_url_is_tried(server: LdapServer) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    enricher = make(server, url=[dead, server.ldap_url], connect_timeout=1)
    try:
        assert user(enricher, User("bdoe")).display_name == "Bea Doe"
        assert user(enricher, User("carol")).display_name == "Carol Chief"
        assert enricher.stats()["connections"] == 1
    finally:
        enricher.close()


def test_a_base_dn_that_does_not_exist(server: LdapServer) -> None:
    enricher = make(server, base_dn="DC=elsewhere,DC=example")
    try:
        for name in ("bdoe", "carol"):
            with pytest.raises(EnrichmentError, match="noSuchObject"):
                lookup(enricher, User(name))
        assert enricher.stats()["connections"] == 1  # the connection itself was fine
    finally:
        enricher.close()


def test_idle_connections_are_not_kept_forever(
    server: LdapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    enricher = make(server, cache_ttl=0)
    try:
        assert user(enricher, User("bdoe")).display_name == "Bea Doe"
        monkeypatch.setattr(active_directory, "_IDLE_LIMIT", 0.0)
        assert user(enricher, User("carol")).display_name == "Carol Chief"
        assert enricher.stats()["connections"] == 2
    finally:
        enricher.close()


def test_paged_searches(server: LdapServer) -> None:
    # bdoe@corp.example is Bea's UPN and mail, and the mail of her admin account too
    enricher = make(server, page_size=1)
    try:
        bea = user(enricher, User("bdoe@corp.example"))
        assert bea.details["sam_account_name"] == "bdoe"  # the UPN wins over a mail
        assert bea.details["matches"] == 2
        figures = enricher.stats()
        assert figures["pages"] > figures["searches"]
    finally:
        enricher.close()


def test_answers_are_cached(server: LdapServer) -> None:
    enricher = make(server)
    try:
        first = user(enricher, User("bdoe"))
        again = user(enricher, User("bdoe"))
        assert (first.from_cache, again.from_cache) == (False, True)
        assert again.fetched_at == first.fetched_at
        assert lookup(enricher, User("nobody")) is None
        assert lookup(enricher, User("nobody")) is None
        figures = enricher.stats()
        assert (figures["lookups"], figures["cache_hits"], figures["not_found"]) == (4, 2, 1)
    finally:
        enricher.close()


def test_concurrent_lookups_share_a_small_pool(server: LdapServer) -> None:
    enricher = make(server, pool_size=2, cache_ttl=0)
    names = ["bdoe", "carol", "bboss", "ddis", "llocked", "svc-etl"] * 3

    async def many() -> list[Finding | None]:
        return list(await asyncio.gather(*(enricher.enrich(User(n)) for n in names)))

    try:
        found = asyncio.run(many())
        assert [f.details["sam_account_name"] for f in found if f is not None] == names
        assert enricher.stats()["connections"] <= 2
    finally:
        enricher.close()


def test_a_dropped_connection_is_replaced(server: LdapServer) -> None:
    enricher = make(server, cache_ttl=0)
    try:
        assert user(enricher, User("bdoe")).display_name == "Bea Doe"
        ((connection, _),) = enricher._idle
        connection.socket.shutdown(socket.SHUT_RDWR)  # as when the server drops it
        assert user(enricher, User("carol")).display_name == "Carol Chief"
        assert enricher.stats()["connections"] == 2
    finally:
        enricher.close()


def test_after_close_lookups_are_skipped(server: LdapServer) -> None:
    enricher = make(server)
    asyncio.run(enricher.aclose())
    with pytest.raises(EnrichmentError) as caught:
        lookup(enricher, User("bdoe"))
    assert caught.value.skipped is True
    enricher.close()  # twice is fine


def test_the_enricher_keeps_its_protocol(server: LdapServer) -> None:
    enricher = make(server)
    try:
        check_enricher(enricher, secrets=[BIND_PASSWORD])
        check_enricher(
            enricher,
            [User("CORP\\bdoe"), User("adm-bdoe"), Host("ws-042"), User("*)(cn=*")],
            secrets=[BIND_PASSWORD],
        )
    finally:
        enricher.close()


def test_a_refused_bind_keeps_the_protocol(server: LdapServer) -> None:
    wrong = "An0ther-Wrong-Pa55"
    enricher = make(server, password=wrong)
    try:
        check_enricher(enricher, [User("bdoe"), Host("ws-042")], secrets=[wrong])
    finally:
        enricher.close()


def test_acheck_binds_and_names_the_server(server: LdapServer) -> None:
    enricher = make(server)
    try:
        detail = asyncio.run(enricher.acheck())
        assert detail == f"bound to {server.ldap_url} as {BIND_DN}; nested groups by walk"
        assert enricher.stats()["idle_connections"] == 1  # kept for the look-ups to come
    finally:
        enricher.close()
    wrong = "Yet-An0ther-Wrong-Pa55"
    refused = make(server, password=wrong)
    try:
        with pytest.raises(EnrichmentError, match="refused") as info:
            asyncio.run(refused.acheck())
        assert wrong not in str(info.value)
    finally:
        refused.close()
    with pytest.raises(EnrichmentError, match="closed"):
        asyncio.run(refused.acheck())
