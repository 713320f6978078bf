"""Run the fault scenarios end to end and compare each with a fault-free reference run.

Every pipeline (the reference and one per scenario) runs in its own namespace (topic prefix,
consumer groups, PostgreSQL schema, MongoDB database) on the fault run's own stack, with the
same seeded events. The reference gets no poison and no faults; its read models are the
expected result. A scenario passes when every read model equals the reference's row for row
and every dead-letter topic holds exactly the poison its readers must refuse.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.keys import ensure_dev_key_async
from events.catalog import entry
from events.model import Event
from events.topics import apply_topics, topic_specs
from fairstream.bootstrap import PROJECTIONS, apply_migrations
from fairstream.kafka_security import librdkafka_security
from fairstream.settings import Settings
from operations.faults.deadletters import count_dead_letters
from operations.faults.fleet import CLOSE_GRACE_SECONDS, Namespace, ServiceFleet, settings_env
from operations.faults.plan import FaultAction, FaultPlan, schedule
from operations.faults.probe import ApiProbe
from operations.faults.progress import IDLE_LAG, GroupLag, KafkaProgress
from operations.faults.readmodels import (
    MongoReadModels,
    PostgresReadModels,
    ReadModelSource,
    Snapshot,
    compare,
)
from operations.faults.stack import FaultStack
from operations.faults.traffic import (
    PROCESSOR_INPUTS,
    Poison,
    TrafficPublisher,
    event_start,
    expected_dead_letters,
    generate_events,
    make_poison,
)

Report = Callable[[str], None]
STARTUP_SECONDS = 25.0
# A SIGKILLed Faust worker's successor waits for the dead member's session to expire
# (`FaultPlan.session_timeout_seconds`) before it gets partitions, and a restarted broker
# takes a while to lead again: counts short of the reference may stay still that long.
UNMATCHED_QUIET = 90.0


@dataclass
class PipelineResult:
    """What one pipeline run published, suffered and ended with."""

    namespace: str
    scenario: str
    seconds: float = 0.0
    events_published: int = 0
    poison_injected: int = 0
    poison_by_kind: dict[str, int] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)
    unexpected_exits: dict[str, int] = field(default_factory=dict)
    api_statuses: dict[str, int] = field(default_factory=dict)
    api_503_without_retry_after: int = 0
    read_models: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    delivery: dict[str, int] = field(default_factory=dict)
    # Records per topic (namespace prefix removed) and the partitions groups left unread,
    # both at the end: they tell a stage that lost events from one that stopped reading.
    topic_records: dict[str, int] = field(default_factory=dict)
    groups_behind: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failure_kinds: list[str] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Tell whether the run matched the reference in every respect checked."""
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (without the snapshot)."""
        out = {k: v for k, v in self.__dict__.items() if k != "snapshot"}
        out["ok"] = self.ok
        out["failure_kinds"] = sorted(set(self.failure_kinds))
        return out


def readers_by_type() -> dict[str, list[str]]:
    """Map each event type to the processors and projections that read its topic."""
    readers: dict[str, list[str]] = {}
    for name, types in PROCESSOR_INPUTS.items():
        for t in types:
            readers.setdefault(t, []).append(name)
    base = Settings()
    for name, factory in PROJECTIONS.items():
        for t in factory(base).event_types:
            readers.setdefault(t, []).append(f"projection:{name}")
    return readers


class FaultHarness:
    """Drive the stack, the pipelines and the faults of one fault run."""

    def __init__(
        self,
        plan: FaultPlan,
        stack_dir: Path,
        stack_env: Mapping[str, str],
        results_dir: Path,
        report: Report = print,
    ) -> None:
        self.plan = plan
        self.stack = FaultStack(stack_dir, stack_env)
        self.stack_dir = stack_dir
        self.results_dir = results_dir
        self.report = report
        self.run_id = uuid.uuid4().hex[:6]
        self.api_port = int(stack_env.get("FAIRSTREAM_API_PORT", "22080"))
        self.rng = random.Random(plan.seed)

    # -- the run ------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run the reference and every scenario; write and return the summary."""
        started = time.monotonic()
        plan = self.plan
        self.report(
            f"faults: seed {plan.seed}, {plan.events} events per pipeline at {plan.rate:.0f}/s, "
            f"{plan.poison_per_topic} poison per source topic, "
            f"scenarios {', '.join(plan.scenarios)}"
        )
        self.report(f"faults: stack under {self.stack_dir}")
        results: list[PipelineResult] = []
        try:
            self.stack.up(1)
            start = event_start()
            events = generate_events(plan.events, plan.seed, start)
            self.report(
                f"faults: generated {len(events)} events {dict(Counter(e.type for e in events))}"
            )
            reference = self.run_pipeline("ref", "reference", events, [])
            results.append(reference)
            for scenario in plan.pipelines():
                parts = scenario.split("+")
                if "cluster-broker-kill" in parts and self.stack.brokers != 3:
                    self.report("faults: switching the stack to a 3-broker Kafka cluster")
                    self.stack.down("kafka")
                    self.stack.up(3, "kafka")
                name = "combined" if len(parts) > 1 else scenario
                poison = make_poison(plan.poison_per_topic, self.rng)
                result = self.run_pipeline(name, scenario, events, poison, reference)
                results.append(result)
        finally:
            self.report("faults: stopping the fault stack")
            try:
                self.stack.down()
            except Exception as exc:  # report, the summary is still worth writing
                self.report(f"faults: stack down failed: {exc}")
        summary = {
            "seed": plan.seed,
            "events_per_pipeline": plan.events,
            "rate": plan.rate,
            "seconds": round(time.monotonic() - started, 1),
            "ok": all(r.ok for r in results),
            "pipelines": [r.to_json() for r in results],
        }
        self.results_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = self.results_dir / f"faults-{stamp}-seed{plan.seed}.json"
        path.write_text(json.dumps(summary, indent=2, default=str))
        self.report(f"faults: summary written to {path}")
        return summary

    def _base_settings(self) -> tuple[Settings, dict[str, str]]:
        client = self.stack.client_env()
        env = {**os.environ, **client, **self.plan.extra_env}
        for name, value in client.items():
            os.environ[name] = value  # Settings() and the security helpers read the environment
        return Settings(), env

    def run_pipeline(
        self,
        name: str,
        scenario: str,
        events: list[Event],
        poison: list[Poison],
        reference: PipelineResult | None = None,
    ) -> PipelineResult:
        """Run one namespace's services through `events` (and `scenario`'s faults); check it."""
        began = time.monotonic()
        expected = None if reference is None else reference.snapshot
        ns = Namespace(self.run_id, name)
        base, base_env = self._base_settings()
        settings = ns.settings(base, self.api_port, self.plan.session_timeout_seconds)
        env = settings_env(settings, base_env)
        security = librdkafka_security(settings)
        result = PipelineResult(ns.tag, scenario)
        self.report(f"[{name}] namespace {ns.tag}: topics, schema, API key")
        apply_topics(
            settings.kafka_bootstrap, topic_specs(settings.topic_prefix, brokers=self.stack.brokers)
        )
        asyncio.run(apply_migrations(settings))
        key = asyncio.run(ensure_dev_key_async(settings, self.stack_dir / f"{ns.tag}-api-key"))
        fleet = ServiceFleet(settings, env, self.stack_dir / "faults" / ns.tag)
        pg = PostgresReadModels(settings.postgres_dsn.get_secret_value(), settings.pg_schema)
        docs = MongoReadModels(settings.mongo_url, settings.mongo_database)
        progress = KafkaProgress(settings.kafka_bootstrap, security, (settings.topic_prefix,))
        lag = GroupLag(settings.kafka_bootstrap, ns.tag)
        fleet.start_all()
        try:
            fleet.wait_ready(STARTUP_SECONDS)
            actions = schedule(self.plan, scenario, fleet.names, self.rng) if poison else []
            injector = _Injector(
                self, fleet, actions, f"http://127.0.0.1:{self.api_port}", key, name
            )
            publisher = TrafficPublisher(settings.kafka_bootstrap, settings.topic_prefix, security)
            self.report(
                f"[{name}] publishing {len(events)} events + {len(poison)} poison; "
                f"{len(actions)} faults scheduled"
            )
            injector.start()
            try:
                published, poisoned = publisher.publish(
                    events, poison, self.plan.rate, self.rng, tick=lambda _e: fleet.watch()
                )
            finally:
                publisher.close()
            result.events_published, result.poison_injected = published, poisoned
            result.poison_by_kind = dict(Counter(p.kind for p in poison))
            self.report(f"[{name}] published {published} events, {poisoned} poison")
            while injector.is_alive():
                fleet.watch()
                injector.join(1.0)
            result.faults = injector.done
            result.api_statuses = injector.api_statuses
            result.api_503_without_retry_after = injector.api_503_without_retry_after
            want = _totals(expected) if expected is not None else None
            # Windows close only in the close phase: before it, wait for everything else.
            before_close = (
                None if want is None else {k: n for k, n in want.items() if k != "metric_windows"}
            )
            self._settle(name, fleet, (pg, docs), progress, lag, before_close, close_phase=False)
            self.report(
                f"[{name}] close phase: analytics restarted with grace {CLOSE_GRACE_SECONDS}s"
            )
            fleet.restart_with(
                "processor-analytics",
                {"FAIRSTREAM_ANALYTICS_GRACE_SECONDS": str(CLOSE_GRACE_SECONDS)},
            )
            self._settle(name, fleet, (pg, docs), progress, lag, want, close_phase=True)
            snapshot = {k: rows for source in (pg, docs) for k, rows in source.snapshot().items()}
            result.snapshot = snapshot
            result.delivery = asyncio.run(pg.delivery_async())
            result.unexpected_exits = dict(fleet.unexpected_exits)
            try:  # diagnosis only: the check below must run whatever happens here
                prefix = len(settings.topic_prefix)
                ends = progress.end_offsets_by_topic()
                result.topic_records = {t[prefix:]: n for t, n in sorted(ends.items())}
                result.groups_behind = lag.behind()
            except Exception as exc:
                self.report(f"[{name}] end offsets and lag unread: {type(exc).__name__}: {exc}")
            self._check(result, settings, security, poison, reference)
        finally:
            fleet.stop_all()
            progress.close()
            lag.close()
            result.kills = dict(fleet.kills)
            result.unexpected_exits = dict(fleet.unexpected_exits)
            result.seconds = round(time.monotonic() - began, 1)
        self._print(result)
        return result

    def _settle(
        self,
        name: str,
        fleet: ServiceFleet,
        sources: tuple[ReadModelSource, ...],
        progress: KafkaProgress,
        lag: GroupLag,
        want: dict[str, int] | None,
        *,
        close_phase: bool,
    ) -> None:
        """Wait until offsets and row counts stop moving (and match `want`, when given)."""
        deadline = time.monotonic() + self.plan.timeout_seconds
        last: tuple[int, dict[str, int]] | None = None
        stable_since = time.monotonic()
        min_wait = time.monotonic() + (STARTUP_SECONDS if close_phase else 0.0)
        while time.monotonic() < deadline:
            fleet.watch()
            try:
                counts = {k: n for source in sources for k, n in source.counts().items()}
                behind, groups = lag.total()
                now = (progress.end_offsets(), counts)
            except Exception as exc:  # a store still coming back: keep waiting
                self.report(f"[{name}] settle: {type(exc).__name__}: {exc}")
                time.sleep(2.0)
                continue
            # Every group must have committed, but the metric windows' projection has nothing
            # to read before the close phase.
            groups_wanted = len(PROCESSOR_INPUTS) + len(PROJECTIONS) - (0 if close_phase else 1)
            if now != last or behind > IDLE_LAG or groups < groups_wanted:
                # Still moving, or still consuming however still the counts (a document
                # update changes no row count): quiet starts only after this sample. Judged
                # before `quiet`, so a sample that took long cannot count as quiet time.
                last, stable_since = now, time.monotonic()
            quiet = time.monotonic() - stable_since
            matches = want is not None and all(now[1].get(k) == n for k, n in want.items())
            # Windows appear only once the restarted analytics worker has recovered its table
            # (a changelog of every window write): until then the count stays still at 0.
            waiting_for_windows = close_phase and now[1].get("metric_windows", 0) == 0
            if (
                time.monotonic() >= min_wait
                and not waiting_for_windows
                and (
                    (matches and quiet >= self.plan.settle_seconds)
                    or quiet >= (self.plan.settle_seconds if want is None else UNMATCHED_QUIET)
                )
            ):
                self.report(f"[{name}] settled (lag {behind}): {now[1]}")
                return
            time.sleep(2.0)
        self.report(f"[{name}] did not settle within {self.plan.timeout_seconds:.0f}s")

    def _check(
        self,
        result: PipelineResult,
        settings: Settings,
        security: Mapping[str, str],
        poison: list[Poison],
        reference: PipelineResult | None,
    ) -> None:
        readers = readers_by_type()
        want_dlq = expected_dead_letters(poison, readers, PROCESSOR_INPUTS)
        topics = sorted({entry(t).topic for t in readers})
        found = count_dead_letters(
            settings.kafka_bootstrap, security, settings.topic_prefix, topics
        )
        for topic in topics:
            got = found[topic]
            expected_letters = want_dlq.get(topic, 0)
            row: dict[str, Any] = {
                "topic": f"{topic}.dlq",
                "expected": expected_letters,
                "distinct": got.distinct,
                "records": got.records,
            }
            result.dead_letters.append(row)
            if got.distinct != expected_letters:
                result.failures.append(
                    f"{topic}.dlq: {got.distinct} distinct dead letters, "
                    f"expected {expected_letters}"
                )
                result.failure_kinds.append(
                    "loss" if got.distinct < expected_letters else "mismatch"
                )
            elif got.records != got.distinct:
                result.failures.append(
                    f"{topic}.dlq: {got.records} records for {got.distinct} poison records "
                    "(dead-lettered again after a restart)"
                )
                result.failure_kinds.append("duplicate-delivery")
        if reference is not None:
            for cmp in compare(reference.snapshot, result.snapshot):
                result.read_models.append(cmp.to_json())
                if not cmp.equal:
                    result.failures.append(
                        f"{cmp.model}: {cmp.actual_rows} rows vs {cmp.expected_rows} expected, "
                        f"{cmp.missing} missing, {cmp.extra} extra, {cmp.different} different "
                        f"({', '.join(sorted(cmp.defect_kinds))}: {', '.join(cmp.fields)})"
                    )
                    result.failure_kinds += sorted(cmp.defect_kinds)
            if any(not m["equal"] for m in result.read_models):
                result.failures.append(where_it_stopped(result, reference))
        else:
            for model, rows in sorted(result.snapshot.items()):
                n = len(rows)
                result.read_models.append({"model": model, "rows": n})
                if n == 0:
                    result.failures.append(f"reference read model {model} is empty")
                    result.failure_kinds.append("harness")
        bad = {
            s: n
            for s, n in result.api_statuses.items()
            if (s.startswith("5") and s != "503") or s == "error"
        }
        if bad:
            result.failures.append(f"API answered {bad} during the outage (error: no answer)")
            result.failure_kinds.append("api")
        if result.unexpected_exits:
            result.failures.append(f"services exited on their own: {result.unexpected_exits}")
            result.failure_kinds.append("exit")
        if result.api_503_without_retry_after:
            result.failures.append(
                f"{result.api_503_without_retry_after} API 503s without Retry-After"
            )
            result.failure_kinds.append("api")

    def _print(self, r: PipelineResult) -> None:
        self.report(
            f"[{r.scenario}] {r.seconds:.0f}s: events published {r.events_published}, "
            f"poison injected {r.poison_injected} {r.poison_by_kind}"
        )
        if r.faults:
            self.report(
                f"[{r.scenario}] faults: "
                + "; ".join(f"{f['at']:.1f}s {f['kind']} {f['target']}".strip() for f in r.faults)
            )
        self.report(f"[{r.scenario}] kills {r.kills}; unexpected exits {r.unexpected_exits}")
        if r.api_statuses:
            self.report(f"[{r.scenario}] API during the outage: {r.api_statuses}")
        for m in r.read_models:
            if "expected_rows" in m:
                flag = "ok" if m["equal"] else "MISMATCH"
                self.report(
                    f"[{r.scenario}]   {m['model']:<26} expected {m['expected_rows']:>7} "
                    f"actual {m['actual_rows']:>7}  missing {m['missing']} extra {m['extra']} "
                    f"different {m['different']}  {flag}"
                )
                for sample in m["samples"]:
                    self.report(f"[{r.scenario}]       {sample}")
            else:
                self.report(f"[{r.scenario}]   {m['model']:<26} rows {m['rows']:>7}")
        for d in r.dead_letters:
            if d["expected"] or d["records"]:
                self.report(
                    f"[{r.scenario}]   {d['topic']:<34} expected {d['expected']:>3} "
                    f"distinct {d['distinct']:>3} records {d['records']:>3}"
                )
        self.report(f"[{r.scenario}] delivery {r.delivery}")
        self.report(
            f"[{r.scenario}] {'PASS' if r.ok else 'FAIL'}"
            + "".join(f"\n[{r.scenario}]   - {f}" for f in r.failures)
        )


def where_it_stopped(result: PipelineResult, reference: PipelineResult) -> str:
    """Describe, for a run short of the reference, which topics and groups fell behind."""
    short = [
        f"{t} {result.topic_records.get(t, 0)} vs {n}"
        for t, n in reference.topic_records.items()
        if result.topic_records.get(t, 0) < n and not _faust_internal(t)
    ]
    return (
        "at the end, topics with fewer records than the reference's: "
        + (", ".join(short) or "none")
        + "; partitions not committed to their end: "
        + ("; ".join(result.groups_behind) or "none")
    )


def _faust_internal(topic: str) -> bool:
    """Tell a Faust table's changelog or a repartition topic (counts vary between runs)."""
    return topic.endswith(("-changelog", "-repartition")) or "__assignor" in topic


def _totals(snapshot: Snapshot) -> dict[str, int]:
    return {model: len(rows) for model, rows in snapshot.items()}


class _Injector(threading.Thread):
    """Carry out a scenario's faults at their times, from when traffic starts."""

    def __init__(
        self,
        harness: FaultHarness,
        fleet: ServiceFleet,
        actions: list[FaultAction],
        api_url: str,
        api_key: str,
        name: str,
    ) -> None:
        super().__init__(name=f"faults-{name}", daemon=True)
        self.harness = harness
        self.fleet = fleet
        self.actions = actions
        self.api_url = api_url
        self.api_key = api_key
        self.label = name
        self.done: list[dict[str, Any]] = []
        self.api_statuses: dict[str, int] = {}
        self.api_503_without_retry_after = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        # Kills go on at their times in a thread of their own, while a broker restart or an
        # outage (which take many seconds) runs in this one.
        started = time.monotonic()
        kills = [a for a in self.actions if a.kind == "kill"]
        others = [a for a in self.actions if a.kind != "kill"]
        killer = threading.Thread(
            target=self._carry_out, args=(kills, started), name=f"{self.name}-kills", daemon=True
        )
        killer.start()
        self._carry_out(others, started)
        killer.join()
        self.done.sort(key=lambda f: float(f["at"]))

    def _carry_out(self, actions: list[FaultAction], started: float) -> None:
        try:
            for action in actions:
                delay = started + action.at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                at = time.monotonic() - started
                took = self._apply(action)
                self.done.append(
                    {
                        "at": round(at, 1),
                        "kind": action.kind,
                        "target": action.target,
                        "seconds": round(took, 1),
                    }
                )
                self.harness.report(
                    f"[{self.label}] {at:6.1f}s {action.kind} {action.target} ({took:.1f}s)"
                )
        except BaseException as exc:  # surfaced in the summary; the run goes on
            self.error = exc
            self.done.append({"at": -1, "kind": "error", "target": repr(exc), "seconds": 0})

    def _apply(self, action: FaultAction) -> float:
        began = time.monotonic()
        stack = self.harness.stack
        plan = self.harness.plan
        if action.kind == "kill":
            self.fleet.kill(action.target)
        elif action.kind == "broker-restart":
            stack.restart_kafka()
        elif action.kind == "broker-kill":
            stack.kill_broker(action.target)
            time.sleep(plan.broker_down_seconds)
            stack.up(stack.brokers, "kafka")
        elif action.kind == "postgres-outage":
            probe = ApiProbe(self.api_url, self.api_key, api_kills=lambda: self.fleet.kills["api"])
            stack.stop_postgres()
            probe.start()
            time.sleep(plan.postgres_outage_seconds)
            self.api_statuses = probe.stop()
            self.api_503_without_retry_after = probe.unavailable_without_retry_after
            stack.start_postgres()
        return time.monotonic() - began
