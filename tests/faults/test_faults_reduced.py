"""The reduced fault run: every scenario once on a stack of its own, read models checked.

It runs `fairstream faults` as `make faults` does, with 5,000 events per pipeline, one
SIGKILL per service, a broker restart, a 10 s PostgreSQL outage and a broker of a 3-node
cluster killed, and checks the summary it writes: every read model equal to the reference
run, every dead-letter topic holding exactly the poison injected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.slow]

FS = str(Path(sys.executable).with_name("fairstream"))
REPO_ROOT = Path(__file__).resolve().parents[2]
# Differences that are named defects, not loss: a derived event re-emitted after a SIGKILL
# (at-least-once processors) counted again in `events_applied` or dead-lettered again, and a
# campaign item's score taken from whichever of its two BiasScored arrived last.
KNOWN_DEFECT_KINDS = {"duplicate-delivery", "order-dependent"}
# Ports apart from the shared stack, tests/run.sh's stack and `make faults`.
PORTS = {
    "FAIRSTREAM_STACK_KAFKA_PORT": "49092",
    "FAIRSTREAM_STACK_KAFKA_CONTROLLER_PORT": "49093",
    "FAIRSTREAM_STACK_POSTGRES_PORT": "45433",
    "FAIRSTREAM_STACK_REDIS_PORT": "46380",
    "FAIRSTREAM_STACK_FERRETDB_PORT": "47017",
    "FAIRSTREAM_API_PORT": "48080",
}


def test_reduced_fault_run_matches_the_reference(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSTREAM_")}
    env.update(PORTS)
    results = tmp_path / "results"
    done = subprocess.run(
        [
            FS,
            "faults",
            "--events",
            "5000",
            "--rate",
            "500",
            "--seed",
            "20261122",
            "--kills",
            "1",
            "--poison-per-topic",
            "4",
            "--postgres-outage",
            "10",
            "--stack-dir",
            str(REPO_ROOT / ".stack-faults" / "pytest"),
            "--results-dir",
            str(results),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    (REPO_ROOT / "tests" / "artifacts").mkdir(parents=True, exist_ok=True)
    (REPO_ROOT / "tests" / "artifacts" / "faults-reduced.log").write_text(done.stdout + done.stderr)
    found = list(results.glob("faults-*.json"))
    assert len(found) == 1, done.stdout[-4000:] + done.stderr[-2000:]
    summary_file = found[0]
    summary = json.loads(summary_file.read_text())
    pipelines = {p["scenario"]: p for p in summary["pipelines"]}
    assert set(pipelines) == {
        "reference",
        "kills",
        "broker-restart",
        "postgres-outage",
        "cluster-broker-kill",
    }
    kills = pipelines["kills"]["kills"]
    assert len(kills) == 14 and set(kills.values()) == {1}, kills
    known: list[str] = []
    for name, pipeline in pipelines.items():
        assert pipeline["events_published"] == 5000, name
        if name != "reference":
            assert pipeline["poison_injected"] == 28, name
            for letters in pipeline["dead_letters"]:
                assert letters["distinct"] == letters["expected"], (name, letters)
        # Loss, a wrong row, an API 500: always a failure.
        unexpected = set(pipeline["failure_kinds"]) - KNOWN_DEFECT_KINDS
        assert not unexpected, (name, pipeline["failures"])
        known += [f"{name}: {failure}" for failure in pipeline["failures"]]
    outage = pipelines["postgres-outage"]["api_statuses"]
    assert outage and "500" not in outage, outage
    if known:
        pytest.xfail("known defects (see README, Fault injection): " + " | ".join(known))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
