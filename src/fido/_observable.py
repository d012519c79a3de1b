"""Observables: the indicators an alert carries (hashes, addresses, names, URLs, files)."""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar, Final
from urllib.parse import SplitResult, urlsplit

import attrs

from fido._enums import Enum
from fido._errors import InvalidObservable

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
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_LABEL: Final = re.compile(r"^[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?$")
_TLD: Final = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9\-]{1,59})$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}
_DEFANG_SCHEMES: Final = {"http": "hxxp", "https": "hxxps", "ftp": "fxp"}
_MAX_TEXT: Final = 8192

# File extensions that mark a dotted name as a file rather than a domain. Extensions that
# are also top-level domains (.py, .sh, .app, .mov, .one, ...) are left out, except .zip,
# which in an alert is almost always an archive. Pass `kind=` to decide it yourself.
_FILE_EXTENSIONS: Final = frozenset(
    {
        "7z",
        "ace",
        "apk",
        "appx",
        "bat",
        "bin",
        "cab",
        "chm",
        "cmd",
        "cpl",
        "crx",
        "dat",
        "deb",
        "dll",
        "dmg",
        "doc",
        "docm",
        "docx",
        "dot",
        "dotm",
        "elf",
        "eml",
        "exe",
        "gz",
        "hta",
        "htm",
        "html",
        "img",
        "iso",
        "jar",
        "js",
        "jse",
        "lnk",
        "lzh",
        "msg",
        "msi",
        "msix",
        "msp",
        "ocx",
        "pdf",
        "pif",
        "pkg",
        "ppam",
        "pps",
        "ppsm",
        "ppt",
        "pptm",
        "pptx",
        "ps1",
        "psm1",
        "rar",
        "reg",
        "rpm",
        "rtf",
        "scr",
        "sct",
        "sys",
        "tar",
        "tgz",
        "tmp",
        "txt",
        "url",
        "vb",
        "vbe",
        "vbs",
        "wim",
        "wsf",
        "wsh",
        "xla",
        "xlam",
        "xll",
        "xls",
        "xlsb",
        "xlsm",
        "xlsx",
        "xml",
        "xz",
        "zip",
    }
)


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
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _fail(f"not an {kind.value} address", text, kind) from None
    if (address.version == 4) != (kind is ObservableKind.IPV4):
        raise _fail(f"not an {kind.value} address (it is IPv{address.version})", text, kind)
    return str(address)


def _normalize_domain(text: str, *, kind: ObservableKind, min_labels: int = 2) -> str:
    value = text.strip().rstrip(".").lower()
    if not value:
        raise _fail("a domain cannot be empty", text, kind)
    labels = value.split(".")
    if len(labels) < min_labels:
        raise _fail("a domain needs at least two labels (name and top-level domain)", text, kind)
    ascii_labels = []
    for label in labels:
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                raise _fail("an internationalized label is not valid IDNA", text, kind) from None
        if not _LABEL.match(label):
            raise _fail(
                "a domain label has 1-63 letters, digits, hyphens or underscores "
                "and neither starts nor ends with a hyphen",
                text,
                kind,
            )
        ascii_labels.append(label)
    if min_labels >= 2 and not _TLD.match(ascii_labels[-1]):
        raise _fail("the top-level domain must be letters (or an xn-- label)", text, kind)
    result = ".".join(ascii_labels)
    if len(result) > 253:
        raise _fail("a domain has at most 253 characters", text, kind)
    return result


def _normalize_url(text: str) -> str:
    kind = ObservableKind.URL
    value = text.strip()
    if _CONTROL.search(value) or " " in value:
        raise _fail("a URL cannot contain spaces or control characters", text, kind)
    if not _SCHEME.match(value):
        raise _fail("a URL needs a scheme, such as http://", text, kind)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise _fail(f"not a URL: {exc}", text, kind) from None
    host = _url_host(parts, text)
    scheme = parts.scheme.lower()
    netloc = host
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        netloc = f"{host}:{port}"
    userinfo, _, _ = parts.netloc.rpartition("@")
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or ("/" if scheme in _DEFAULT_PORTS else "")
    result = f"{scheme}://{netloc}{path}"
    if parts.query:
        result += f"?{parts.query}"
    if parts.fragment:
        result += f"#{parts.fragment}"
    return result


def _url_host(parts: SplitResult, text: str) -> str:
    kind = ObservableKind.URL
    host = parts.hostname
    if not host:
        raise _fail("a URL needs a host", text, kind)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _normalize_domain(host, kind=kind, min_labels=1)
    return f"[{address}]" if address.version == 6 else str(address)


def _normalize_email(text: str) -> str:
    kind = ObservableKind.EMAIL
    value = text.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise _fail("an email address has the form local@domain", text, kind)
    if len(local) > 64 or _CONTROL.search(local) or " " in local:
        raise _fail("the local part has 1-64 characters and no spaces", text, kind)
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


def _looks_like_schemeless_url(text: str) -> bool:
    """`evil.example/path` or `198.51.100.7:8080/x`: a host (and port), then a path."""
    if "\\" in text or " " in text:
        return False
    host, slash, _ = text.partition("/")
    if not slash or not host:
        return False
    name, _, port = host.partition(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        try:
            _normalize_domain(name, kind=ObservableKind.URL)
        except InvalidObservable:
            return False
    return True


def _infer(text: str) -> ObservableKind:
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
        return ObservableKind.URL if _looks_like_schemeless_url(text) else ObservableKind.FILENAME
    stem, dot, extension = lowered.rpartition(".")
    if dot and stem and extension in _FILE_EXTENSIONS:
        return ObservableKind.FILENAME
    try:
        _normalize_domain(text, kind=ObservableKind.DOMAIN)
    except InvalidObservable:
        pass
    else:
        return ObservableKind.DOMAIN
    raise _fail("cannot infer the kind of this observable", text, None)


@attrs.frozen(init=False, repr=False, hash=False)
class Observable:
    """An indicator: a kind and a normalized value.

    `Observable(kind, value)` normalizes and validates the value:

    - hashes (MD5, SHA-1, SHA-256): lowercased; length and hex digits checked;
    - IPv4 and IPv6: the canonical form from `ipaddress` (`::0:1` becomes `::1`);
    - domains: lowercased, trailing dot removed, internationalized labels in their
      ASCII (`xn--`) form, label rules checked, at least two labels;
    - URLs: scheme and host lowercased, the host normalized as above, a default port
      dropped, an empty path made `/`; path, query and fragment are kept as they are;
    - email addresses: the domain normalized, the local part kept as it is;
    - file names (or paths): surrounding white space removed, control characters refused.

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
        try:
            kind = ObservableKind(kind)
        except ValueError:
            raise _fail("unknown observable kind", kind, None) from None
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
        URL with `http://` put in front; a valid domain name is a domain. Pass `kind` when
        you know better (`Observable.parse("update.zip", kind="domain")`).

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
        cleaned = refang(text.strip())
        if not cleaned:
            raise _fail("an observable cannot be empty", text, None)
        if kind is None:
            kind = _infer(cleaned)
        if kind in (ObservableKind.URL, ObservableKind.URL.value) and not _SCHEME.match(cleaned):
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
        """Whether this is an address (or a URL on one) not worth an external look-up.

        True for private (RFC 1918, RFC 4193), shared (RFC 6598), loopback, link-local,
        multicast, documentation and reserved addresses, the same on every Python version.
        False for every other kind.
        """
        if self.kind is ObservableKind.URL:
            host = urlsplit(self.value).hostname or ""
            if host == "localhost":
                return True
            try:
                return _is_internal(ipaddress.ip_address(host))
            except ValueError:
                return False
        if self.kind.is_ip:
            return _is_internal(ipaddress.ip_address(self.value))
        return False

    def defanged(self) -> str:
        """The value made safe for human-facing output: not clickable, not resolvable.

        Domains and IPv4 addresses get `[.]`, IPv6 addresses `[:]`, URLs `hxxp(s)://` and
        a defanged host, email addresses `[@]` and a defanged domain. Hashes and file
        names are returned as they are. `Observable.parse(o.defanged()) == o`.
        """
        kind = self.kind
        if kind is ObservableKind.DOMAIN or kind is ObservableKind.IPV4:
            return self.value.replace(".", "[.]")
        if kind is ObservableKind.IPV6:
            return self.value.replace(":", "[:]")
        if kind is ObservableKind.EMAIL:
            local, _, domain = self.value.rpartition("@")
            return f"{local}[@]{domain.replace('.', '[.]')}"
        if kind is ObservableKind.URL:
            scheme, _, rest = self.value.partition("://")
            end = len(rest)
            for separator in "/?#":
                index = rest.find(separator)
                if index != -1:
                    end = min(end, index)
            netloc = rest[:end]
            if not netloc.startswith("["):
                netloc = netloc.replace(".", "[.]")
            return f"{_DEFANG_SCHEMES.get(scheme, scheme)}://{netloc}{rest[end:]}"
        return self.value

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Observable({self.kind.value!r}, {self.value!r})"


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _INTERNAL_NETWORKS)
