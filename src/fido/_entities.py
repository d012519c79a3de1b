"""The entities an alert is about: the `Host` and the `User`."""

from __future__ import annotations

import re
from typing import Final

import attrs

from fido._errors import InvalidEvent
from fido._hosts import canonical_ip
from fido._observable import Observable, ObservableKind, has_invisible

__all__ = ["Host", "User"]

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAC_SEPARATORS: Final = re.compile(r"[:\-.\s]")
_MAX_NAME: Final = 256


def _text(value: object, field: str, *, fold: bool = False) -> str | None:
    """Free text (an OS name), or with `fold` a name: no format or line-separator character."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"expected a str, not {type(value).__name__}", field=field)
    text = value.strip()
    if not text:
        return None
    if len(text) > _MAX_NAME or _CONTROL.search(text):
        raise InvalidEvent(f"at most {_MAX_NAME} characters and no control characters", field=field)
    if fold and has_invisible(text):
        raise InvalidEvent("a name has no format or line-separator characters", field=field)
    return text.casefold() if fold else text


def _ip(value: object, field: str) -> str | None:
    text = _text(value, field)
    if text is None:
        return None
    try:
        return canonical_ip(text)
    except ValueError:
        raise InvalidEvent("not an IP address", field=field) from None


def _mac(value: object, field: str) -> str | None:
    text = _text(value, field)
    if text is None:
        return None
    digits = _MAC_SEPARATORS.sub("", text).lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise InvalidEvent("not a MAC address (12 hex digits)", field=field)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@attrs.frozen(init=False)
class Host:
    """A machine an alert is about.

    Host names are case-insensitive: `name` and `fqdn` are case-folded. A dotted `name`
    is taken as the fully qualified name and split: `Host(name="WS-042.corp.example")`
    has `name="ws-042"` and `fqdn="ws-042.corp.example"`. `ip` is canonical, as an
    `Observable`'s (`::ffff:192.0.2.1` for an IPv4-mapped address, the same on every
    Python version), `mac` is `aa:bb:cc:dd:ee:ff` whatever the input notation.

    Args:
        name: The short host name.
        fqdn: The fully qualified domain name.
        ip: The IPv4 or IPv6 address the alert saw.
        mac: The MAC address, in any common notation.
        os: The operating system as the detector reported it.

    Raises:
        InvalidEvent: A value is malformed, or none of name, fqdn, ip and mac is given.
    """

    name: str | None
    fqdn: str | None
    ip: str | None
    mac: str | None
    os: str | None

    def __init__(
        self,
        name: str | None = None,
        *,
        fqdn: str | None = None,
        ip: str | None = None,
        mac: str | None = None,
        os: str | None = None,
    ) -> None:
        short = _text(name, "host.name", fold=True)
        full = _text(fqdn, "host.fqdn", fold=True)
        if full is not None:
            full = full.rstrip(".")
        if short is not None and "." in short and _ip_or_none(short) is None:
            full = full or short.rstrip(".")
            short = short.split(".", 1)[0]
        if short is None and full is not None:
            short = full.split(".", 1)[0]
        address = _ip(ip, "host.ip")
        hardware = _mac(mac, "host.mac")
        if short is None and address is None and hardware is None:
            raise InvalidEvent("a host needs a name, an fqdn, an ip or a mac", field="host")
        self.__attrs_init__(short, full, address, hardware, _text(os, "host.os"))

    @property
    def key(self) -> str:
        """What identifies the host for correlation: its name, else its IP, else its MAC."""
        return self.name or self.ip or self.mac or ""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every identifier correlation and history match on: the name and the IP.

        An EDR that reports `ws-042` (10.1.2.3) and an IDS that reports only 10.1.2.3
        speak of one machine. The MAC counts only when there is neither.
        """
        name, ip = self.name, self.ip
        if name is not None:
            return (name,) if ip is None else (name, ip)
        if ip is not None:
            return (ip,)
        return () if self.mac is None else (self.mac,)

    def observables(self) -> tuple[Observable, ...]:
        """The host's IP address as an observable, if it has one."""
        if self.ip is None:
            return ()
        kind = ObservableKind.IPV6 if ":" in self.ip else ObservableKind.IPV4
        return (Observable(kind, self.ip),)


def _ip_or_none(text: str) -> str | None:
    try:
        return canonical_ip(text)
    except ValueError:
        return None


@attrs.frozen(init=False)
class User:
    r"""An account an alert is about.

    Directory accounts (Active Directory, Entra ID, LDAP, Okta) are case-insensitive, so
    every field is case-folded. The usual notations are split: `User("CORP\\bdoe")` has
    `name="bdoe"` and `domain="corp"`; `User("bdoe@corp.example")` has `name="bdoe"`,
    `upn="bdoe@corp.example"` and `domain="corp.example"` (a UPN's suffix is the domain
    when none is given).

    Args:
        name: The account name (sAMAccountName), or `DOMAIN\name` or `name@domain`.
        domain: The NetBIOS or DNS domain of the account.
        upn: The user principal name.
        email: The mail address.

    Raises:
        InvalidEvent: A value is malformed (an address without its local part or its
            domain), or none of name, upn and email is given.
    """

    name: str
    domain: str | None
    upn: str | None
    email: str | None

    def __init__(
        self,
        name: str | None = None,
        *,
        domain: str | None = None,
        upn: str | None = None,
        email: str | None = None,
    ) -> None:
        account = _text(name, "user.name", fold=True)
        realm = _text(domain, "user.domain", fold=True)
        principal = _text(upn, "user.upn", fold=True)
        mail = _text(email, "user.email", fold=True)
        upn_field = "user.upn"
        if account is not None and "\\" in account:
            prefix, _, account = account.rpartition("\\")
            realm = realm or prefix or None
        elif account is not None and "@" in account:
            if principal is None:
                principal, upn_field = account, "user.name"
            account = account.rpartition("@")[0]
        if principal is not None and "@" in principal:
            local, _, suffix = principal.rpartition("@")
            if not local or not suffix:
                message = "a user principal name has the form name@domain"
                raise InvalidEvent(message, field=upn_field)
            realm = realm or suffix
        if mail is not None:
            local, at, suffix = mail.rpartition("@")
            if not at or not local or not suffix:
                message = "an email address has the form local@domain"
                raise InvalidEvent(message, field="user.email")
        if not account:
            source = principal or mail
            if source is None:
                raise InvalidEvent("a user needs a name, a upn or an email", field="user")
            account = source.rpartition("@")[0] or source
        self.__attrs_init__(account, realm, principal, mail)

    @property
    def key(self) -> str:
        r"""What identifies the account for correlation: `domain\name`, or the name alone.

        The domain counts when it is known: `WS-042\administrator` (a local account) and
        `CORP\administrator` (a domain account) are two accounts. A NetBIOS domain and a
        DNS domain are not matched with each other (`CORP\bdoe` and `bdoe@corp.example`
        have the keys `corp\bdoe` and `corp.example\bdoe`): fido cannot know that they
        are one directory.
        """
        return f"{self.domain}\\{self.name}" if self.domain else self.name

    def __str__(self) -> str:
        r"""`domain\name`, or the UPN where the domain is its suffix, or the name alone."""
        if self.upn is not None and self.domain == self.upn.rpartition("@")[2]:
            return self.upn
        return f"{self.domain}\\{self.name}" if self.domain else self.name
