"""`fairstream bench --quick --only publish` writes both sides, the ratio, and the plots.

Speed is never asserted: only that the figures exist, are positive and are consistent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
