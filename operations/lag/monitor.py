"""Run the lag collection loop: sample, evaluate, remember the latest snapshot, keep history."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from operations.lag.collector import KafkaLagCollector
from operations.lag.evaluator import DEFAULT_MIN_SAMPLES, DEFAULT_WINDOW_SECONDS, LagEvaluator
from operations.lag.history import DEFAULT_RETENTION_SECONDS, PostgresLagHistory
from operations.lag.model import LagSnapshot

log = logging.getLogger(__name__)

# Replay tooling names its groups `<group>-replay-<run>`; such groups are rebuilding.
DEFAULT_REPLAY_PATTERN = r"-replay-"
PRUNE_EVERY_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class LagConfig:
    """The monitor's knobs, read from Settings when it has them (defaults otherwise)."""

    bootstrap: str
    interval_seconds: float = 10.0
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_samples: int = DEFAULT_MIN_SAMPLES
    retention_seconds: float = DEFAULT_RETENTION_SECONDS
    replay_pattern: str = DEFAULT_REPLAY_PATTERN
    enabled: bool = True

    @classmethod
    def from_settings(cls, settings: Any) -> LagConfig:
        """Read `lag_*` fields from a Settings-like object, defaulting the missing ones."""
        return cls(
            bootstrap=settings.kafka_bootstrap,
            interval_seconds=float(getattr(settings, "lag_interval_seconds", 10.0)),
            window_seconds=float(getattr(settings, "lag_window_seconds", DEFAULT_WINDOW_SECONDS)),
            min_samples=int(getattr(settings, "lag_min_samples", DEFAULT_MIN_SAMPLES)),
            retention_seconds=float(
                getattr(settings, "lag_history_retention_seconds", DEFAULT_RETENTION_SECONDS)
            ),
            replay_pattern=str(getattr(settings, "lag_replay_pattern", DEFAULT_REPLAY_PATTERN)),
            enabled=bool(getattr(settings, "lag_collector_enabled", True)),
        )


class LagMonitor:
    """Collect every `interval_seconds`; hold the latest snapshot; write history when given one."""

    def __init__(
        self,
        config: LagConfig,
        history: PostgresLagHistory | None = None,
        collector: KafkaLagCollector | None = None,
    ) -> None:
        self.config = config
        self.history = history
        self._collector = collector or KafkaLagCollector(config.bootstrap)
        self._evaluator = LagEvaluator(config.window_seconds, config.min_samples)
        self._replay = re.compile(config.replay_pattern)
        self._lock = asyncio.Lock()
        self._last_prune = 0.0
        self.latest: LagSnapshot | None = None
        self.last_error: str | None = None

    def current(self) -> LagSnapshot | None:
        """Return the latest snapshot (None before the first collection)."""
        return self.latest

    def is_replaying(self, group: str, marked: set[str]) -> bool:
        """Tell whether a group is replaying: by name convention or marked in PostgreSQL."""
        return group in marked or self._replay.search(group) is not None

    async def collect_once(self) -> LagSnapshot:
        """Sample Kafka once, evaluate, store the snapshot (and its history); return it."""
        async with self._lock:
            started = time.monotonic()
            samples = await asyncio.to_thread(self._collector.collect)
            marked = await self.history.replaying_groups() if self.history else set()
            snapshot = self._evaluator.evaluate(
                samples,
                replaying=lambda g: self.is_replaying(g, marked),
                duration_seconds=time.monotonic() - started,
            )
            self.latest = snapshot
            if self.history is not None:
                await self.history.record(snapshot)
                if time.monotonic() - self._last_prune > PRUNE_EVERY_SECONDS:
                    await self.history.prune(self.config.retention_seconds)
                    self._last_prune = time.monotonic()
            return snapshot

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Collect until `stop` is set (or the task is cancelled); errors are logged, not fatal."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.collect_once()
                self.last_error = None
            except Exception as exc:  # Kafka or PostgreSQL down: keep the last snapshot, retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("lag collection failed: %s", self.last_error)
            delay = max(self.config.interval_seconds - (time.monotonic() - started), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def close(self) -> None:
        """Close the Kafka clients (after the loop has stopped)."""
        async with self._lock:
            await asyncio.to_thread(self._collector.close)
