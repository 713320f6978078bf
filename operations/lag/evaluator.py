"""Burrow-style evaluation of consumer lag over a sliding window of observations.

The collector polls committed offsets (it does not read `__consumer_offsets`), so a window is
the samples of the last `window_seconds`, and "a commit" is a sample whose committed offset
differs from the one before. Liveness comes from the group's membership instead of repeated
commits of the same offset. Rules, in order, for a partition (the first that matches wins):

1. ERR: the committed offset is outside the log (below the log-start offset: records were
   deleted by retention before the group read them; or past the log-end offset: the topic was
   truncated or recreated).
2. OK: the offset lag is zero now.
3. REWIND: the committed offset went backwards between two samples of the window.
4. No commit moved the offset for at least `window_seconds` while lag > 0:
   STOP when no live member of the group owns the partition (the consumer is gone),
   STALL when a member owns it (the consumer is alive but not advancing).
5. WARN: the window holds at least `min_samples` samples, lag > 0 in every one, the committed
   offset advanced, and the lag never decreased from one sample to the next (the consumer
   works but does not keep up).
6. OK otherwise.

A group's evaluated status is its worst partition's (`model.SEVERITY`); a group that is
replaying is reported as REPLAYING with the evaluated status kept beside it, so a rebuild
never raises an alarm.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from operations.lag.model import (
    SEVERITY,
    GroupLag,
    GroupSample,
    LagSnapshot,
    LagStatus,
    PartitionLag,
    PartitionSample,
)

DEFAULT_WINDOW_SECONDS = 120.0
DEFAULT_MIN_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class Observation:
    """One sample of a partition in the window."""

    at: float
    committed: int
    log_end: int
    lag: int


@dataclass(slots=True)
class PartitionWindow:
    """The sliding window of one (group, topic, partition) and when its offset last moved."""

    samples: deque[Observation] = field(default_factory=deque)
    last_commit_at: float = 0.0

    def add(self, obs: Observation, window_seconds: float) -> None:
        """Append an observation and drop the ones older than the window."""
        if not self.samples or self.samples[-1].committed != obs.committed:
            self.last_commit_at = obs.at
        self.samples.append(obs)
        # Keep one sample at or before the window's start so rates span the whole window.
        while len(self.samples) > 2 and self.samples[1].at <= obs.at - window_seconds:
            self.samples.popleft()


@dataclass(frozen=True, slots=True)
class Rates:
    """Consumption and production rates over a window, and the time to catch up."""

    consume: float | None
    produce: float | None
    catch_up_seconds: float | None


def window_rates(samples: Iterable[Observation], lag: int) -> Rates:
    """Return offsets per second consumed and produced over the samples, and the catch-up ETA."""
    seq = list(samples)
    if len(seq) < 2 or seq[-1].at <= seq[0].at:
        return Rates(None, None, 0.0 if lag == 0 else None)
    span = seq[-1].at - seq[0].at
    consume = max(seq[-1].committed - seq[0].committed, 0) / span
    produce = max(seq[-1].log_end - seq[0].log_end, 0) / span
    if lag == 0:
        eta: float | None = 0.0
    elif consume > produce:
        eta = lag / (consume - produce)
    else:
        eta = None
    return Rates(consume, produce, eta)


def partition_status(
    sample: PartitionSample,
    window: PartitionWindow,
    now: float,
    window_seconds: float,
    min_samples: int,
) -> LagStatus:
    """Apply the rules (module docstring) to one partition whose window includes `sample`."""
    if sample.committed < sample.log_start or sample.committed > sample.log_end:
        return LagStatus.ERR
    if sample.lag == 0:
        return LagStatus.OK
    obs = list(window.samples)
    if any(b.committed < a.committed for a, b in itertools.pairwise(obs)):
        return LagStatus.REWIND
    if now - window.last_commit_at >= window_seconds:
        return LagStatus.STALL if sample.assigned else LagStatus.STOP
    if (
        len(obs) >= min_samples
        and all(o.lag > 0 for o in obs)
        and obs[-1].committed > obs[0].committed
        and all(b.lag >= a.lag for a, b in itertools.pairwise(obs))
    ):
        return LagStatus.WARN
    return LagStatus.OK


def worst(statuses: Iterable[LagStatus]) -> LagStatus:
    """Return the most severe status, OK for none."""
    return max(statuses, key=SEVERITY.__getitem__, default=LagStatus.OK)


class LagEvaluator:
    """Keep a window per partition across collections and evaluate every group's lag."""

    def __init__(
        self,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_seconds = window_seconds
        self.min_samples = min_samples
        self._clock = clock
        self._windows: dict[tuple[str, str, int], PartitionWindow] = {}

    def evaluate(
        self,
        groups: Iterable[GroupSample],
        replaying: Callable[[str], bool] = lambda _g: False,
        now: float | None = None,
        duration_seconds: float = 0.0,
    ) -> LagSnapshot:
        """Add one collection to the windows and return the evaluated snapshot."""
        at = self._clock() if now is None else now
        seen: set[tuple[str, str, int]] = set()
        evaluated: list[GroupLag] = []
        for group in groups:
            parts: list[PartitionLag] = []
            for sample in group.partitions:
                key = (group.group, sample.topic, sample.partition)
                seen.add(key)
                window = self._windows.setdefault(key, PartitionWindow(last_commit_at=at))
                window.add(
                    Observation(at, sample.committed, sample.log_end, sample.lag),
                    self.window_seconds,
                )
                parts.append(self._partition(sample, window, at))
            evaluated.append(self._group(group, parts, at, replaying(group.group)))
        for gone in set(self._windows) - seen:  # groups/partitions that disappeared
            del self._windows[gone]
        evaluated.sort(key=lambda g: (-g.max_lag_seconds, -g.max_lag, g.group))
        return LagSnapshot(at, duration_seconds, tuple(evaluated))

    def _partition(
        self, sample: PartitionSample, window: PartitionWindow, now: float
    ) -> PartitionLag:
        rates = window_rates(window.samples, sample.lag)
        if sample.lag == 0 or sample.oldest_unconsumed_ms is None:
            lag_seconds = 0.0 if sample.lag == 0 else _unknown_lag_seconds(window, now)
        else:
            lag_seconds = max(now - sample.oldest_unconsumed_ms / 1000.0, 0.0)
        status = partition_status(sample, window, now, self.window_seconds, self.min_samples)
        return PartitionLag(
            topic=sample.topic,
            partition=sample.partition,
            committed=sample.committed,
            log_end=sample.log_end,
            lag=sample.lag,
            lag_seconds=lag_seconds,
            consume_rate=rates.consume,
            produce_rate=rates.produce,
            catch_up_seconds=rates.catch_up_seconds,
            assigned=sample.assigned,
            status=status,
        )

    @staticmethod
    def _group(
        group: GroupSample, parts: list[PartitionLag], now: float, replaying: bool
    ) -> GroupLag:
        parts.sort(key=lambda p: (p.topic, p.partition))
        evaluated = worst(p.status for p in parts)
        rates = [p.consume_rate for p in parts if p.consume_rate is not None]
        lagging = [p for p in parts if p.lag > 0]
        etas = [p.catch_up_seconds for p in lagging]
        catch_up = (
            0.0
            if not lagging
            else (None if any(e is None for e in etas) else max(e for e in etas if e is not None))
        )
        return GroupLag(
            group=group.group,
            state=group.state,
            members=group.members,
            observed_at=now,
            status=LagStatus.REPLAYING if replaying else evaluated,
            evaluated_status=evaluated,
            replaying=replaying,
            max_lag=max((p.lag for p in parts), default=0),
            max_lag_seconds=max((p.lag_seconds for p in parts), default=0.0),
            total_lag=sum(p.lag for p in parts),
            consume_rate=sum(rates) if rates else None,
            catch_up_seconds=catch_up,
            partitions=tuple(parts),
        )


def _unknown_lag_seconds(window: PartitionWindow, now: float) -> float:
    # The oldest unconsumed record could not be read this time: fall back to the time the
    # offset has not moved, a lower bound that still grows for a stopped consumer (never 0).
    return max(now - window.last_commit_at, 0.0)
