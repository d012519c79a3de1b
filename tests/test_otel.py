"""`pipeline.export_metrics()`: `stats()` as OpenTelemetry metrics, read at collection."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

import fido
from fido._config import load_config
from fido.testing import StaticEnricher
from tests.factories import event

if TYPE_CHECKING:
    from pathlib import Path


def collected(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    data = reader.get_metrics_data()
    points: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    if data is None:  # nothing observed
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "fido"
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    assert isinstance(point, NumberDataPoint)
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    points[key] = point.value
    return points


class Reporting(StaticEnricher):
    def stats(self) -> dict[str, Any]:
        return {"hit_rate": 0.75, "retries": 3, "breaker": "open", "note": "not a number"}


def test_stats_become_metrics() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with fido.Pipeline(enrichers=[Reporting({}, name="feed")]) as pipeline:
        pipeline.export_metrics(provider)
        pipeline.process(event(id="m-1"))
        pipeline.process(event(id="m-1"))  # a duplicate
        points = collected(reader)
    assert points[("fido.events", (("counter", "processed"),))] == 1  # not the duplicate
    assert points[("fido.events", (("counter", "duplicates"),))] == 1
    assert points[("fido.duration.p50", (("timing", "stage.score"),))] > 0
    assert points[("fido.duration.p99", (("timing", "stage.score"),))] > 0
    feed = {k[1][1][1]: v for k, v in points.items() if k[0] == "fido.adapter"}
    assert feed == {"hit_rate": 0.75, "retries": 3.0, "breaker": 1.0}
    provider.shutdown()


def test_a_failing_stats_does_not_break_collection(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    from fido._otel import export_metrics

    export_metrics(broken, provider)
    assert collected(reader) == {}
    assert "pipeline.stats() failed" in caplog.text
    provider.shutdown()


def test_without_opentelemetry_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    with (
        fido.Pipeline() as pipeline,
        pytest.raises(fido.ConfigurationError, match=r"fido-ir\[otel\]"),
    ):
        pipeline.export_metrics()


def test_the_run_table_turns_it_on(tmp_path: Path) -> None:
    path = tmp_path / "fido.toml"
    path.write_text("[run]\nopentelemetry = true\n")
    assert load_config(path).run.opentelemetry is True
    path.write_text('[run]\nopentelemetry = "yes"\n')
    with pytest.raises(fido.ConfigurationError, match=r"run\.opentelemetry"):
        load_config(path)
