"""`fairstream bench --quick --only publish` writes both sides, the ratio, and the plots.

Speed is never asserted: only that the figures exist, are positive and are consistent.
The bias, e2e and projection readers are checked on hand-made script output, without
the stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from fairstream.commands.bench import (
    BY_NAME,
    e2e_figures,
    format_figure,
    plot_benchmark,
    plot_summary,
    projection_figures,
)
from fairstream.settings import Settings

pytestmark = pytest.mark.integration

FS = str(Path(sys.executable).with_name("fairstream"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_quick_publish_bench_writes_json_and_png(stack_settings: Settings, tmp_path: Path) -> None:
    done = subprocess.run(
        [FS, "bench", "--quick", "--only", "publish", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    record = json.loads((tmp_path / "publish.json").read_text())
    assert record["name"] == "publish" and record["quick"] is True
    assert [Path(argv[1]).name for argv in record["argv"]] == ["publish_throughput.py"]
    assert record["figures"], record
    for figure in record["figures"]:
        ours, ref = figure["fairstream"], figure["reference"]
        assert ours["name"] == "fairstream publisher"
        assert ref["name"] == "kafka-producer-perf-test"
        assert ours["value"] > 0 and ref["value"] > 0
        assert ours["unit"] == ref["unit"]
        assert figure["ratio"] == pytest.approx(ours["value"] / ref["value"])
    perf = record["source"]["perf_test"]
    assert perf["record_size"] == round(record["source"]["sizes"]["value_bytes_mean"])
    assert perf["producer_props"]["acks"] == "all"

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"] == {}
    assert {f["benchmark"] for f in summary["figures"]} == {"publish"}
    for png in ("publish.png", "summary.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC
    assert "ratio" in done.stdout and "kafka-producer-perf-test" in done.stdout


def test_unknown_benchmark_is_refused() -> None:
    done = subprocess.run(
        [FS, "bench", "--only", "nope"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "unknown benchmark" in done.stderr


def _bias_run(kind: str, events: int, processor: float, raw: float) -> dict[str, Any]:
    return {
        "batch": 64,
        "events": events,
        "models": {
            kind: {
                "raw_onnxruntime_per_s": raw,
                "processor": {
                    "events": events,
                    "events_per_s": processor,
                    "latency_rate_per_s": 20.0,
                    "latency_p50_ms": 12.5,
                    "latency_p99_ms": 40.0,
                },
            }
        },
    }


def test_bias_figures_cover_both_models_with_latency(tmp_path: Path) -> None:
    bias = BY_NAME["bias"]
    runs = bias.full_runs
    assert [run[run.index("--models") + 1] for run in runs] == ["fast", "quality"]
    assert [run[run.index("--models") + 1] for run in bias.quick_runs] == ["fast", "quality"]

    fast = _bias_run("fast", 1000, 500.0, 4000.0)
    fast["models"]["fast"]["passthrough_floor"] = {"events_per_s": 2000.0}
    fast["models"]["fast"]["floor_ratio"] = 0.5
    source = bias.merge([fast, _bias_run("quality", 1500, 30.0, 60.0)])
    assert source["events"] == {"fast": 1000, "quality": 1500}
    figures = bias.figures(source)
    assert [f.label.split()[0] for f in figures] == ["fast", "quality"]
    for figure in figures:
        assert figure.ratio == pytest.approx(figure.fairstream.value / figure.reference.value)
        assert figure.details["latency_p50_ms"] == 12.5
        assert figure.details["latency_p99_ms"] == 40.0
        assert "p50" in figure.note and "p99" in figure.note

    as_json = [asdict(f) for f in figures]
    record: dict[str, Any] = {
        "name": "bias",
        "title": bias.title,
        "started_at": "2026-01-01T00:00:00+00:00",
        "figures": as_json,
    }
    assert figures[0].details["floor_ratio"] == 0.5
    assert "passthrough floor 2,000 ev/s = 0.50 of raw" in figures[0].note
    assert "floor" not in figures[1].note  # a run without the floor still reads
    assert "p99 40.0 ms" in format_figure("bias", as_json[1])
    plot_benchmark(record, tmp_path / "bias.png")
    plot_summary([record], tmp_path / "summary.png")
    for png in ("bias.png", "summary.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC


def test_e2e_figures_carry_the_achieved_poll_interval() -> None:
    gaps = {"count": 10, "mean_ms": 51.0, "p50_ms": 50.0, "p99_ms": 70.0, "max_ms": 80.0}
    source = {
        "rate_per_s": 50.0,
        "poll_ms": 50.0,
        "end_to_end": {"p50_ms": 200.0, "p99_ms": 400.0},
        "transport_floor": {"p50_ms": 50.0, "p99_ms": 100.0},
        "poll_interval": {"target_ms": 50.0, "sent": gaps, "answered": gaps},
    }
    figures = e2e_figures(source)
    assert [f.ratio for f in figures] == [pytest.approx(0.25), pytest.approx(0.25)]
    for figure in figures:
        assert figure.lower_is_better
        assert figure.details["poll_gap_mean_ms"] == 51.0
        assert figure.details["poll_gap_p99_ms"] == 70.0


def test_the_document_projection_is_compared_with_the_fastest_raw_write() -> None:
    source: dict[str, Any] = {
        "projections": {
            "agent-tasks": {
                "projection": {"events_per_s": 210.0},
                "raw": {
                    "rows": 3000,
                    "concurrency": 16,
                    "bulk_write_sequential_rows_per_s": 70.0,
                    "bulk_write_concurrent_rows_per_s": 200.0,
                    "bulk_write_rows_per_s": 200.0,
                    "reference": "16 at once",
                },
            },
            "bias-results": {
                "projection": {"events_per_s": 10.0},
                "raw": {"copy_rows_per_s": 40.0},
            },
        }
    }
    document, table = projection_figures(source)
    assert document.reference.name == "motor bulk_write, 16 at once (FerretDB)"
    assert document.ratio == pytest.approx(210.0 / 200.0)
    raw = source["projections"]["agent-tasks"]["raw"]
    raw.update(
        update_one_concurrent_rows_per_s=400.0,
        bulk_write_rows_per_s=400.0,
        reference="update_one, 16 at once",
    )
    document, _ = projection_figures(source)
    assert document.reference.name == "motor update_one, 16 at once (FerretDB)"
    assert document.ratio == pytest.approx(210.0 / 400.0)
    assert table.reference.name == "asyncpg copy_records_to_table"
    assert table.ratio == pytest.approx(0.25)
