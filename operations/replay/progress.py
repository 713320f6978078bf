"""Show replay progress in the terminal: one bar per partition with events/s and ETA."""

from __future__ import annotations

import sys
from typing import Any


class PartitionBars:
    """Show one tqdm bar per partition (events/s and ETA)."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bars: dict[tuple[str, int], Any] = {}

    def start(self, ranges: list[Any], positions: dict[tuple[str, int], int]) -> None:
        if not self._enabled:
            return
        from tqdm import tqdm

        for i, r in enumerate(ranges):
            done = min(max(0, positions.get((r.topic, r.partition), r.start) - r.start), r.events)
            self._bars[(r.topic, r.partition)] = tqdm(
                total=r.events,
                initial=done,
                desc=f"{r.topic}:{r.partition}",
                unit="ev",
                position=i,
                leave=True,
                file=sys.stderr,
            )

    def advance(self, key: tuple[str, int], count: int) -> None:
        bar = self._bars.get(key)
        if bar is not None:
            bar.update(count)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
