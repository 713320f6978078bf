"""Errors of the replay tooling."""

from __future__ import annotations


class ReplayError(Exception):
    """Refuse or abort a replay with a message for the operator."""


class PlanError(ReplayError):
    """Reject a `--from`/`--to` that cannot be turned into offset ranges."""


class RetentionError(PlanError):
    """Refuse a range whose start was already deleted by retention."""

    def __init__(self, topic: str, partition: int, earliest: int, *, requested: str) -> None:
        super().__init__(
            f"{topic}:{partition}: the start ({requested}) was deleted by retention;"
            f" the earliest available offset is {earliest}"
        )
        self.topic = topic
        self.partition = partition
        self.earliest = earliest


class ReplayBusyError(ReplayError):
    """Refuse a second replay of a projection while one runs."""
