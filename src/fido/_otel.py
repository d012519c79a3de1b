"""`pipeline.export_metrics()`: the figures of `pipeline.stats()` as OpenTelemetry metrics.

Optional: it needs the `otel` extra (`opentelemetry-api`), and nothing is exported unless
it is called. The instruments are observable (read when the SDK collects), so the
pipeline does no extra work between collections:

- `fido.events` (counter), one series per `counter` attribute: processed, duplicates,
  suppressed, dead_lettered, lookups, lookup_failures, responses, response_failures,
  resumed;
- `fido.duration.p50` and `fido.duration.p99` (gauges, seconds), one series per `timing`
  attribute: `stage.enrich`, `enrich.<enricher>`, `respond.<responder>`, ...;
- `fido.adapter` (gauge), one series per `adapter` and `figure` attribute, for every
  number an adapter's own `stats()` reports (cache hit rate, retries, breaker state as
  0 closed / 1 open / 2 half-open, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fido._errors import ConfigurationError
from fido._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["export_metrics"]

log = get_logger("fido.otel")

_BREAKER: Final = {"closed": 0, "open": 1, "half-open": 2, "half_open": 2}


def export_metrics(stats: Callable[[], dict[str, Any]], meter_provider: Any = None) -> None:
    """Register observable instruments that read `stats()` at each collection.

    Args:
        stats: Where the figures come from (`pipeline.stats`).
        meter_provider: An OpenTelemetry `MeterProvider`; default: the global one, which
            the application (or `opentelemetry-instrument`) configures.

    Raises:
        ConfigurationError: OpenTelemetry is not installed (`pip install 'fido-ir[otel]'`).
    """
    try:
        from opentelemetry import metrics
    except ImportError:
        raise ConfigurationError(
            "OpenTelemetry export needs the otel extra: pip install 'fido-ir[otel]'"
        ) from None
    from fido._version import __version__

    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter("fido", __version__)

    def read() -> dict[str, Any]:
        try:
            return stats()
        except Exception:  # a failed collection must not break the exporter
            log.exception("pipeline.stats() failed during a metrics collection")
            return {}

    def counters(_options: Any) -> Iterable[Any]:
        for name, value in read().get("counters", {}).items():
            yield metrics.Observation(value, {"counter": name})

    def timings(which: str) -> Callable[[Any], Iterable[Any]]:
        def observe(_options: Any) -> Iterable[Any]:
            for name, figures in read().get("timings", {}).items():
                yield metrics.Observation(figures[which], {"timing": name})

        return observe

    def adapters(_options: Any) -> Iterable[Any]:
        for adapter, figures in read().get("adapters", {}).items():
            if not isinstance(figures, dict):
                continue
            for figure, value in figures.items():
                number = _number(value)
                if number is not None:
                    yield metrics.Observation(number, {"adapter": adapter, "figure": figure})

    meter.create_observable_counter(
        "fido.events", callbacks=[counters], unit="{event}", description="pipeline counters"
    )
    for which in ("p50", "p99"):
        meter.create_observable_gauge(
            f"fido.duration.{which}",
            callbacks=[timings(which)],
            unit="s",
            description=f"{which} of the stage, enricher and responder timings",
        )
    meter.create_observable_gauge(
        "fido.adapter", callbacks=[adapters], description="what each adapter reports"
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in _BREAKER:
        return float(_BREAKER[value])
    return None
