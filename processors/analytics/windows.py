"""Tumbling event-time windows over observations, without Faust: assign, aggregate, close.

Vocabulary:

* An **observation** is one event's contribution to one group of one metric family
  (a BiasScored contributes to `all`, its `level` and each flagged `dimension`).
* A **lane** is (partition of the internal observations topic, family). Every group
  hashes to one partition, so a lane owns all windows of its groups.
* A lane's **clock** is the highest event time (envelope.occurred_at) seen in the
  lane, moved to the wall clock when the lane has been idle (no observation) for
  `idle_ms` (default: the grace period). It never goes back.

Rules (the same for every window kind: minute 60 s, hour 3600 s, day 86400 s, aligned
to the UTC epoch, start inclusive, end exclusive):

* **Close**: a window closes when its lane's clock reaches `end + grace`. It closes
  exactly once: the open state is replaced by a closed marker and a window that is
  marked, or whose `end + grace` the clock has already passed, never takes an
  observation again. Markers are pruned one window length after the close; from then
  on the clock rule alone keeps the window shut.
* **Late**: an observation for a window that is closed (by the rule above) is not
  counted. It increments the group's pending late counter for that window kind, which
  is reported as `late_count` on the *next* MetricWindowClosed of the same group and
  kind, then reset. Accepted observations within the grace period count normally.
* **Duplicates**: an observation carries its source position (source topic-partition,
  offset and its index among the observations of that record). The route step sends a
  source partition's observations in position order, so each window and each lane keeps
  the highest position applied per source partition and ignores anything not beyond
  it: a re-delivered source record, a re-delivered observation, or a replay after a
  partial changelog write (every key carries its own guard, written with its change).
  This is exact whatever the size of the replayed tail. An upstream duplicate (the same
  event id in another source record, e.g. a BiasScored re-emitted by a restarted bias
  scorer) is caught by a `seen/<group key>/<event id>` marker written after the lane.
  Observations without a source position also check the last `dedupe_size` event ids
  each window remembers. Markers are kept for as long as the state (not pruned yet).
* **p95 latency**: each window keeps a reservoir of at most `reservoir_size`
  latencies (Algorithm R, with the replacement slot derived from the event id so a
  replay rebuilds the same sample). p95 is the nearest-rank percentile of the
  reservoir: exact while a window holds at most `reservoir_size` latencies, an
  unbiased sample estimate beyond. A fixed histogram would be smaller but never exact
  and needs bucket bounds that suit every model; a reservoir keeps state bounded
  (8 bytes x size) and the common small windows exact.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

WINDOW_SIZES_MS: Mapping[str, int] = {
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
}
FAMILIES: tuple[str, ...] = ("bias", "model_usage", "analytics")
ALERT_LEVELS = ("high", "critical")
SCORE_BUCKET_BOUNDS = (0.2, 0.4, 0.6, 0.8)
DEFAULT_RESERVOIR_SIZE = 512
DEFAULT_DEDUPE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Observation:
    """Hold what one event contributes to one group of one family."""

    family: str
    group_by: str
    group_value: str
    event_id: str
    occurred_ms: int
    score: float | None = None
    latency_ms: float | None = None
    tokens: int = 0
    cost: float = 0.0
    error: bool = False
    alert_level: str | None = None
    source: str | None = None
    position: tuple[int, int] | None = None

    @property
    def group_key(self) -> str:
        """Return the key that routes this observation: `<family>/<group_by>=<group_value>`."""
        return f"{self.family}/{self.group_by}={self.group_value}"

    def to_json(self) -> dict[str, Any]:
        """Return the observation as a JSON-ready dict."""
        return {
            "f": self.family,
            "gb": self.group_by,
            "gv": self.group_value,
            "id": self.event_id,
            "t": self.occurred_ms,
            "s": self.score,
            "l": self.latency_ms,
            "tok": self.tokens,
            "c": self.cost,
            "e": self.error,
            "a": self.alert_level,
            "src": self.source,
            "pos": None if self.position is None else list(self.position),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Observation:
        """Read an observation written by `to_json`."""
        return cls(
            family=str(obj["f"]),
            group_by=str(obj["gb"]),
            group_value=str(obj["gv"]),
            event_id=str(obj["id"]),
            occurred_ms=int(obj["t"]),
            score=None if obj.get("s") is None else float(obj["s"]),
            latency_ms=None if obj.get("l") is None else float(obj["l"]),
            tokens=int(obj.get("tok", 0)),
            cost=float(obj.get("c", 0.0)),
            error=bool(obj.get("e", False)),
            alert_level=obj.get("a"),
            source=obj.get("src"),
            position=None if obj.get("pos") is None else (int(obj["pos"][0]), int(obj["pos"][1])),
        )


def window_bounds(occurred_ms: int, kind: str) -> tuple[int, int]:
    """Return the [start, end) of the `kind` window holding `occurred_ms` (epoch ms, UTC)."""
    size = WINDOW_SIZES_MS[kind]
    start = occurred_ms - occurred_ms % size
    return start, start + size


def iso_millis(ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC with milliseconds and a `Z`."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_datetime(ms: int) -> datetime:
    """Turn epoch milliseconds into an aware UTC datetime."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=(ms % 1000) * 1000)


def to_millis(moment: datetime) -> int:
    """Turn an aware datetime into epoch milliseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def window_key(family: str, kind: str, group_by: str, group_value: str, start_ms: int) -> str:
    """Return the stable window id `<family>/<window>/<group_by>=<group_value>/<start ISO>`."""
    return f"{family}/{kind}/{group_by}={group_value}/{iso_millis(start_ms)}"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the nearest-rank `q` percentile (0 < q <= 100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def score_bucket(score: float) -> int:
    """Return the histogram bucket of a score: [0,.2) [.2,.4) [.4,.6) [.6,.8) [.8,1]."""
    for i, bound in enumerate(SCORE_BUCKET_BOUNDS):
        if score < bound:
            return i
    return len(SCORE_BUCKET_BOUNDS)


def _reservoir_slot(event_id: str, seen: int) -> int:
    digest = hashlib.blake2b(f"{event_id}/{seen}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % seen


class WindowStore(Protocol):
    """Keep JSON-ready window state by key; the Faust table is the real one."""

    def get(self, key: str) -> Any:
        """Return the value of `key`, or None."""

    def set(self, key: str, value: Any) -> None:
        """Store `value` under `key`."""

    def delete(self, key: str) -> None:
        """Remove `key` if present."""


class InMemoryWindowStore:
    """Keep window state in a dict, round-tripped through JSON like the changelog does."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> Any:
        """Return a fresh copy of the value of `key`, or None."""
        raw = self.data.get(key)
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        """Store `value` under `key` as JSON."""
        self.data[key] = json.dumps(value)

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        self.data.pop(key, None)


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """Hold the final figures of one closed window, shaped like MetricWindowClosed."""

    window_key: str
    family: str
    window: str
    window_start_ms: int
    window_end_ms: int
    group_by: str
    group_value: str
    count: int
    score_sum: float
    score_avg: float | None
    score_max: float | None
    score_buckets: list[int]
    latency_avg_ms: float | None
    latency_p95_ms: float | None
    tokens: int
    cost: float
    error_count: int
    alert_counts: dict[str, int] = field(default_factory=dict)
    late_count: int = 0

    def payload(self) -> dict[str, Any]:
        """Return the MetricWindowClosed payload fields."""
        return {
            "window_key": self.window_key,
            "family": self.family,
            "window": self.window,
            "window_start": to_datetime(self.window_start_ms),
            "window_end": to_datetime(self.window_end_ms),
            "group_by": self.group_by,
            "group_value": self.group_value,
            "count": self.count,
            "score_sum": self.score_sum,
            "score_avg": self.score_avg,
            "score_max": self.score_max,
            "score_buckets": list(self.score_buckets),
            "latency_avg_ms": self.latency_avg_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "tokens": self.tokens,
            "cost": self.cost,
            "error_count": self.error_count,
            "alert_counts": dict(self.alert_counts),
            "late_count": self.late_count,
        }


@dataclass(slots=True)
class StepOutcome:
    """Hold what one observation or tick did: windows closed and per-outcome counts."""

    closed: list[ClosedWindow] = field(default_factory=list)
    accepted: int = 0
    late: int = 0
    duplicates: int = 0


def _new_window(obs: Observation, kind: str, key: str, start: int, end: int) -> dict[str, Any]:
    return {
        "key": key,
        "family": obs.family,
        "kind": kind,
        "group_by": obs.group_by,
        "group_value": obs.group_value,
        "start": start,
        "end": end,
        "count": 0,
        "score_sum": 0.0,
        "score_n": 0,
        "score_max": None,
        "buckets": [0] * (len(SCORE_BUCKET_BOUNDS) + 1),
        "lat_sum": 0.0,
        "lat_n": 0,
        "samples": [],
        "tokens": 0,
        "cost": 0.0,
        "errors": 0,
        "alerts": {},
        "ids": [],
    }


class WindowAggregator:
    """Aggregate observations into minute, hour and day windows and close them by the clock.

    State lives in a `WindowStore` under three kinds of keys: `w/<window key>` (an open
    window or its closed marker), `lane/<partition>/<family>` (the lane's clock, its
    open and closed window indexes and pending late counters) and
    `seen/<group key>/<event id>` (the event counted in that group). Idle tracking is kept in
    memory: after a restart a lane counts as active until `idle_ms` of wall time pass.
    """

    def __init__(
        self,
        store: WindowStore,
        *,
        grace_ms: int,
        idle_ms: int | None = None,
        kinds: Iterable[str] = tuple(WINDOW_SIZES_MS),
        reservoir_size: int = DEFAULT_RESERVOIR_SIZE,
        dedupe_size: int = DEFAULT_DEDUPE_SIZE,
    ) -> None:
        if grace_ms < 0:
            raise ValueError("grace_ms must be >= 0")
        self.store = store
        self.grace_ms = grace_ms
        self.idle_ms = max(grace_ms, 1000) if idle_ms is None else idle_ms
        self.kinds = tuple(kinds)
        self.reservoir_size = reservoir_size
        self.dedupe_size = dedupe_size
        self._last_active: dict[tuple[int, str], int] = {}

    def observe(self, partition: int, obs: Observation, wall_ms: int) -> StepOutcome:
        """Count `obs` in its open windows (or as late), advance the clock, close what is due."""
        lane_key = f"lane/{partition}/{obs.family}"
        lane = self._lane(lane_key)
        self._last_active[(partition, obs.family)] = wall_ms
        outcome = StepOutcome()
        seen_key = f"seen/{obs.group_key}/{obs.event_id}"
        if self.store.get(seen_key) is not None or _seen(lane, obs):
            # Either an upstream duplicate (same event id, another record), or this record
            # again after its lane was written, so after all its windows were.
            self.store.set(seen_key, 1)
            outcome.duplicates += len(self.kinds)
            return outcome
        clock = lane["clock"]
        for kind in self.kinds:
            start, end = window_bounds(obs.occurred_ms, kind)
            key = window_key(obs.family, kind, obs.group_by, obs.group_value, start)
            state = self.store.get(f"w/{key}")
            shut = (state is not None and state.get("closed")) or (
                clock is not None and end + self.grace_ms <= clock
            )
            if shut:
                pending = _late_key(obs.group_by, obs.group_value, kind)
                lane["late"][pending] = lane["late"].get(pending, 0) + 1
                outcome.late += 1
                continue
            if state is None:
                state = _new_window(obs, kind, key, start, end)
                lane.setdefault("ends", {})[key] = end
            if _seen(state, obs) or (obs.position is None and obs.event_id in state["ids"]):
                outcome.duplicates += 1
                continue
            self._add(state, obs)
            self.store.set(f"w/{key}", state)
            outcome.accepted += 1
        lane["clock"] = obs.occurred_ms if clock is None else max(clock, obs.occurred_ms)
        _mark(lane, obs)
        outcome.closed = self._close_due(lane)
        self.store.set(lane_key, lane)
        self.store.set(seen_key, 1)
        return outcome

    def tick(self, partition: int, wall_ms: int) -> StepOutcome:
        """Move idle lanes of `partition` to the wall clock and close what is due."""
        outcome = StepOutcome()
        for family in FAMILIES:
            lane_key = f"lane/{partition}/{family}"
            lane = self.store.get(lane_key)
            if lane is None:
                continue
            last = self._last_active.setdefault((partition, family), wall_ms)
            if wall_ms - last < self.idle_ms:
                continue
            if lane["clock"] is not None and lane["clock"] >= wall_ms:
                continue
            lane["clock"] = wall_ms
            outcome.closed += self._close_due(lane)
            self.store.set(lane_key, lane)
        return outcome

    def _lane(self, lane_key: str) -> dict[str, Any]:
        lane = self.store.get(lane_key)
        if lane is None:
            lane = {"clock": None, "open": {}, "ends": {}, "closed": {}, "late": {}, "src": {}}
        return dict(lane)

    def _add(self, state: dict[str, Any], obs: Observation) -> None:
        state["count"] += 1
        if obs.score is not None:
            state["score_sum"] += obs.score
            state["score_n"] += 1
            best = state["score_max"]
            state["score_max"] = obs.score if best is None else max(best, obs.score)
            state["buckets"][score_bucket(obs.score)] += 1
        if obs.latency_ms is not None:
            state["lat_sum"] += obs.latency_ms
            state["lat_n"] += 1
            samples: list[float] = state["samples"]
            if len(samples) < self.reservoir_size:
                samples.append(obs.latency_ms)
            else:
                slot = _reservoir_slot(obs.event_id, state["lat_n"])
                if slot < self.reservoir_size:
                    samples[slot] = obs.latency_ms
        state["tokens"] += obs.tokens
        state["cost"] += obs.cost
        state["errors"] += int(obs.error)
        if obs.alert_level in ALERT_LEVELS:
            alerts: dict[str, int] = state["alerts"]
            alerts[obs.alert_level] = alerts.get(obs.alert_level, 0) + 1
        _mark(state, obs)
        if obs.position is not None:
            return  # the position guard and the seen marker cover it; keep the state small
        ids: list[str] = state["ids"]
        ids.append(obs.event_id)
        if len(ids) > self.dedupe_size:
            del ids[: len(ids) - self.dedupe_size]

    def _close_due(self, lane: dict[str, Any]) -> list[ClosedWindow]:
        clock = lane["clock"]
        closed: list[ClosedWindow] = []
        # "ends" holds each open window's end, so the grace in force decides (a worker
        # restarted with another grace applies it to open windows); "open" holds
        # end + grace as written by earlier versions.
        ends: dict[str, int] = lane.setdefault("ends", {})
        due = sorted(
            [(at, key) for key, at in lane["open"].items() if at <= clock]
            + [
                (end + self.grace_ms, key)
                for key, end in ends.items()
                if end + self.grace_ms <= clock
            ]
        )
        for _at, key in due:
            lane["open"].pop(key, None)
            ends.pop(key, None)
            state = self.store.get(f"w/{key}")
            if state is None or state.get("closed"):
                continue
            pending = _late_key(state["group_by"], state["group_value"], state["kind"])
            late = int(lane["late"].pop(pending, 0))
            closed.append(_final(state, late))
            expires = clock + WINDOW_SIZES_MS[state["kind"]]
            self.store.set(f"w/{key}", {"closed": True, "end": state["end"], "expires": expires})
            lane["closed"][key] = expires
        for key, expires in list(lane["closed"].items()):
            if expires <= clock:
                del lane["closed"][key]
                self.store.delete(f"w/{key}")
        return closed


def _seen(record: Mapping[str, Any], obs: Observation) -> bool:
    """Tell whether `record` has applied `obs` (or a later position of its source)."""
    if obs.source is None or obs.position is None:
        return False
    last = record.get("src", {}).get(obs.source)
    return last is not None and tuple(obs.position) <= (int(last[0]), int(last[1]))


def _mark(record: dict[str, Any], obs: Observation) -> None:
    """Record `obs`'s source position in `record` as applied."""
    if obs.source is not None and obs.position is not None:
        record.setdefault("src", {})[obs.source] = list(obs.position)


def _late_key(group_by: str, group_value: str, kind: str) -> str:
    return f"{kind}/{group_by}={group_value}"


def _final(state: Mapping[str, Any], late: int) -> ClosedWindow:
    count = int(state["count"])
    score_n = int(state["score_n"])
    lat_n = int(state["lat_n"])
    bias = state["family"] == "bias"
    return ClosedWindow(
        window_key=str(state["key"]),
        family=str(state["family"]),
        window=str(state["kind"]),
        window_start_ms=int(state["start"]),
        window_end_ms=int(state["end"]),
        group_by=str(state["group_by"]),
        group_value=str(state["group_value"]),
        count=count,
        score_sum=float(state["score_sum"]),
        score_avg=float(state["score_sum"]) / score_n if score_n else None,
        score_max=None if state["score_max"] is None else float(state["score_max"]),
        score_buckets=[int(b) for b in state["buckets"]] if bias else [],
        latency_avg_ms=float(state["lat_sum"]) / lat_n if lat_n else None,
        latency_p95_ms=percentile([float(v) for v in state["samples"]], 95.0),
        tokens=int(state["tokens"]),
        cost=float(state["cost"]),
        error_count=int(state["errors"]),
        alert_counts={str(k): int(v) for k, v in state["alerts"].items()},
        late_count=late,
    )
