r"""The parts of the `active_directory` enricher that hold no connection.

What the enricher is made of, apart from its connections: the checks of the options,
the TLS context and the ldap3 `Tls` that uses it, RFC 4515 escaping and the search filters,
Windows FILETIME and GeneralizedTime dates, userAccountControl flags, DN parsing, and the
`UserContext` or `HostContext` an entry makes. No I/O.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs
from ldap3 import Tls
from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import parse_dn

from fido._errors import ConfigurationError
from fido._findings import HostContext, UserContext
from fido._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from fido._entities import Host, User

__all__ = [
    "COMPUTER_ATTRIBUTES",
    "DEFAULT_PRIVILEGED_GROUPS",
    "UAC_FLAGS",
    "USER_ATTRIBUTES",
    "Entry",
    "VerifiedTls",
    "cn",
    "computer_filter",
    "config",
    "domains_of",
    "escape",
    "filetime",
    "generalized_time",
    "host_context",
    "in_chain_filter",
    "integer",
    "is_ip",
    "ldap_filter",
    "parent",
    "rdns",
    "text",
    "texts",
    "tls_context",
    "uac_flags",
    "unwrap",
    "user_context",
    "user_filter",
]

log = get_logger("fido.adapters.enrichers.active_directory")

DEFAULT_PRIVILEGED_GROUPS: Final = (
    "Account Operators", "Administrators", "Backup Operators", "DnsAdmins", "Domain Admins",
    "Domain Controllers", "Enterprise Admins", "Enterprise Key Admins",
    "Group Policy Creator Owners", "Key Admins", "Print Operators", "Replicator",
    "Schema Admins", "Server Operators",
)  # fmt: skip
"""Groups whose members (direct or nested) are `privileged`: AD's protected groups."""

UAC_FLAGS: Final = {
    0x1: "SCRIPT", 0x2: "ACCOUNTDISABLE", 0x8: "HOMEDIR_REQUIRED", 0x10: "LOCKOUT",
    0x20: "PASSWD_NOTREQD", 0x40: "PASSWD_CANT_CHANGE", 0x80: "ENCRYPTED_TEXT_PWD_ALLOWED",
    0x100: "TEMP_DUPLICATE_ACCOUNT", 0x200: "NORMAL_ACCOUNT",
    0x800: "INTERDOMAIN_TRUST_ACCOUNT", 0x1000: "WORKSTATION_TRUST_ACCOUNT",
    0x2000: "SERVER_TRUST_ACCOUNT", 0x10000: "DONT_EXPIRE_PASSWORD",
    0x20000: "MNS_LOGON_ACCOUNT", 0x40000: "SMARTCARD_REQUIRED",
    0x80000: "TRUSTED_FOR_DELEGATION", 0x100000: "NOT_DELEGATED",
    0x200000: "USE_DES_KEY_ONLY", 0x400000: "DONT_REQ_PREAUTH", 0x800000: "PASSWORD_EXPIRED",
    0x1000000: "TRUSTED_TO_AUTH_FOR_DELEGATION", 0x4000000: "PARTIAL_SECRETS_ACCOUNT",
}  # fmt: skip
"""userAccountControl bits and Microsoft's names for them (ADS_UF_...)."""

USER_ATTRIBUTES: Final = [
    "sAMAccountName", "userPrincipalName", "mail", "displayName", "cn", "department", "title",
    "employeeType", "manager", "l", "st", "mobile", "telephoneNumber", "company", "memberOf",
    "userAccountControl", "msDS-User-Account-Control-Computed", "lockoutTime",
    "lastLogonTimestamp", "pwdLastSet", "accountExpires", "servicePrincipalName",
    "objectClass", "adminCount", "primaryGroupID", "whenCreated",
]  # fmt: skip
"""What a user look-up reads."""

COMPUTER_ATTRIBUTES: Final = [
    "sAMAccountName", "cn", "dNSHostName", "operatingSystem", "operatingSystemVersion",
    "description", "managedBy", "memberOf", "primaryGroupID", "userAccountControl",
    "lastLogonTimestamp", "pwdLastSet", "whenCreated", "l",
]  # fmt: skip
"""What a computer look-up reads."""

_DISABLED, _LOCKOUT, _SERVER_TRUST, _NO_EXPIRY = 0x2, 0x10, 0x2000, 0x10000
_PRIMARY_GROUPS: Final = {
    512: "Domain Admins", 513: "Domain Users", 514: "Domain Guests", 515: "Domain Computers",
    516: "Domain Controllers", 521: "Read-only Domain Controllers",
}  # fmt: skip
_SERVICE_CLASSES: Final = frozenset(
    {"msds-managedserviceaccount", "msds-groupmanagedserviceaccount"}
)
_EPOCH: Final = datetime(1601, 1, 1, tzinfo=UTC)
_NEVER: Final = 0x7FFFFFFFFFFFFFFF
_IN_CHAIN: Final = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
_MAX_LISTED: Final = 50
_HEX_PAIR: Final = re.compile(r"[0-9a-fA-F]{2}")
_GENERALIZED: Final = re.compile(r"^(\d{14})(?:[.,]\d+)?Z$")


# -- options ---------------------------------------------------------------------------------


def config(message: str) -> ConfigurationError:
    """A `ConfigurationError` that names the adapter."""
    return ConfigurationError(f"active_directory: {message}")


def text(option: str, value: object) -> str:
    """`value`, if it is a non-empty string.

    Raises:
        ConfigurationError: It is not.
    """
    if not isinstance(value, str) or not value.strip():
        raise config(f"{option} must be a non-empty string, not {value!r}")
    return value


def texts(option: str, value: object) -> tuple[str, ...]:
    """`value`, a string or a non-empty list of them, as a tuple.

    Raises:
        ConfigurationError: It is not.
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise config(f"{option} must be a list of strings, not {value!r}")
    return tuple(text(option, item) for item in items)


def integer(option: str, value: object, low: int, high: int) -> int:
    """`value`, if it is an integer from `low` to `high`.

    Raises:
        ConfigurationError: It is not.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise config(f"{option} must be an integer from {low} to {high}, not {value!r}")
    return value


def unwrap(message: str) -> str:
    """An ldap3 error message without the tuple reprs it nests (`("('...',)",)`)."""
    while True:
        if message.startswith("(") and message.endswith(",)"):
            message = message[1:-2]
        elif len(message) > 1 and message[0] == message[-1] and message[0] in "'\"":
            message = message[1:-1].replace("\\" + message[0], message[0])
        else:
            return message


def ldap_filter(option: str, value: object) -> str:
    """`value`, if it is an LDAP filter that ldap3 can send.

    Raises:
        ConfigurationError: It is not.
    """
    checked = text(option, value)
    try:
        parse_filter(checked, None, False, False, None, False)
    except LDAPException as exc:
        raise config(f"{option} is not an LDAP filter ({exc}): {checked!r}") from None
    return checked


def is_ip(text: str) -> bool:
    """Whether `text` is an IP address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- TLS ------------------------------------------------------------------------------------


def tls_context(ca_file: str | None, *, verify: bool) -> ssl.SSLContext:
    """The SSL context for LDAPS and StartTLS: the CAs of `ca_file` (else the system's).

    Raises:
        ConfigurationError: `ca_file` cannot be read as PEM certificates.
    """
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise config(f"ca_file: {exc}") from None
    if not verify:
        log.warning("active_directory: certificate verification is off (verify = false)")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class VerifiedTls(Tls):  # type: ignore[misc]
    """ldap3's `Tls`, wrapping sockets with our own `ssl.SSLContext`.

    ldap3 turns off the context's host name check and matches names itself, only after
    StartTLS and without IP addresses on Python 3.12+. This context checks the chain and
    the host name (IP SANs too) during the handshake, for LDAPS and StartTLS alike.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(validate=context.verify_mode)
        self.context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:  # noqa: FBT001, FBT002
        """Wrap the connection's socket (ldap3 calls it for LDAPS and StartTLS)."""
        connection.socket = self.context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


# -- values ---------------------------------------------------------------------------------


def escape(value: str) -> str:
    r"""A filter assertion value (RFC 4515), every special or non-ASCII character escaped.

    `*`, `(`, `)`, `\`, NUL, the other control characters and every non-ASCII character
    become `\xx` escapes of their UTF-8 bytes: `a*(b)` -> `a\2a\28b\29`.

    Raises:
        UnicodeEncodeError: The text holds a lone surrogate (no account has one).
    """
    out: list[str] = []
    for char in value:
        if char in "*()\\" or not " " <= char <= "~":
            out.extend(f"\\{byte:02x}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def filetime(value: str | int | None, *, expiry: bool = False) -> datetime | None:
    """A Windows FILETIME (100 ns since 1601-01-01 UTC) as a datetime; None for 0 (never).

    With `expiry` (accountExpires), 0x7FFFFFFFFFFFFFFF also means never. Values that are
    not integers, or out of datetime's range, give None.
    """
    try:
        ticks = int(value or 0)
    except ValueError:
        return None
    if ticks <= 0 or (expiry and ticks >= _NEVER):
        return None
    try:
        return _EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def generalized_time(value: str | None) -> datetime | None:
    """LDAP GeneralizedTime in UTC (`20240122063659.0Z`) as a datetime; else None."""
    match = _GENERALIZED.match(value or "")
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def uac_flags(value: int) -> tuple[str, ...]:
    """The names of the userAccountControl bits set in `value` (`512` -> NORMAL_ACCOUNT)."""
    value &= 0xFFFFFFFF  # some tools show the 32 bits signed
    return tuple(name for bit, name in UAC_FLAGS.items() if value & bit)


def _unescape(value: str) -> str:
    data = bytearray()
    index = 0
    while index < len(value):
        pair = value[index + 1 : index + 3]
        if value[index] == "\\" and _HEX_PAIR.fullmatch(pair):
            data.append(int(pair, 16))
            index += 3
            continue
        if value[index] == "\\" and index + 1 < len(value):
            index += 1
        data += value[index].encode("utf-8", "surrogatepass")
        index += 1
    return data.decode("utf-8", "replace")


def rdns(dn: str) -> list[tuple[str, str]]:
    r"""(attribute, value) of each part of a DN, values unescaped; [] if it is not a DN.

    `CN=Doe\, Bea,OU=Staff` and `cn=Doe\2C Bea,ou=Staff` both give
    `[("CN", "Doe, Bea"), ("OU", "Staff")]` (attribute names as written).
    """
    for strip in (False, True):  # spaces around `=` and `,` only if it must
        try:
            parts = parse_dn(dn, strip=strip)
        except (LDAPException, ValueError, IndexError, TypeError):
            continue
        return [(str(kind).strip(), _unescape(str(value))) for kind, value, _ in parts]
    return []


def cn(dn: str) -> str:
    r"""The value of a DN's first part (`CN=Doe\, Bea,OU=Staff` -> `Doe, Bea`), else the DN."""
    parts = rdns(dn)
    return parts[0][1] if parts else dn


def parent(dn: str) -> str | None:
    """The DN of the entry's container (`OU=Staff,DC=corp`); None for a one-part DN."""
    match = re.match(r"^(?:\\.|[^,\\])*,\s*(.+)$", dn)
    return match.group(1) if match else None


def domains_of(base_dn: str) -> frozenset[str]:
    """The domain of a base DN, as a DNS name and as its first label: corp.example, corp."""
    labels = [value.casefold() for kind, value in rdns(base_dn) if kind.casefold() == "dc"]
    return frozenset({".".join(labels), labels[0]}) if labels else frozenset()


def user_filter(user: User, base: str, *, by_name: bool) -> str:
    """The filter for a user: its sAMAccountName (if `by_name`), UPN and mail.

    Raises:
        UnicodeEncodeError: A value cannot be encoded (see `escape`).
    """
    clauses = [f"(sAMAccountName={escape(user.name)})"] if by_name else []
    addresses = dict.fromkeys(a for a in (user.upn, user.email) if a)
    clauses += [f"(userPrincipalName={escape(a)})(mail={escape(a)})" for a in addresses]
    return f"(&{base}(|{''.join(clauses)}))"


def computer_filter(host: Host, base: str, suffixes: Iterable[str] = ()) -> str:
    """The filter for a computer: sAMAccountName `NAME$`, cn and dNSHostName.

    A short name is also matched as `name.<suffix>` in dNSHostName for each DNS suffix of
    `suffixes` (the directory's domains): a name longer than NetBIOS' 15 characters is
    cut in sAMAccountName and cn, never in dNSHostName.

    Raises:
        UnicodeEncodeError: A value cannot be encoded (see `escape`).
    """
    names = dict.fromkeys(
        [host.fqdn] if host.fqdn else [f"{host.name}.{s}" for s in sorted(suffixes) if "." in s]
    )
    clauses = [f"(dNSHostName={escape(name)})" for name in names if name]
    if host.name:
        clauses.insert(0, f"(sAMAccountName={escape(host.name)}$)(cn={escape(host.name)})")
    return f"(&{base}(|{''.join(clauses)}))"


def in_chain_filter(dn: str) -> str:
    """The groups `dn` is a member of, nested ones included (AD's in-chain matching rule)."""
    return f"(&(objectClass=group)(member:{_IN_CHAIN}:={escape(dn)}))"


# -- entries --------------------------------------------------------------------------------


@attrs.frozen
class Entry:
    """One search result: its DN and its attributes (names lower-cased, values as text).

    Attributes:
        dn: The distinguished name.
        values: Attribute name (lower case, options such as `;range=` dropped) -> values.
    """

    dn: str
    values: dict[str, tuple[str, ...]] = attrs.field(factory=dict)

    @classmethod
    def from_response(cls, item: dict[str, Any]) -> Entry:
        """From one of ldap3's `connection.response` items (its `raw_attributes`)."""
        raw = item.get("raw_attributes") or {}
        values = {
            str(name).split(";", 1)[0].lower(): tuple(
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in found
            )
            for name, found in raw.items()
        }
        return cls(str(item.get("dn", "")), values)

    def get(self, name: str) -> str | None:
        """The first value of an attribute, if it has one."""
        found = self.values.get(name.lower())
        return found[0] if found else None

    def all(self, name: str) -> tuple[str, ...]:
        """Every value of an attribute."""
        return self.values.get(name.lower(), ())

    def number(self, name: str) -> int | None:
        """The attribute's value as an integer, if it is one."""
        try:
            return int(self.get(name) or "")
        except ValueError:
            return None

    def same(self, name: str, value: str | None) -> bool:
        """Whether the attribute's value is `value`, ignoring case."""
        found = self.get(name)
        return value is not None and found is not None and found.casefold() == value.casefold()

    @property
    def name(self) -> str:
        """The display name, else the cn, else the first value of the DN."""
        return self.get("displayName") or self.get("cn") or cn(self.dn)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _compact(details: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in details.items() if value not in (None, [])}


def user_context(
    source: str,
    user: User,
    entry: Entry,
    *,
    groups: Collection[str] = (),
    manager: Entry | None = None,
    privileged_groups: Collection[str] = DEFAULT_PRIVILEGED_GROUPS,
    extra: dict[str, Any] | None = None,
) -> UserContext:
    """A user's entry as a `UserContext`.

    Args:
        source: The enricher's name.
        user: The user looked up.
        entry: The user's entry.
        groups: The DNs of its groups, nested ones included (default: memberOf).
        manager: The manager's entry.
        privileged_groups: Names (or DNs) of privileged groups, case-folded.
        extra: Further details.
    """
    uac = entry.number("userAccountControl")
    computed = entry.number("msDS-User-Account-Control-Computed")
    lockout = entry.number("lockoutTime")
    if computed is not None:  # AD's own view: lockouts that have run out are not counted
        locked: bool | None = bool(computed & _LOCKOUT)
    elif uac is not None or lockout is not None:
        locked = bool((uac or 0) & _LOCKOUT) or (lockout or 0) > 0
    else:
        locked = None
    kind = entry.get("employeeType")
    classes = {c.casefold() for c in entry.all("objectClass")}
    service = (
        bool(entry.all("servicePrincipalName"))
        or (kind is not None and "service" in kind.casefold())
        or bool(classes & _SERVICE_CLASSES)
    )
    primary = _PRIMARY_GROUPS.get(entry.number("primaryGroupID") or 0)
    dns = list(groups or entry.all("memberOf"))
    names = [cn(dn) for dn in dns] + ([primary] if primary else [])
    folded = {g.casefold() for g in privileged_groups}
    privileged = any(n.casefold() in folded for n in names) or any(
        dn.casefold() in folded for dn in dns
    )
    details = {
        "sam_account_name": entry.get("sAMAccountName"),
        "user_principal_name": entry.get("userPrincipalName"),
        "company": entry.get("company"),
        "user_account_control": uac,
        "uac_flags": list(uac_flags(uac | (computed or 0))) if uac is not None else [],
        "admin_count": entry.number("adminCount"),
        "primary_group": primary,
        "member_of": list(entry.all("memberOf")[:_MAX_LISTED]),
        "service_principal_names": list(entry.all("servicePrincipalName")[:_MAX_LISTED]),
        "lockout_time": _iso(filetime(lockout)),
        "when_created": _iso(generalized_time(entry.get("whenCreated"))),
        "manager_dn": entry.get("manager"),
        "manager_title": manager.get("title") if manager else None,
        **(extra or {}),
    }
    return UserContext(
        source=source,
        subject=user,
        fetched_at=datetime.now(UTC),
        display_name=entry.name,
        email=entry.get("mail"),
        title=entry.get("title"),
        department=entry.get("department"),
        manager=manager.name if manager else None,
        manager_email=manager.get("mail") if manager else None,
        employee_type=kind,
        location=", ".join(v for v in (entry.get("l"), entry.get("st")) if v) or None,
        phone=entry.get("mobile") or entry.get("telephoneNumber"),
        groups=names,
        privileged=privileged,
        enabled=None if uac is None else not uac & _DISABLED,
        locked=locked,
        service_account=service,
        password_never_expires=None if uac is None else bool(uac & _NO_EXPIRY),
        last_logon=filetime(entry.get("lastLogonTimestamp")),
        password_last_set=filetime(entry.get("pwdLastSet")),
        account_expires=filetime(entry.get("accountExpires"), expiry=True),
        dn=entry.dn,
        details=_compact(details),
    )


def host_context(source: str, host: Host, entry: Entry, owner: Entry | None = None) -> HostContext:
    """A computer's entry as a `HostContext`.

    Args:
        source: The enricher's name.
        host: The host looked up.
        entry: The computer's entry.
        owner: The entry its managedBy names.
    """
    uac = entry.number("userAccountControl")
    system = entry.get("operatingSystem")
    if uac is not None and uac & _SERVER_TRUST:  # a domain controller
        is_server: bool | None = True
    else:
        is_server = None if system is None else "server" in system.casefold()
    primary = _PRIMARY_GROUPS.get(entry.number("primaryGroupID") or 0)
    groups = [cn(dn) for dn in entry.all("memberOf")] + ([primary] if primary else [])
    details = {
        "sam_account_name": entry.get("sAMAccountName"),
        "dns_host_name": entry.get("dNSHostName"),
        "os_version": entry.get("operatingSystemVersion"),
        "ou": parent(entry.dn),
        "enabled": None if uac is None else not uac & _DISABLED,
        "user_account_control": uac,
        "uac_flags": list(uac_flags(uac)) if uac is not None else [],
        "primary_group": primary,
        "password_last_set": _iso(filetime(entry.get("pwdLastSet"))),
        "when_created": _iso(generalized_time(entry.get("whenCreated"))),
    }
    return HostContext(
        source=source,
        subject=host,
        fetched_at=datetime.now(UTC),
        owner=owner.name if owner else None,
        os=system,
        is_server=is_server,
        managed=True,
        groups=groups,
        location=entry.get("l"),
        description=entry.get("description"),
        dn=entry.dn,
        last_seen=filetime(entry.get("lastLogonTimestamp")),
        details=_compact(details),
    )
