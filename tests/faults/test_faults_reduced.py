"""The reduced fault run: every scenario once on a stack of its own, read models checked.

It runs `fairstream faults` as `make faults` does, with 1,200 events per pipeline and two
pipelines: the fault-free reference and one that suffers, back to back, one SIGKILL of
every processor, projection and the API (at random moments, from a thread of their own), a
broker restart and a 10 s PostgreSQL outage (the API polled meanwhile). Processors run with
an 8 s session timeout so a killed worker's successor takes over quickly. It checks the
summary: every read model equal to the reference run, every dead-letter topic holding
exactly the poison injected, once each. The 3-node cluster's broker kill runs only in
`make faults`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.slow]

FS = str(Path(sys.executable).with_name("fairstream"))
REPO_ROOT = Path(__file__).resolve().parents[2]
# Ports apart from the shared stack, tests/run.sh's stack and `make faults`, below the
# ephemeral range (see operations/faults/stack.py).
PORTS = {
    "FAIRSTREAM_STACK_KAFKA_PORT": "21092",
    "FAIRSTREAM_STACK_KAFKA_CONTROLLER_PORT": "21093",
    "FAIRSTREAM_STACK_POSTGRES_PORT": "21433",
    "FAIRSTREAM_STACK_REDIS_PORT": "21380",
    "FAIRSTREAM_STACK_FERRETDB_PORT": "21017",
    "FAIRSTREAM_API_PORT": "21080",
}


EVENTS = 1200
RATE = 60  # 20 s of traffic: every fault lands while events flow
COMBINED = "kills+broker-restart+postgres-outage"


def test_reduced_fault_run_matches_the_reference(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSTREAM_")}
    env.update(PORTS)
    results = tmp_path / "results"
    done = subprocess.run(
        [
            FS,
            "faults",
            "--events",
            str(EVENTS),
            "--rate",
            str(RATE),
            "--seed",
            "20261122",
            "--kills",
            "1",
            "--poison-per-topic",
            "4",
            "--postgres-outage",
            "10",
            "--scenarios",
            "kills,broker-restart,postgres-outage",
            "--combine",
            "--session-timeout",
            "8",
            "--settle",
            "10",
            "--stack-dir",
            str(REPO_ROOT / ".stack-faults" / "reduced"),
            "--results-dir",
            str(results),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=720,
    )
    (REPO_ROOT / "tests" / "artifacts").mkdir(parents=True, exist_ok=True)
    (REPO_ROOT / "tests" / "artifacts" / "faults-reduced.log").write_text(done.stdout + done.stderr)
    found = list(results.glob("faults-*.json"))
    assert len(found) == 1, done.stdout[-4000:] + done.stderr[-2000:]
    summary_file = found[0]
    summary = json.loads(summary_file.read_text())
    pipelines = {p["scenario"]: p for p in summary["pipelines"]}
    assert set(pipelines) == {"reference", COMBINED}
    combined = pipelines[COMBINED]
    kills = combined["kills"]
    assert len(kills) == 14 and set(kills.values()) == {1}, kills
    kinds = Counter(f["kind"] for f in combined["faults"])
    assert kinds == {"kill": 14, "broker-restart": 1, "postgres-outage": 1}, combined["faults"]
    for name, pipeline in pipelines.items():
        assert pipeline["events_published"] == EVENTS, name
        if name != "reference":
            assert pipeline["poison_injected"] == 28, name
            for letters in pipeline["dead_letters"]:
                # Each poison record dead-lettered by each of its readers, exactly once.
                assert letters["records"] == letters["distinct"] == letters["expected"], (
                    name,
                    letters,
                )
        assert not pipeline["failures"], (name, pipeline["failures"])
        assert not pipeline["unexpected_exits"], (name, pipeline["unexpected_exits"])
    outage = combined["api_statuses"]
    # api-down: no answer while the API itself was SIGKILLed and restarting.
    assert "503" in outage and set(outage) <= {"200", "503", "api-down"}, outage
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
