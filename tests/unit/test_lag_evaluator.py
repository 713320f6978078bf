"""Unit tests of the lag evaluator's rules, rates, exposition and deploy files (no services)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from operations.lag.evaluator import LagEvaluator, window_rates
from operations.lag.exposition import LagExposition
from operations.lag.model import GroupSample, LagSnapshot, LagStatus, PartitionSample

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
T0 = 1_800_000_000.0
WINDOW = 60.0


def part(
    committed: int,
    log_end: int,
    *,
    log_start: int = 0,
    assigned: bool = True,
    oldest_ms: int | None = None,
    partition: int = 0,
) -> PartitionSample:
    return PartitionSample("orders", partition, committed, log_start, log_end, oldest_ms, assigned)


def group(*parts: PartitionSample, name: str = "g", members: int = 1) -> GroupSample:
    return GroupSample(name, "Stable" if members else "Empty", members, parts)


def run(steps: list[tuple[float, GroupSample]], replaying: set[str] | None = None) -> LagSnapshot:
    evaluator = LagEvaluator(window_seconds=WINDOW, min_samples=3)
    snapshot = None
    for at, sample in steps:
        snapshot = evaluator.evaluate([sample], lambda g: g in (replaying or set()), now=T0 + at)
    assert snapshot is not None
    return snapshot


def status(snapshot: LagSnapshot) -> LagStatus:
    return snapshot.groups[0].status


def test_zero_lag_is_ok_with_zero_seconds() -> None:
    snap = run([(t, group(part(100, 100))) for t in (0, 10, 20, 100)])
    g = snap.groups[0]
    assert g.status is LagStatus.OK
    assert g.max_lag == 0 and g.max_lag_seconds == 0.0 and g.catch_up_seconds == 0.0


def test_keeping_up_with_some_lag_is_ok() -> None:
    steps = [(t, group(part(10 * t + t // 10, 10 * t + 10))) for t in range(0, 60, 10)]
    snap = run([(t, g) for t, g in steps])
    assert status(snap) is LagStatus.OK  # lag shrinks from one sample to the next


def test_lag_growing_while_offsets_advance_is_warn() -> None:
    steps = [(float(t), group(part(t, 2 * t + 5))) for t in range(0, 50, 10)]
    snap = run(steps)
    assert status(snap) is LagStatus.WARN
    p = snap.groups[0].partitions[0]
    assert p.consume_rate == pytest.approx(1.0) and p.produce_rate == pytest.approx(2.0)
    assert p.catch_up_seconds is None  # consuming slower than producing: never catches up


def test_warn_needs_min_samples() -> None:
    assert status(run([(0, group(part(0, 5))), (10, group(part(10, 25)))])) is LagStatus.OK


def test_constant_lag_with_advancing_offsets_is_warn() -> None:
    steps = [(float(t), group(part(t, t + 7))) for t in range(0, 40, 10)]
    assert status(run(steps)) is LagStatus.WARN


def test_no_commit_for_a_window_without_members_is_stop() -> None:
    steps = [(float(t), group(part(50, 80, assigned=False), members=0)) for t in range(0, 70, 10)]
    snap = run(steps)
    assert status(snap) is LagStatus.STOP
    assert snap.groups[0].max_lag == 30


def test_not_moving_with_a_live_member_is_stall() -> None:
    steps = [(float(t), group(part(50, 80 + t))) for t in range(0, 70, 10)]
    assert status(run(steps)) is LagStatus.STALL


def test_stop_only_after_a_full_window() -> None:
    steps = [(float(t), group(part(50, 80, assigned=False), members=0)) for t in range(0, 50, 10)]
    assert status(run(steps)) is LagStatus.OK


def test_offsets_going_backwards_is_rewind() -> None:
    steps = [
        (0.0, group(part(100, 200))),
        (10.0, group(part(120, 200))),
        (20.0, group(part(30, 200))),
    ]
    assert status(run(steps)) is LagStatus.REWIND


def test_offset_below_log_start_is_err() -> None:
    snap = run([(0.0, group(part(10, 500, log_start=100)))])
    assert status(snap) is LagStatus.ERR


def test_offset_past_log_end_is_err() -> None:
    assert status(run([(0.0, group(part(900, 500)))])) is LagStatus.ERR


def test_replaying_group_is_shown_as_replaying_not_an_alarm() -> None:
    steps = [
        (float(t), group(part(50, 80, assigned=False), name="r", members=0))
        for t in range(0, 70, 10)
    ]
    g = run(steps, replaying={"r"}).groups[0]
    assert g.status is LagStatus.REPLAYING and g.replaying
    assert g.evaluated_status is LagStatus.STOP


def test_group_status_is_the_worst_partition() -> None:
    steps = [
        (float(t), group(part(t, t), part(50, 80, partition=1, assigned=False)))
        for t in range(0, 70, 10)
    ]
    g = run(steps).groups[0]
    assert [p.status for p in g.partitions] == [LagStatus.OK, LagStatus.STOP]
    assert g.status is LagStatus.STOP


def test_time_lag_is_the_age_of_the_oldest_unconsumed_record() -> None:
    oldest_ms = int((T0 - 42.0) * 1000)
    g = run([(0.0, group(part(5, 9, oldest_ms=oldest_ms)))]).groups[0]
    assert g.max_lag_seconds == pytest.approx(42.0)
    g = run(
        [
            (0.0, group(part(5, 9, oldest_ms=oldest_ms))),
            (8.0, group(part(5, 9, oldest_ms=oldest_ms))),
        ]
    ).groups[0]
    assert g.max_lag_seconds == pytest.approx(50.0)  # a stopped consumer's time lag grows


def test_unreadable_oldest_record_still_grows_never_zero() -> None:
    steps = [(float(t), group(part(5, 9))) for t in (0, 10, 20)]
    assert run(steps).groups[0].max_lag_seconds == pytest.approx(20.0)


def test_catch_up_estimate() -> None:
    steps = [(0.0, group(part(0, 100))), (10.0, group(part(50, 110)))]
    p = run(steps).groups[0].partitions[0]
    assert p.consume_rate == pytest.approx(5.0) and p.produce_rate == pytest.approx(1.0)
    assert p.catch_up_seconds == pytest.approx(60 / 4.0)


def test_window_rates_with_one_sample_are_unknown() -> None:
    from operations.lag.evaluator import Observation

    rates = window_rates([Observation(T0, 1, 5, 4)], 4)
    assert rates.consume is None and rates.catch_up_seconds is None


def test_partitions_and_groups_disappear() -> None:
    evaluator = LagEvaluator(window_seconds=WINDOW)
    evaluator.evaluate([group(part(1, 2), part(1, 2, partition=1))], now=T0)
    snap = evaluator.evaluate([group(part(1, 2))], now=T0 + 10)
    assert [p.partition for p in snap.groups[0].partitions] == [0]
    assert evaluator.evaluate([], now=T0 + 20).groups == ()


def test_groups_sorted_by_time_lag() -> None:
    evaluator = LagEvaluator()
    samples = [
        group(part(1, 2, oldest_ms=int((T0 - 5) * 1000)), name="a"),
        group(part(1, 2, oldest_ms=int((T0 - 50) * 1000)), name="b"),
        group(part(2, 2), name="c"),
    ]
    assert [g.group for g in evaluator.evaluate(samples, now=T0).groups] == ["b", "a", "c"]


def test_exposition_renders_the_snapshot() -> None:
    steps = [
        (float(t), group(part(50, 80, assigned=False), name="gone", members=0))
        for t in range(0, 70, 10)
    ]
    snap = run(steps)
    exposition = LagExposition()
    registry = CollectorRegistry()
    registry.register(exposition)
    assert generate_latest(registry) == b""
    exposition.attach(lambda: snap)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(generate_latest(registry).decode())
        for s in fam.samples
    }
    labels = (("group", "gone"), ("partition", "0"), ("topic", "orders"))
    assert samples[("kafka_consumergroup_group_lag", labels)] == 30
    assert samples[("kafka_consumergroup_group_max_lag", (("group", "gone"),))] == 30
    assert samples[("kafka_consumergroup_group_status", (("group", "gone"),))] == LagStatus.STOP
    assert samples[("kafka_consumergroup_group_replaying", (("group", "gone"),))] == 0
    assert (
        samples[("kafka_partition_latest_offset", (("partition", "0"), ("topic", "orders")))] == 80
    )


def test_grafana_dashboard_uses_exposed_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "consumer-lag.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "kafka_consumergroup_group_status",
        "kafka_consumergroup_group_max_lag_seconds",
        "kafka_consumergroup_group_max_lag",
        "kafka_consumergroup_group_lag_seconds",
        "kafka_consumergroup_group_lag",
    ):
        assert metric in exprs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_loads_the_alert_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]


@pytest.mark.parametrize(
    "args",
    [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]],
    ids=["check", "test"],
)
def test_promtool_accepts_and_tests_the_alert_rules(args: list[str]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    result = subprocess.run(
        [promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
