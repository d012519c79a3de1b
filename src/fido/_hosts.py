r"""Host names, addresses and URLs, read as resolvers and browsers read them.

- IP addresses get one canonical text on every Python version (`ip_text`): RFC 5952 for
  IPv6, `::ffff:192.0.2.1` for an IPv4-mapped address; a zone id stays only on a
  link-local address.
- Domain names are mapped as UTS 46 maps them (non-transitional: `ß` stays `ß`), with
  the standard library's punycode and Unicode data: no `idna` dependency. Labels are
  checked, `xn--` labels must decode and encode back.
- URLs are normalized as the WHATWG URL standard reads them: `\` is `/` in special
  schemes (http, https, ws, wss, ftp), numeric hosts (`2130706433`, `0x7f.1`, `127.1`)
  are IPv4 addresses, dot segments are removed from the path.

Each function raises `HostError` (a ValueError); `fido._observable` turns it into an
`InvalidObservable` that names the value and its kind.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Final

__all__ = [
    "DEFAULT_PORTS",
    "SCHEME",
    "HostError",
    "ascii_digits",
    "canonical_ip",
    "domain",
    "ip_text",
    "parse_ip",
    "printable",
    "url",
    "url_host",
    "url_parts",
]

SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}
"""The WHATWG URL standard's special schemes that have a host (file: has none)."""
_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?")
_TLD: Final = re.compile(r"[a-z]{2,63}|xn--[a-z0-9\-]{1,59}")
_SCOPE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS: Final = frozenset("01234567")
# Ideographic and full-width full stops separate labels, as in UTS 46.
_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LINK_LOCAL: Final = ipaddress.ip_network("fe80::/10")


class HostError(ValueError):
    """Internal: a name, an address or a URL that is not valid; the message says why."""


def printable(text: str) -> bool:
    """No space, control, format or separator character (line separators, bidi, NBSP)."""
    return text.isprintable() and " " not in text


def ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def ip_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The canonical text of an address, the same on every Python version.

    IPv6 as RFC 5952 has it (lowercase, the longest run of zero groups shortened), an
    IPv4-mapped address as `::ffff:192.0.2.1`, a zone id kept only on a link-local
    address (`fe80::1%eth0`).
    """
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    mapped = address.ipv4_mapped
    if mapped is not None:
        return f"::ffff:{mapped}"
    packed = address.packed
    groups = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best, best_length, start = -1, 1, -1
    for index, group in enumerate([*groups, 1]):
        if group == 0 and start < 0:
            start = index
        elif group != 0 and start >= 0:
            if index - start > best_length:
                best, best_length = start, index - start
            start = -1
    words = [f"{group:x}" for group in groups]
    if best < 0:
        text = ":".join(words)
    else:
        text = ":".join(words[:best]) + "::" + ":".join(words[best + best_length :])
    scope = address.scope_id
    if scope and address in _LINK_LOCAL:
        text += f"%{scope}"
    return text


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4 or IPv6 address from text; a zone id only on a link-local IPv6 address.

    Raises:
        ValueError: Not an address, or a zone id that is not letters, digits, `_.-`.
    """
    bare, percent, scope = text.partition("%")
    address = ipaddress.ip_address(bare)
    if not percent:
        return address
    if address.version == 4 or not _SCOPE.fullmatch(scope):
        raise ValueError("a zone id is letters, digits, '_', '.' or '-', on IPv6 only")
    if address in _LINK_LOCAL:
        return ipaddress.IPv6Address(f"{bare}%{scope}")
    return address  # a zone means nothing on a global address: the same address


def canonical_ip(text: str) -> str:
    """`ip_text(parse_ip(text))`; raises ValueError for anything else than an address."""
    return ip_text(parse_ip(text))


def _map_domain(text: str) -> str:
    """UTS 46 mapping, near enough: full stops, NFKC, lowercase (`ß` stays), NFC."""
    value = text.strip()
    if not printable(value):
        raise HostError("a name cannot contain spaces, control or format characters")
    if value.isascii():
        return value.lower()
    value = unicodedata.normalize("NFKC", value.translate(_DOTS)).lower()
    value = unicodedata.normalize("NFC", value)
    if not printable(value):
        raise HostError("a name cannot contain spaces, control or format characters")
    return value


def _valid_ulabel(label: str) -> bool:
    """Letters, marks, digits and hyphens, not starting with a mark or with a hyphen."""
    if label.startswith("-") or label.endswith("-"):
        return False
    if unicodedata.category(label[0]).startswith("M"):
        return False
    for char in label:
        if char.isascii():
            if not (char.isalnum() or char == "-"):
                return False
            continue
        category = unicodedata.category(char)
        if not (category[0] in "LM" or category == "Nd"):
            return False
    return unicodedata.normalize("NFC", label) == label and label.lower() == label


def _alabel(label: str) -> str | None:
    """The A-label (`xn--...`) of a U-label, or None where the label is not valid."""
    if not _valid_ulabel(label):
        return None
    return "xn--" + label.encode("punycode").decode("ascii")


def _checked_alabel(label: str) -> bool:
    """Whether an `xn--` label decodes to a valid U-label that encodes back to it."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError, IndexError, OverflowError):
        return False
    return bool(decoded) and not decoded.isascii() and _alabel(decoded) == label


def domain(text: str, *, min_labels: int = 2) -> str:
    """A domain name in its ASCII form: mapped as UTS 46 maps it, labels checked.

    Raises:
        HostError: Not a valid domain name (with at least `min_labels` labels).
    """
    return _domain_labels(_map_domain(text), min_labels=min_labels)


def _domain_labels(value: str, *, min_labels: int) -> str:
    value = value.removesuffix(".")
    if not value:
        raise HostError("a domain cannot be empty")
    labels = value.split(".")
    if len(labels) < min_labels:
        raise HostError("a domain needs at least two labels (name and top-level domain)")
    ascii_labels = []
    for label in labels:
        if not label.isascii():
            encoded = _alabel(label) if label else None
            if encoded is None:
                raise HostError("an internationalized label is not valid IDNA")
            label = encoded
        elif label.startswith("xn--") and not _checked_alabel(label):
            raise HostError("an xn-- label is not a valid IDNA A-label")
        if not _LABEL.fullmatch(label):
            raise HostError(
                "a domain label has 1-63 letters, digits, hyphens or underscores "
                "and neither starts nor ends with a hyphen"
            )
        ascii_labels.append(label)
    if min_labels >= 2 and not _TLD.fullmatch(ascii_labels[-1]):
        raise HostError("the top-level domain must be letters (or an xn-- label)")
    result = ".".join(ascii_labels)
    if len(result) > 253:
        raise HostError("a domain has at most 253 characters")
    return result


def _ipv4_number(part: str) -> int | None:
    """A part of a numeric host, as WHATWG reads it: 0x hex, 0 octal, else decimal."""
    if not part:
        return None
    radix, digits = 10, part
    if part[:2] in ("0x", "0X"):
        radix, digits = 16, part[2:]
        valid = _HEX_DIGITS.issuperset(digits)
    elif len(part) > 1 and part[0] == "0":
        radix, digits = 8, part[1:]
        valid = _OCTAL_DIGITS.issuperset(digits)
    else:
        valid = ascii_digits(digits)
    if not valid:
        return None
    return int(digits, radix) if digits else 0


def _numeric_host(host: str) -> str | None:
    """The dotted IPv4 form of a host that ends in a number (`127.1`, `0x7f000001`).

    None when the host does not end in a number (it is a name). Raises for a host that
    ends in a number but is no IPv4 address: browsers refuse those URLs.
    """
    parts = host.split(".")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    last = parts[-1]
    if not ascii_digits(last) and _ipv4_number(last) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    valid = [n for n in numbers if n is not None]
    if len(parts) > 4 or len(valid) != len(parts) or any(n > 255 for n in valid[:-1]):
        raise HostError("a numeric host is not an IPv4 address")
    if valid[-1] >= 256 ** (5 - len(valid)):
        raise HostError("a numeric host is not an IPv4 address")
    value = valid[-1]
    for index, number in enumerate(valid[:-1]):
        value += number * 256 ** (3 - index)
    return str(ipaddress.IPv4Address(value))


def _split_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise HostError("not a URL: an IPv6 host lacks its ']'")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HostError("not a URL: text after the IPv6 host")
        port = rest[1:]
    else:
        host, _, port = hostport.partition(":")
    if not port:
        return host, None
    if not ascii_digits(port) or int(port) > 65535:
        raise HostError("not a URL: the port is a number from 0 to 65535")
    return host, int(port)


def _url_host(host: str) -> str:
    if not host:
        raise HostError("a URL needs a host")
    if host.startswith("["):
        if "%" in host:  # browsers refuse a zone id in a URL
            raise HostError("not a URL: an IPv6 host has no zone id")
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise HostError("not a URL: the host is not an IPv6 address") from None
        return f"[{ip_text(address)}]"
    if "%" in host:
        raise HostError("a URL's host cannot hold percent-escapes")
    mapped = _map_domain(host)
    numeric = _numeric_host(mapped)
    if numeric is not None:
        return numeric
    name = _domain_labels(mapped, min_labels=1)
    if _numeric_host(name) is not None:  # a name that reads as a number once mapped
        raise HostError("a numeric host is not an IPv4 address")
    return name


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 on a path that starts with `/` (`%2e` is a dot, as in browsers)."""
    segments = path.split("/")[1:]
    output: list[str] = []
    for index, segment in enumerate(segments):
        lowered = segment.lower().replace("%2e", ".")
        last = index == len(segments) - 1
        if lowered == "..":
            if output:
                output.pop()
        elif lowered != ".":
            output.append(segment)
            continue
        if last:
            output.append("")
    return "/" + "/".join(output)


def url_parts(value: str) -> tuple[str, str, str, str]:
    """Scheme, userinfo, host and port, and the rest of a normalized URL."""
    scheme, _, rest = value.partition("://")
    end = len(rest)
    for separator in "/?#":
        index = rest.find(separator)
        if index != -1:
            end = min(end, index)
    userinfo, _, hostport = rest[:end].rpartition("@")
    return scheme, userinfo, hostport, rest[end:]


def url_host(value: str) -> str:
    """The host of a normalized URL (an IPv6 address without its brackets)."""
    hostport = url_parts(value)[2]
    if hostport.startswith("["):
        return hostport[1 : hostport.index("]")]
    return hostport.partition(":")[0]


def url(text: str) -> str:
    """A URL normalized as browsers read it (see `Observable`).

    Raises:
        HostError: Not a URL, or one whose host is invalid.
    """
    value = text.strip()
    if not printable(value):
        raise HostError("a URL cannot contain spaces, control or format characters")
    match = SCHEME.match(value)
    if not match:
        raise HostError("a URL needs a scheme, such as http://")
    scheme = match.group(1).lower()
    special = scheme in DEFAULT_PORTS
    rest, _, fragment = value[match.end() :].partition("#")
    rest, _, query = rest.partition("?")
    if special:  # as browsers read it: "\" is "/", and extra slashes before the host go
        rest = rest.replace("\\", "/").lstrip("/")
    authority, slash, path = rest.partition("/")
    userinfo, _, hostport = authority.rpartition("@")
    if not special and "\\" in authority:
        raise HostError("a URL's authority cannot contain a backslash")
    if "[" in userinfo or "]" in userinfo:
        raise HostError("a URL's user name cannot contain brackets")
    host, port = _split_port(hostport)
    netloc = _url_host(host)
    if port is not None and DEFAULT_PORTS.get(scheme) != port:
        netloc = f"{netloc}:{port}"
    if userinfo not in ("", ":"):  # an empty user name and password are no credentials
        netloc = f"{userinfo}@{netloc}"
    path = _remove_dot_segments(slash + path) if slash else ("/" if special else "")
    result = f"{scheme}://{netloc}{path}"
    if query:
        result += f"?{query}"
    if fragment:
        result += f"#{fragment}"
    return result
