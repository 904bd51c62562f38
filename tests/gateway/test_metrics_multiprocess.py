"""gateway.metrics under prometheus_client's multiprocess mode (`distill serve --workers N`),
with "workers" simulated in this process: prometheus_client picks its value class when it is
imported, so each worker's values are made with a value class of that worker's pid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import Gauge, values
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import MULTIPROC_ENV, Metrics, exposition, multiprocess_dir


@pytest.fixture
def multiproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored after the test
    return tmp_path


@contextmanager
def worker(pid: int) -> Iterator[None]:
    """Values created inside are worker `pid`'s (kept in its files)."""
    before = values.ValueClass
    values.ValueClass = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        values.ValueClass = before


def scrape() -> dict[str, float]:
    """What /metrics shows now, keyed `name{labels}` (labels sorted)."""
    text = exposition(Metrics().registry).decode()  # any registry: the files are read
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def every_gauge(metrics: Metrics) -> list[Gauge]:
    return [g for g in vars(metrics).values() if isinstance(g, Gauge)]


def test_one_process_mode_is_the_apps_own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert multiprocess_dir() is None
    a, b = Metrics(), Metrics()
    a.requests.labels("r", "teacher", "live", "200").inc(3)
    assert b"distill_requests_total" in exposition(a.registry)
    assert b'distill_requests_total{route="r"' not in exposition(b.registry)
    a.route_weight.labels("r", "s").set(0.5)
    Metrics.drop(a.route_weight, "r", "s")
    Metrics.drop(a.route_weight, "r", "never-set")  # no series: nothing to do
    assert (
        a.registry.get_sample_value("distill_route_weight", {"route": "r", "variant": "s"}) is None
    )


def test_every_gauge_has_a_mode_that_adds_no_pid_label() -> None:
    for gauge in every_gauge(Metrics()):
        assert gauge._multiprocess_mode not in ("all", "liveall"), gauge._name


def test_a_scrape_is_the_sum_of_all_workers_and_a_dead_ones_counters_stay(
    multiproc: Path,
) -> None:
    with worker(101):
        w1 = Metrics()
        w1.requests.labels("r", "teacher", "live", "200").inc(3)
        w1.latency.labels("r", "teacher", "live").observe(0.2)
        w1.in_flight.inc(2)
        w1.rollout_leader.set(1)
        w1.fleet_replica.set(1)
        w1.build.labels("1.0").set(1)
    with worker(102):
        w2 = Metrics()
        w2.requests.labels("r", "teacher", "live", "200").inc(4)
        w2.latency.labels("r", "teacher", "live").observe(0.2)
        w2.in_flight.inc(1)
        w2.fleet_replica.set(1)
        w2.build.labels("1.0").set(1)
    seen = scrape()
    assert seen["distill_requests_total{route=r,status=200,traffic=live,variant=teacher}"] == 7
    assert seen["distill_request_duration_seconds_count{route=r,traffic=live,variant=teacher}"] == 2
    assert seen["distill_requests_in_flight{}"] == 3  # livesum
    assert seen["distill_rollout_leader{}"] == 1  # the host leads: one worker does
    assert seen["distill_fleet_replica{}"] == 1  # 1 per host, not per worker
    assert seen["distill_build_info{version=1.0}"] == 1
    assert not any("pid" in key for key in seen)

    # the leader, kill -9: what the supervisor does
    mark_process_dead(101)  # type: ignore[no-untyped-call]
    seen = scrape()
    assert seen["distill_requests_total{route=r,status=200,traffic=live,variant=teacher}"] == 7
    assert seen["distill_requests_in_flight{}"] == 1  # its live gauges are gone
    assert seen["distill_rollout_leader{}"] == 0
    with worker(103):  # its successor counts on
        w3 = Metrics()
        w3.requests.labels("r", "teacher", "live", "200").inc()
    seen = scrape()
    assert seen["distill_requests_total{route=r,status=200,traffic=live,variant=teacher}"] == 8


def test_rollout_gauges_show_the_newest_state_and_a_dropped_series_goes(multiproc: Path) -> None:
    with worker(201):
        w1 = Metrics()
        w1.route_weight.labels("r", "s").set(0.5)
    with worker(202):
        w2 = Metrics()
        w2.route_weight.labels("r", "s").set(0.5)
    assert scrape()["distill_route_weight{route=r,variant=s}"] == 0.5
    with worker(201):  # a rollback applied by one worker, the other not polled it yet
        w1.route_weight.labels("r", "s").set(0.0)
    assert scrape()["distill_route_weight{route=r,variant=s}"] == 0.0  # not max's 0.5
    with worker(202):  # the other drops the adapter's series: the newest value is NaN
        Metrics.drop(w2.route_weight, "r", "s")
        assert math.isnan(w2.route_weight.labels("r", "s")._value.get())
    assert "distill_route_weight{route=r,variant=s}" not in scrape()
    with worker(201):  # the adapter rolls out again
        w1.route_weight.labels("r", "s").set(0.25)
    assert scrape()["distill_route_weight{route=r,variant=s}"] == 0.25
