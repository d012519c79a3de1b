"""Alert severity: an ordered scale, and the mapping from vendors' numbers and words."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar, Final, TypeGuard

import attrs

from fido._enums import OrderedEnum
from fido._errors import ConfigurationError, InvalidEvent

__all__ = ["Severity", "SeverityScale"]


class Severity(OrderedEnum):
    """How severe the detector judged an alert: `INFO < LOW < MEDIUM < HIGH < CRITICAL`.

    Members compare with each other by rank (`Severity.HIGH > Severity.MEDIUM`), never with
    numbers. Vendor values map through `Severity.parse` (words) and `Severity.from_scale`
    (numbers).
    """

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Map a vendor's severity word to a `Severity`, ignoring case, spaces and dashes.

        Understood: `informational`/`info`/`none`/`unknown`, `low`/`minor`,
        `medium`/`moderate`/`med`, `high`/`major`/`severe`/`important`,
        `critical`/`crit`/`very high`/`urgent`/`emergency`.

        Raises:
            InvalidEvent: The word is not one of those, or not a str (`field="severity"`).
        """
        given: object = text
        if not isinstance(given, str):
            kind = type(given).__name__
            raise InvalidEvent(f"a severity word is a str, not {kind}", field="severity")
        key = "".join(text.split()).replace("-", "").replace("_", "").lower()
        try:
            return _WORDS[key]
        except KeyError:
            raise InvalidEvent(f"unknown severity {text[:40]!r}", field="severity") from None

    @classmethod
    def from_scale(cls, value: object, scale: SeverityScale) -> Severity:
        """Map a vendor's numeric severity through a `SeverityScale`.

        Example:
            >>> Severity.from_scale(79, SeverityScale.PERCENT)
            <Severity.HIGH: 'high'>
            >>> Severity.from_scale(1, SeverityScale.SURICATA)
            <Severity.HIGH: 'high'>

        Raises:
            InvalidEvent: The value is not a finite number within the scale.
        """
        return scale.severity(value)


_WORDS: Final = {
    **dict.fromkeys(["info", "informational", "information", "none", "unknown"], Severity.INFO),
    **dict.fromkeys(["low", "minor"], Severity.LOW),
    **dict.fromkeys(["medium", "moderate", "med"], Severity.MEDIUM),
    **dict.fromkeys(["high", "major", "severe", "important"], Severity.HIGH),
    **dict.fromkeys(
        ["critical", "crit", "veryhigh", "urgent", "emergency", "alert"], Severity.CRITICAL
    ),
}


@attrs.frozen
class SeverityScale:
    """A vendor's numeric severity scale and where its bands start.

    `thresholds` are the values at which LOW, MEDIUM, HIGH and CRITICAL begin. On an
    ascending scale a value at or above a threshold reaches that band; on a descending
    scale (`descending=True`, where 1 is the worst) a value at or below it does. Values
    outside `[minimum, maximum]` are refused.

    The presets:

    | preset | range | INFO | LOW | MEDIUM | HIGH | CRITICAL | used by |
    |---|---|---|---|---|---|---|---|
    | `PERCENT` | 0-100 | 0-19 | 20-39 | 40-59 | 60-79 | 80-100 | CrowdStrike Falcon |
    | `ELASTIC_RISK` | 0-100 | - | 0-21 | 22-47 | 48-73 | 74-100 | Elastic Security risk score |
    | `CEF` | 0-10 | - | 0-3 | 4-6 | 7-8 | 9-10 | ArcSight CEF |
    | `TEN` | 1-10 | - | 1-3 | 4-6 | 7-8 | 9-10 | Carbon Black Cloud |
    | `SURICATA` | 1-4 | 4 | 3 | 2 | 1 | - | Suricata, Snort (1 is the worst) |
    | `SYSLOG` | 0-7 | 6-7 | 5 | 4 | 3 | 0-2 | syslog severity (0 is emergency) |

    Args:
        name: A name for messages.
        thresholds: Where LOW, MEDIUM, HIGH and CRITICAL start: four numbers, rising
            (falling on a descending scale); `-math.inf` or `math.inf` leaves a band out.
        minimum: The lowest value of the scale.
        maximum: The highest value of the scale.
        descending: Whether lower numbers are more severe.

    Raises:
        ConfigurationError: A threshold is not a number or out of order, or the range is
            not two finite numbers with `minimum <= maximum`.
    """

    name: str
    thresholds: tuple[float, float, float, float]
    minimum: float
    maximum: float
    descending: bool = False

    PERCENT: ClassVar[SeverityScale]
    ELASTIC_RISK: ClassVar[SeverityScale]
    CEF: ClassVar[SeverityScale]
    TEN: ClassVar[SeverityScale]
    SURICATA: ClassVar[SeverityScale]
    SYSLOG: ClassVar[SeverityScale]

    def __attrs_post_init__(self) -> None:
        name: object = self.name
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("a severity scale has a name", key="name")
        if not isinstance(self.descending, bool):
            raise ConfigurationError("descending is true or false", key="descending")
        thresholds: object = self.thresholds
        if not isinstance(thresholds, tuple | list) or len(thresholds) != 4:
            message = f"the {name} scale has four thresholds (LOW, MEDIUM, HIGH, CRITICAL)"
            raise ConfigurationError(message, key="thresholds")
        if not all(_number(t) and not math.isnan(t) for t in thresholds):
            message = f"the {name} scale's thresholds are numbers"
            raise ConfigurationError(message, key="thresholds")
        pairs = itertools.pairwise(thresholds)
        if not all((b <= a) if self.descending else (a <= b) for a, b in pairs):
            order = "fall" if self.descending else "rise"
            message = f"the {name} scale's thresholds {order} from LOW to CRITICAL"
            raise ConfigurationError(message, key="thresholds")
        low: object = self.minimum
        high: object = self.maximum
        if not (_finite(low) and _finite(high)):
            message = f"the {name} scale's minimum and maximum are finite numbers"
            raise ConfigurationError(message, key="minimum")
        if self.minimum > self.maximum:
            message = f"the {name} scale's minimum is above its maximum"
            raise ConfigurationError(message, key="minimum")
        object.__setattr__(self, "thresholds", tuple(thresholds))

    def severity(self, value: object) -> Severity:
        """The band `value` falls in.

        Raises:
            InvalidEvent: `value` is not a finite number within the scale.
        """
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise InvalidEvent(f"a {self.name} severity is a number", field="severity")
        if not self.minimum <= value <= self.maximum:
            raise InvalidEvent(
                f"a {self.name} severity is between {self.minimum:g} and {self.maximum:g}, "
                f"not {value:g}",
                field="severity",
            )
        result = Severity.INFO
        bands = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
        for band, threshold in zip(bands, self.thresholds, strict=True):
            reached = value <= threshold if self.descending else value >= threshold
            if reached:
                result = band
        return result


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return _number(value) and math.isfinite(value)


_INF: Final = math.inf
SeverityScale.PERCENT = SeverityScale("percent", (20, 40, 60, 80), 0, 100)
SeverityScale.ELASTIC_RISK = SeverityScale("Elastic risk score", (0, 22, 48, 74), 0, 100)
SeverityScale.CEF = SeverityScale("CEF", (0, 4, 7, 9), 0, 10)
SeverityScale.TEN = SeverityScale("1-10", (1, 4, 7, 9), 1, 10)
SeverityScale.SURICATA = SeverityScale("Suricata", (3, 2, 1, -_INF), 1, 4, descending=True)
SeverityScale.SYSLOG = SeverityScale("syslog", (5, 4, 3, 2), 0, 7, descending=True)
