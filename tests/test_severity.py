from __future__ import annotations

import math

import pytest

from fido import ConfigurationError, InvalidEvent, Severity, SeverityScale

S = Severity


def test_order() -> None:
    assert S.INFO < S.LOW < S.MEDIUM < S.HIGH < S.CRITICAL
    assert S.CRITICAL >= S.HIGH >= S.HIGH
    assert S.LOW <= S.LOW
    assert max([S.LOW, S.CRITICAL, S.MEDIUM]) is S.CRITICAL
    assert sorted([S.HIGH, S.INFO, S.MEDIUM]) == [S.INFO, S.MEDIUM, S.HIGH]
    assert [s.rank for s in S] == [0, 1, 2, 3, 4]


def test_no_comparison_with_numbers() -> None:
    with pytest.raises(TypeError):
        assert S.HIGH < 3
    with pytest.raises(TypeError):
        assert S.HIGH > 3
    with pytest.raises(TypeError):
        assert S.HIGH <= 3
    with pytest.raises(TypeError):
        assert S.HIGH >= 3


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Informational", S.INFO),
        ("info", S.INFO),
        ("LOW", S.LOW),
        ("Moderate", S.MEDIUM),
        ("med", S.MEDIUM),
        ("High", S.HIGH),
        ("major", S.HIGH),
        ("Very-High", S.CRITICAL),
        ("very high", S.CRITICAL),
        ("crit", S.CRITICAL),
    ],
)
def test_parse(word: str, expected: Severity) -> None:
    assert Severity.parse(word) is expected


def test_parse_unknown() -> None:
    with pytest.raises(InvalidEvent, match="unknown severity") as info:
        Severity.parse("catastrophic")
    assert info.value.field == "severity"


@pytest.mark.parametrize("value", [5, None, b"high", ["high"]])
def test_parse_refuses_what_is_no_word(value: object) -> None:
    with pytest.raises(InvalidEvent, match="is a str") as info:
        Severity.parse(value)  # type: ignore[arg-type]
    assert info.value.field == "severity"


@pytest.mark.parametrize(
    ("scale", "value", "expected"),
    [
        (SeverityScale.PERCENT, 0, S.INFO),
        (SeverityScale.PERCENT, 19.9, S.INFO),
        (SeverityScale.PERCENT, 30, S.LOW),
        (SeverityScale.PERCENT, 40, S.MEDIUM),
        (SeverityScale.PERCENT, 79, S.HIGH),
        (SeverityScale.PERCENT, 100, S.CRITICAL),
        (SeverityScale.ELASTIC_RISK, 21, S.LOW),
        (SeverityScale.ELASTIC_RISK, 47, S.MEDIUM),
        (SeverityScale.ELASTIC_RISK, 73, S.HIGH),
        (SeverityScale.ELASTIC_RISK, 99, S.CRITICAL),
        (SeverityScale.CEF, 0, S.LOW),
        (SeverityScale.CEF, 5, S.MEDIUM),
        (SeverityScale.CEF, 8, S.HIGH),
        (SeverityScale.CEF, 10, S.CRITICAL),
        (SeverityScale.TEN, 5, S.MEDIUM),
        (SeverityScale.TEN, 9, S.CRITICAL),
        (SeverityScale.SURICATA, 1, S.HIGH),
        (SeverityScale.SURICATA, 2, S.MEDIUM),
        (SeverityScale.SURICATA, 3, S.LOW),
        (SeverityScale.SURICATA, 4, S.INFO),
        (SeverityScale.SYSLOG, 0, S.CRITICAL),
        (SeverityScale.SYSLOG, 2, S.CRITICAL),
        (SeverityScale.SYSLOG, 3, S.HIGH),
        (SeverityScale.SYSLOG, 4, S.MEDIUM),
        (SeverityScale.SYSLOG, 5, S.LOW),
        (SeverityScale.SYSLOG, 7, S.INFO),
    ],
)
def test_from_scale(scale: SeverityScale, value: float, expected: Severity) -> None:
    assert Severity.from_scale(value, scale) is expected


@pytest.mark.parametrize("value", [-1, 101, float("nan"), "50", True, None])
def test_from_scale_refuses(value: object) -> None:
    with pytest.raises(InvalidEvent) as info:
        Severity.from_scale(value, SeverityScale.PERCENT)
    assert info.value.field == "severity"


def test_custom_scale() -> None:
    scale = SeverityScale("vendor", (2, 4, 6, 8), 0, 9)
    assert [Severity.from_scale(v, scale) for v in (1, 3, 5, 7, 9)] == list(Severity)


@pytest.mark.parametrize(
    ("args", "kwargs", "key", "fragment"),
    [
        (("v", (2, 4, 6), 0, 9), {}, "thresholds", "four thresholds"),
        (("v", (2, 4, 6, "8"), 0, 9), {}, "thresholds", "numbers"),
        (("v", (2, 4, 6, math.nan), 0, 9), {}, "thresholds", "numbers"),
        (("v", (2, 6, 4, 8), 0, 9), {}, "thresholds", "rise"),
        (("v", (2, 4, 6, 8), 0, 9), {"descending": True}, "thresholds", "fall"),
        (("v", (2, 4, 6, 8), 9, 0), {}, "minimum", "above its maximum"),
        (("v", (2, 4, 6, 8), 0, math.inf), {}, "minimum", "finite"),
        (("v", (2, 4, 6, 8), True, 9), {}, "minimum", "finite"),
        (("", (2, 4, 6, 8), 0, 9), {}, "name", "a name"),
        (("v", (2, 4, 6, 8), 0, 9), {"descending": "no"}, "descending", "true or false"),
    ],
)
def test_scale_is_checked(
    args: tuple[object, ...], kwargs: dict[str, object], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as info:
        SeverityScale(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


def test_scale_presets_and_open_bands() -> None:
    scale = SeverityScale("v", [0, 4, 4, math.inf], 0, 9)  # type: ignore[arg-type]
    assert Severity.from_scale(9, scale) is S.HIGH
    assert scale.thresholds == (0, 4, 4, math.inf)  # a list becomes a tuple
