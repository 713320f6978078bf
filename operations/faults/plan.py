"""What a fault run does: its size, its scenarios and the seeded schedule of each scenario."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

SCENARIOS: tuple[str, ...] = ("kills", "broker-restart", "postgres-outage", "cluster-broker-kill")
# Scenarios that can share a pipeline (the cluster one needs the stack switched to 3 nodes).
COMBINABLE = frozenset({"kills", "broker-restart", "postgres-outage"})


@dataclass(frozen=True)
class FaultAction:
    """One fault at `at` seconds after the scenario's traffic starts."""

    at: float
    kind: str  # kill | broker-restart | postgres-outage | broker-kill
    target: str = ""


@dataclass(frozen=True)
class FaultPlan:
    """Size and knobs of a fault run."""

    events: int = 100_000
    seed: int = 7
    rate: float = 400.0  # events per second published
    poison_per_topic: int = 3
    kills_per_component: int = 3
    postgres_outage_seconds: float = 30.0
    broker_down_seconds: float = 5.0
    scenarios: tuple[str, ...] = SCENARIOS
    # Run kills, broker-restart and postgres-outage back to back in one pipeline (one
    # comparison with the reference) instead of one pipeline each.
    combine: bool = False
    # Faust session timeout of the pipelines' processors: a SIGKILLed worker's successor
    # gets its partitions once the dead member's session expired.
    session_timeout_seconds: float = 10.0
    settle_seconds: float = 15.0
    # How long a pipeline may take to settle; None: 30 min plus 20 ms an event (a 100,000-event
    # 3-node cluster pipeline took 33 min on 2 cores before its lag reached 0).
    settle_timeout_seconds: float | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def pipelines(self) -> list[str]:
        """Return each pipeline's scenarios, `+`-joined when several share one pipeline."""
        if not self.combine:
            return list(self.scenarios)
        shared = [s for s in self.scenarios if s in COMBINABLE]
        alone = [s for s in self.scenarios if s not in COMBINABLE]
        return (["+".join(shared)] if shared else []) + alone

    @property
    def timeout_seconds(self) -> float:
        """Return how long a pipeline may take to settle."""
        if self.settle_timeout_seconds is not None:
            return self.settle_timeout_seconds
        return 1800.0 + 0.02 * self.events

    @property
    def traffic_seconds(self) -> float:
        """Return how long publishing the events takes at `rate`."""
        return self.events / self.rate


def schedule(
    plan: FaultPlan, scenario: str, components: list[str], rng: random.Random
) -> list[FaultAction]:
    """Return the faults of `scenario` (or of each of `a+b+...`) in time order, drawn from
    `rng` within the traffic period."""
    span = max(plan.traffic_seconds, 20.0)
    actions: list[FaultAction] = []
    for part in scenario.split("+"):
        if part == "kills":
            for name in components:
                for _ in range(plan.kills_per_component):
                    actions.append(FaultAction(rng.uniform(2.0, span), "kill", name))
        elif part == "broker-restart":
            actions.append(FaultAction(rng.uniform(span * 0.3, span * 0.6), "broker-restart"))
        elif part == "postgres-outage":
            actions.append(FaultAction(rng.uniform(span * 0.2, span * 0.5), "postgres-outage"))
        elif part == "cluster-broker-kill":
            broker = f"kafka-{rng.randint(1, 3)}"
            actions.append(FaultAction(rng.uniform(span * 0.3, span * 0.6), "broker-kill", broker))
        else:
            raise ValueError(f"unknown scenario {part!r}; choose from {', '.join(SCENARIOS)}")
    return sorted(actions, key=lambda a: a.at)
