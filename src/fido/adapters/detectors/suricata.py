"""`suricata`: alerts from Suricata's EVE JSON log (`eve.json`), one record per line.

Only `event_type: "alert"` records become events; flow, http, dns, fileinfo and the other
record types are skipped. Everything in a record is attacker-influenced (hosts, URLs,
names come off the wire): it is validated as observables and kept raw only for audit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from fido import (
    DeadLetter,
    DetectorError,
    Event,
    FidoError,
    Host,
    InvalidEvent,
    Observable,
    ObservableKind,
    Severity,
    SeverityScale,
)
from fido.adapters._tail import Line, read_lines, text_lines

__all__ = ["SuricataDetector"]

# Suricata's classification.config categories (emerging threats names) -> fido categories.
CATEGORIES: Final = {
    "a network trojan was detected": "malware",
    "malware command and control activity detected": "c2",
    "domain observed used for c2 detected": "c2",
    "possibly unwanted program detected": "malware",
    "crypto currency mining activity detected": "malware",
    "exploit kit activity detected": "exploit",
    "attempted administrator privilege gain": "exploit",
    "successful administrator privilege gain": "exploit",
    "attempted user privilege gain": "exploit",
    "successful user privilege gain": "exploit",
    "web application attack": "exploit",
    "executable code was detected": "exploit",
    "attempted denial of service": "dos",
    "detection of a network scan": "recon",
    "attempted information leak": "recon",
    "large scale information leak": "exfiltration",
    "potential corporate privacy violation": "policy",
    "potentially bad traffic": "suspicious",
}


def _ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


_PRIVATE: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)


def _internal(address: str) -> bool:
    """A private, shared, loopback or link-local address: the monitored side of a flow."""
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in _PRIVATE)


class SuricataDetector:
    """Suricata EVE alerts from `eve.json` (polled), or from records you hold (`parse`).

    The monitored host is the private end of the flow (RFC 1918, RFC 4193, shared,
    loopback, link-local; the source when both or neither are); the other address, the
    HTTP host and URL, the TLS SNI, the DNS query and file hashes become observables.

    Args:
        path: The EVE file to read (may be rotated or truncated).
        name: The detector's name.
        interval: Seconds between polls in the run loop.
        batch: The most lines one poll reads.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        name: str = "suricata",
        interval: float = 5.0,
        batch: int = 1000,
    ) -> None:
        self.name = name
        self.path = None if path is None else Path(path)
        self.interval = float(interval)
        self.batch = int(batch)

    def __repr__(self) -> str:
        return f"SuricataDetector(name={self.name!r}, path={str(self.path)!r})"

    def event(self, record: Mapping[str, Any]) -> Event | None:
        """The event for one EVE record, or None when it is not an alert.

        Raises:
            InvalidEvent: An alert record that lacks what an alert needs.
        """
        if record.get("event_type") != "alert":
            return None
        alert = record.get("alert")
        if not isinstance(alert, Mapping):
            raise InvalidEvent(
                "an alert record has an 'alert' object", detector=self.name, field="alert"
            )
        severity = alert.get("severity", 3)
        try:
            level = Severity.from_scale(severity, SeverityScale.SURICATA)
        except InvalidEvent:
            level = Severity.MEDIUM
        src, dest = _ip(record.get("src_ip")), _ip(record.get("dest_ip"))
        host_ip, remote = src, dest
        if src is not None and dest is not None and not _internal(src) and _internal(dest):
            host_ip, remote = dest, src
        category_text = str(alert.get("category") or "")
        return Event(
            detector=self.name,
            id=_identity(record, alert),
            time=str(record.get("timestamp", "")),
            title=str(alert.get("signature") or f"Suricata signature {alert.get('signature_id')}"),
            severity=level,
            category=CATEGORIES.get(category_text.lower()),
            host=Host(ip=host_ip) if host_ip is not None else None,
            observables=_observables(record, remote),
            raw=dict(record),
            extra={
                "signature_id": alert.get("signature_id"),
                "gid": alert.get("gid"),
                "rev": alert.get("rev"),
                "category": category_text or None,
                "action": alert.get("action"),
                "flow_id": record.get("flow_id"),
                "proto": record.get("proto"),
                "app_proto": record.get("app_proto"),
                "src": f"{src}:{record.get('src_port')}" if src else None,
                "dest": f"{dest}:{record.get('dest_port')}" if dest else None,
            },
        )

    def _one(self, item: Any) -> list[Event | DeadLetter]:
        if not isinstance(item, Mapping):
            error = InvalidEvent(
                f"an EVE record is a JSON object, not {type(item).__name__}", detector=self.name
            )
            return [DeadLetter.from_error(item, error, at=datetime.now(UTC), detector=self.name)]
        try:
            event = self.event(item)
        except FidoError as error:
            return [DeadLetter.from_error(item, error, at=datetime.now(UTC), detector=self.name)]
        return [] if event is None else [event]

    def parse(self, payload: Any) -> list[Event | DeadLetter]:
        """Events from one EVE record, a list of them, or EVE text (one record per line).

        Raises:
            DetectorError: The payload is none of those. (A line of text that is not
                JSON comes back as a `DeadLetter` with the line number, not an error.)
        """
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", errors="replace")
        if isinstance(payload, str):
            return self._lines(text_lines(payload))
        if isinstance(payload, Mapping):
            return self._one(payload)
        if isinstance(payload, list):
            return [result for item in payload for result in self._one(item)]
        raise DetectorError(
            f"expected EVE JSON text, a record or a list, not {type(payload).__name__}",
            adapter=self.name,
        )

    def poll(self, cursor: str | None) -> tuple[list[Event | DeadLetter], str | None]:
        """The alerts written to `path` since `cursor`.

        Raises:
            DetectorError: No path was given, or the file cannot be read.
        """
        if self.path is None:
            return [], cursor
        lines, after = read_lines(self.path, cursor, self.batch)
        return self._lines(lines), after

    def _lines(self, lines: list[Line]) -> list[Event | DeadLetter]:
        """The events, or a dead letter with the reason, of each line."""
        results: list[Event | DeadLetter] = []
        for line in lines:
            if line.error is not None:
                results.append(
                    DeadLetter(
                        reason=line.error,
                        at=datetime.now(UTC),
                        detector=self.name,
                        payload=line.text,
                    )
                )
            else:
                results.extend(self._one(line.value))
        return results


def _identity(record: Mapping[str, Any], alert: Mapping[str, Any]) -> str:
    """EVE alerts carry no id: the flow, the rule and the time make one."""
    parts = (
        record.get("flow_id"),
        alert.get("gid", 1),
        alert.get("signature_id"),
        alert.get("rev"),
        record.get("tx_id"),
        record.get("timestamp"),
    )
    return ":".join("" if p is None else str(p) for p in parts)


def _observables(record: Mapping[str, Any], remote: str | None) -> list[Observable]:
    found: list[Observable] = []

    def add(text: Any, kind: ObservableKind | None = None) -> None:
        if isinstance(text, str) and text:
            observable = Observable.try_parse(text, kind)
            if observable is not None:
                found.append(observable)

    if remote is not None:
        add(remote)
    http = record.get("http")
    if isinstance(http, Mapping):
        hostname = http.get("hostname")
        if isinstance(hostname, str) and _ip(hostname) is None:
            add(hostname, ObservableKind.DOMAIN)
            url = http.get("url")
            if isinstance(url, str) and url.startswith("/"):
                add(f"http://{hostname}{url}", ObservableKind.URL)
    tls = record.get("tls")
    if isinstance(tls, Mapping):
        add(tls.get("sni"), ObservableKind.DOMAIN)
    dns = record.get("dns")
    if isinstance(dns, Mapping):
        add(dns.get("rrname"), ObservableKind.DOMAIN)
    for file in record.get("files") or ():
        if isinstance(file, Mapping):
            for algorithm in ("sha256", "sha1", "md5"):
                add(file.get(algorithm))
    return found
