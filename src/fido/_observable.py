"""Observables: the indicators an alert carries (hashes, addresses, names, URLs, files)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import ClassVar, Final

import attrs

from fido import _hosts
from fido._enums import Enum
from fido._errors import InvalidObservable
from fido._hosts import SCHEME as _SCHEME
from fido._hosts import ascii_digits, ip_text, parse_ip, printable, url_host

__all__ = ["Observable", "ObservableKind"]


class ObservableKind(Enum):
    """The kind of an `Observable`. The value is the name used in dicts, TOML and JSON."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DOMAIN = "domain"
    URL = "url"
    EMAIL = "email"
    FILENAME = "filename"

    @property
    def is_hash(self) -> bool:
        """Whether this kind is a file hash (MD5, SHA-1, SHA-256)."""
        return self in _HASH_LENGTHS

    @property
    def is_ip(self) -> bool:
        """Whether this kind is an IP address."""
        return self is ObservableKind.IPV4 or self is ObservableKind.IPV6


_HASH_LENGTHS: Final = {
    ObservableKind.MD5: 32,
    ObservableKind.SHA1: 40,
    ObservableKind.SHA256: 64,
}
_HASH_BY_LENGTH: Final = {length: kind for kind, length in _HASH_LENGTHS.items()}
# Members for `defanged`, which explanations call often: `ObservableKind.URL` is a
# look-up through the enum's metaclass each time, a module constant is not.
_DOTTED: Final = frozenset({ObservableKind.DOMAIN, ObservableKind.IPV4})
_IPV6: Final = ObservableKind.IPV6
_EMAIL: Final = ObservableKind.EMAIL
_URL: Final = ObservableKind.URL
_HEX: Final = frozenset("0123456789abcdef")

# Networks that are not worth an external look-up: private (RFC 1918, RFC 4193), shared
# (RFC 6598), loopback, link-local, multicast, documentation, benchmarking and reserved.
# Spelled out here (rather than `ip.is_private`) because that attribute changed meaning
# between Python 3.11 and 3.13; this list gives the same answer on every version.
_INTERNAL_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

# Refanging: the defang notations seen in threat reports, undone in this order.
_REFANG: Final = (
    (re.compile(r"\[\s*(?:\.|dot)\s*\]|\(\s*(?:\.|dot)\s*\)|\{\s*(?:\.|dot)\s*\}", re.I), "."),
    (re.compile(r"\[\s*:\s*\]"), ":"),
    (re.compile(r"\[\s*://\s*\]"), "://"),
    (re.compile(r"\[\s*/\s*\]"), "/"),
    (re.compile(r"\[\s*(?:@|at)\s*\]|\(\s*(?:@|at)\s*\)|\{\s*(?:@|at)\s*\}", re.I), "@"),
)
_REFANG_SCHEME: Final = re.compile(r"^(?:hxxps?|fxp)(?=://)", re.I)
# The scheme and its separator as they may be written defanged: what ends the part of a
# text that refanging touches is the first "/", "\", "?" or "#" after it.
_HEAD: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*(?:://|\[\s*://\s*\]|\[\s*:\s*\]//)")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_INVISIBLE: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
_DEFANG_SCHEMES: Final = {"http": "hxxp", "https": "hxxps", "ftp": "fxp"}
_MAX_TEXT: Final = 8192
# Special-use names (RFC 6761 localhost, invalid and test; RFC 6762 local; RFC 8375
# home.arpa; ICANN's internal): never names on the internet, so never worth a look-up.
_SPECIAL_USE: Final = ("localhost", "local", "home.arpa", "internal", "invalid", "test")

# File extensions that mark a dotted name as a file rather than a domain. Extensions that
# are also top-level domains (.py, .sh, .app, .mov, .one, ...) are left out, except .zip,
# which in an alert is almost always an archive. Pass `kind=` to decide it yourself.
_EXTENSION_NAMES: Final = """
    7z ace apk appx bat bin cab chm cmd cpl crx dat deb dll dmg doc docm docx dot dotm elf
    eml exe gz hta htm html img iso jar js jse lnk lzh msg msi msix msp ocx pdf pif pkg ppam
    pps ppsm ppt pptm pptx ps1 psm1 rar reg rpm rtf scr sct sys tar tgz tmp txt url vb vbe
    vbs wim wsf wsh xla xlam xll xls xlsb xlsm xlsx xml xz zip
"""
_FILE_EXTENSIONS: Final = frozenset(_EXTENSION_NAMES.split())


def _fail(message: str, value: object, kind: ObservableKind | None) -> InvalidObservable:
    return InvalidObservable(message, value=value, kind=None if kind is None else kind.value)


def _normalize_hash(kind: ObservableKind, text: str) -> str:
    value = text.strip().lower()
    expected = _HASH_LENGTHS[kind]
    if len(value) != expected:
        raise _fail(f"a {kind.value} has {expected} hex digits, not {len(value)}", text, kind)
    if not _HEX.issuperset(value):
        raise _fail(f"a {kind.value} has only hex digits", text, kind)
    return value


def _normalize_ip(kind: ObservableKind, text: str) -> str:
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        address = parse_ip(value)
    except ValueError:
        raise _fail(f"not an {kind.value} address", text, kind) from None
    if (address.version == 4) != (kind is ObservableKind.IPV4):
        raise _fail(f"not an {kind.value} address (it is IPv{address.version})", text, kind)
    return ip_text(address)


def _normalize_domain(text: str, *, kind: ObservableKind, min_labels: int = 2) -> str:
    try:
        return _hosts.domain(text, min_labels=min_labels)
    except _hosts.HostError as exc:
        raise _fail(str(exc), text, kind) from None


def _normalize_url(text: str) -> str:
    try:
        return _hosts.url(text)
    except _hosts.HostError as exc:
        raise _fail(str(exc), text, ObservableKind.URL) from None


def _normalize_email(text: str) -> str:
    kind = ObservableKind.EMAIL
    value = text.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise _fail("an email address has the form local@domain", text, kind)
    if len(local) > 64 or not printable(local):
        raise _fail(
            "the local part has 1-64 characters, no spaces and no control characters",
            text,
            kind,
        )
    return f"{local}@{_normalize_domain(domain, kind=kind)}"


def _normalize_filename(text: str) -> str:
    kind = ObservableKind.FILENAME
    value = text.strip()
    if not value:
        raise _fail("a file name cannot be empty", text, kind)
    if _CONTROL.search(value):
        raise _fail("a file name cannot contain control characters", text, kind)
    if len(value) > 4096:
        raise _fail("a file name has at most 4096 characters", text, kind)
    return value


def _normalize(kind: ObservableKind, value: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"an observable's value is a str, not {type(value).__name__}", value, kind)
    if len(value) > _MAX_TEXT:
        raise _fail(f"an observable has at most {_MAX_TEXT} characters", value, kind)
    if kind in _HASH_LENGTHS:
        return _normalize_hash(kind, value)
    if kind is ObservableKind.IPV4 or kind is ObservableKind.IPV6:
        return _normalize_ip(kind, value)
    if kind is ObservableKind.DOMAIN:
        return _normalize_domain(value, kind=kind)
    if kind is ObservableKind.URL:
        return _normalize_url(value)
    if kind is ObservableKind.EMAIL:
        return _normalize_email(value)
    return _normalize_filename(value)


def refang(text: str) -> str:
    """Undo the usual defang notations: `hxxp`, `[.]`, `(.)`, `[dot]`, `[:]`, `[at]`, `[@]`."""
    for pattern, replacement in _REFANG:
        text = pattern.sub(replacement, text)
    return _REFANG_SCHEME.sub(_refang_scheme, text)


def _refang_scheme(match: re.Match[str]) -> str:
    defanged = match.group(0).lower()
    return {"hxxp": "http", "hxxps": "https"}.get(defanged, "ftp")


def _refang_head(text: str, kind: ObservableKind | None) -> str:
    r"""Refang the scheme and host part of a text; a URL's path, query and fragment stay.

    With a scheme, the host part (after any `user@`) ends at the first `/`, `\`, `?` or
    `#`; without one, a text that may be a URL (`evil[.]example/path`) ends it at the first
    `/` or `\`; a text of any other kind is refanged whole.
    """
    head = _HEAD.match(text)
    if head is None and kind is not None and kind is not ObservableKind.URL:
        return refang(text)
    start, separators = (head.end(), "/\\?#") if head else (0, "/\\")
    end = len(text)
    for separator in separators:
        index = text.find(separator, start)
        if index != -1:
            end = min(end, index)
    if head is None:
        return refang(text[:end]) + text[end:]
    userinfo, at, host = text[start:end].rpartition("@")  # a user name is not refanged
    return refang(text[:start]) + userinfo + at + refang(host) + text[end:]


def _looks_like_schemeless_url(text: str) -> bool:
    """`evil.example/path` or `198.51.100.7:8080/x`: a host (and port), then a path."""
    if "\\" in text or " " in text:
        return False
    host, slash, _ = text.partition("/")
    if not slash or not host:
        return False
    name, _, port = host.partition(":")
    if port and not (ascii_digits(port) and 0 < int(port) < 65536):
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        try:
            _normalize_domain(name, kind=ObservableKind.URL)
        except InvalidObservable:
            return False
    return True


def _infer(text: str, *, refanged: bool) -> ObservableKind:
    lowered = text.lower()
    if len(text) in _HASH_BY_LENGTH and _HEX.issuperset(lowered):
        return _HASH_BY_LENGTH[len(text)]
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        pass
    else:
        return ObservableKind.IPV4 if address.version == 4 else ObservableKind.IPV6
    if _SCHEME.match(text):
        return ObservableKind.URL
    if "@" in text and "/" not in text and "\\" not in text and " " not in text:
        return ObservableKind.EMAIL
    if "/" in text or "\\" in text:
        if _looks_like_schemeless_url(text):
            return ObservableKind.URL
        if not refanged:  # defang notation is for hosts, never for a file name
            return ObservableKind.FILENAME
        raise _fail("cannot infer the kind of this observable", text, None)
    stem, dot, extension = lowered.rpartition(".")
    if dot and stem and extension in _FILE_EXTENSIONS and not refanged:
        return ObservableKind.FILENAME
    try:
        _normalize_domain(text, kind=ObservableKind.DOMAIN)
    except InvalidObservable:
        pass
    else:
        return ObservableKind.DOMAIN
    raise _fail("cannot infer the kind of this observable", text, None)


def _escape(text: str) -> str:
    """Show invisible characters (bidi controls, line separators, C1 controls) as `<U+202E>`."""
    if text.isprintable():
        return text
    return "".join(f"<U+{ord(c):04X}>" if _invisible(c) else c for c in text)


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE


def has_invisible(text: str) -> bool:
    """Whether a text holds a control, format (bidi, zero-width) or line-separator character."""
    return not text.isprintable() and any(_invisible(c) for c in text)


@attrs.frozen(init=False, repr=False, hash=False)
class Observable:
    r"""An indicator: a kind and a normalized value.

    `Observable(kind, value)` normalizes and validates the value:

    - hashes (MD5, SHA-1, SHA-256): lowercased; length and hex digits checked;
    - IPv4 and IPv6: one canonical text on every Python version (`::0:1` becomes `::1`,
      an IPv4-mapped address is `::ffff:192.0.2.1`); a zone id is kept on a link-local
      address only (`fe80::1%eth0`);
    - domains: lowercased, trailing dot removed, internationalized labels in their IDNA
      2008 ASCII (`xn--`) form (UTS 46, non-transitional: `faß.de` is `xn--fa-hia.de`),
      label rules checked, at least two labels;
    - URLs: read as browsers read them (WHATWG): scheme and host lowercased, the host
      normalized as above (a numeric host such as `0x7f000001` or `127.1` becomes the
      dotted IPv4 address), `\` taken as `/` in http(s), ws(s) and ftp URLs, a default
      port dropped, dot segments (`/a/../b`) removed, an empty path made `/`; query and
      fragment are kept as they are;
    - email addresses: the domain normalized, the local part kept as it is;
    - file names (or paths): surrounding white space removed, control characters refused.

    Control characters are refused everywhere; spaces, line separators and format
    characters (bidi controls, zero-width characters) in URLs, host names and email
    addresses.

    Args:
        kind: The kind, as an `ObservableKind` or its name (`"sha256"`).
        value: The value to normalize.

    Raises:
        InvalidObservable: The value is not a valid observable of that kind.

    Example:
        >>> Observable.parse("hxxps://Evil[.]Example/Path").value
        'https://evil.example/Path'
    """

    kind: ObservableKind
    value: str
    key: str = attrs.field(init=False, eq=False, repr=False, metadata={"derived": True})
    """A stable text key, `kind:value`, for dictionaries, logs and stores."""
    _hash: int = attrs.field(init=False, eq=False, repr=False, metadata={"derived": True})

    __match_args__: ClassVar = ("kind", "value")

    def __init__(self, kind: ObservableKind | str, value: str) -> None:
        kind = _kind(kind)
        value = _normalize(kind, value)
        self.__attrs_init__(kind, value)
        object.__setattr__(self, "key", f"{kind.value}:{value}")
        object.__setattr__(self, "_hash", hash((kind.value, value)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[Observable], tuple[ObservableKind, str]]:
        # Rebuilt from kind and value: a str hash differs from one process to the next.
        return (Observable, (self.kind, self.value))

    @classmethod
    def parse(cls, text: str, kind: ObservableKind | str | None = None) -> Observable:
        r"""Parse an indicator from text: refang it, infer its kind and normalize it.

        Inference, in order: 32, 40 or 64 hex digits are MD5, SHA-1 or SHA-256; an IP
        address; `scheme://...` is a URL; `local@domain` is an email address; a text with a
        `/` or `\`, or ending in a common file extension (`.exe`, `.docm`, `.zip`, ...), is
        a file name, unless it starts with a host (`evil.example/login`), which makes it a
        URL with `http://` put in front; a valid domain name is a domain. A text written
        with defang notation (`update[.]zip`) is never a file name. Pass `kind` when you
        know better (`Observable.parse("update.zip", kind="domain")`).

        Refanging touches only the scheme and the host part: a URL's path, query and
        fragment are kept as written, and a file name (`kind="filename"`) is not refanged.

        Args:
            text: The indicator, possibly defanged (`hxxp://evil[.]com`).
            kind: The kind, if known; then only refanging and normalization apply.

        Returns:
            The normalized observable.

        Raises:
            InvalidObservable: The kind cannot be inferred, or the value is invalid.
        """
        if not isinstance(text, str):
            raise _fail(
                f"an observable is parsed from a str, not {type(text).__name__}", text, None
            )
        if len(text) > _MAX_TEXT:
            raise _fail(f"an observable has at most {_MAX_TEXT} characters", text, None)
        stripped = text.strip()
        if not stripped:
            raise _fail("an observable cannot be empty", text, None)
        if kind is not None:
            kind = _kind(kind)
            if kind is ObservableKind.FILENAME:
                return cls(kind, stripped)
        cleaned = _refang_head(stripped, kind)
        if kind is None:
            kind = _infer(cleaned, refanged=cleaned != stripped)
        if kind is ObservableKind.URL and not _SCHEME.match(cleaned):
            cleaned = f"http://{cleaned}"
        return cls(kind, cleaned)

    @classmethod
    def try_parse(cls, text: str, kind: ObservableKind | str | None = None) -> Observable | None:
        """Like `parse`, but return None instead of raising `InvalidObservable`."""
        try:
            return cls.parse(text, kind)
        except InvalidObservable:
            return None

    @property
    def is_internal(self) -> bool:
        """Whether this indicator is not worth an external look-up.

        True for private (RFC 1918, RFC 4193), shared (RFC 6598), loopback, link-local,
        multicast, documentation and reserved addresses, the same on every Python version;
        for special-use names (`localhost` and `*.localhost`, `*.local`, `*.home.arpa`,
        `*.internal`, `*.invalid`, `*.test`); and for URLs and email addresses on such an
        address or name. False for hashes and file names.
        """
        host = host_of(self)
        if host is None:
            return False
        try:
            address = parse_ip(host)
        except ValueError:
            return any(host == name or host.endswith(f".{name}") for name in _SPECIAL_USE)
        return _is_internal(address)

    def defanged(self) -> str:
        """The value made safe for human-facing output: not clickable, not resolvable.

        Domains and IPv4 addresses get `[.]`, IPv6 addresses `[:]`, URLs `hxxp(s)://`, a
        defanged host and a masked password (`user:****@`), email addresses `[@]` and a
        defanged domain. Hashes and file names are returned as they are, except that
        invisible characters (bidi controls such as U+202E, line separators, C1 controls)
        are shown as `<U+202E>`.

        `Observable.parse(o.defanged(), o.kind) == o`, except for a URL with a password
        and a file name with invisible characters; without `kind`, it holds for every kind
        but file names (`evil.py` reads as a domain).
        """
        kind = self.kind
        if kind in _HASH_LENGTHS:  # hex digits only, checked: nothing to defang or escape
            return self.value
        if kind in _DOTTED:
            return self.value.replace(".", "[.]")
        if kind is _IPV6:
            return self.value.replace(":", "[:]")
        if kind is _EMAIL:
            local, _, domain = self.value.rpartition("@")
            return f"{_escape(local)}[@]{domain.replace('.', '[.]')}"
        if kind is _URL:
            scheme, userinfo, hostport, rest = _hosts.url_parts(self.value)
            user, colon, _ = userinfo.partition(":")
            masked = f"{user}{':****' if colon else ''}@" if userinfo else ""
            host = hostport.replace(".", "[.]")
            return f"{_DEFANG_SCHEMES.get(scheme, scheme)}://{masked}{host}{_escape(rest)}"
        return _escape(self.value)

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Observable({self.kind.value!r}, {self.value!r})"


def host_of(observable: Observable) -> str | None:
    """The host of a URL, the domain of an email address, a domain or an address."""
    kind = observable.kind
    if kind is ObservableKind.URL:
        return url_host(observable.value)
    if kind is ObservableKind.EMAIL:
        return observable.value.rpartition("@")[2]
    if kind is ObservableKind.DOMAIN or kind.is_ip:
        return observable.value
    return None


def _kind(kind: object) -> ObservableKind:
    try:
        return ObservableKind(kind)
    except ValueError:
        raise _fail("unknown observable kind", kind, None) from None


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _INTERNAL_NETWORKS)
