"""`fairstream bench`: run the benchmarks in bench/ against the local stack, print, save, plot.

Every figure has two sides measured in the same run, fairstream and a reference, and their
ratio: fairstream's performance as a fraction of the reference's (rate / reference rate, or
reference latency / latency), so 1.0 means as fast as the reference and less means slower.
Each benchmark script writes its own JSON to bench/results/; this command reads it, prints
the figures, and writes `<name>.json` and `<name>.png` per benchmark plus `summary.json` and
`summary.png` to `--out`. The stack is started if it is not up, and stopped again afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fairstream.settings import REPO_ROOT, load_settings

BENCH_DIR = REPO_ROOT / "bench"
SCRIPT_RESULTS = BENCH_DIR / "results"
RATIO_DEFINITION = (
    "fairstream as a fraction of the reference: rate / reference rate, or reference latency /"
    " latency; 1.0 = as fast as the reference"
)


@dataclass(frozen=True)
class Side:
    """Hold one side of a figure: what was measured, its value and unit."""

    name: str
    value: float
    unit: str


@dataclass(frozen=True)
class Figure:
    """Hold one figure: fairstream, the reference measured in the same run, and the ratio.

    `details` holds figures of fairstream's side that have no reference (for example the
    bias processor's latency), and `note` says them in words for the output and the plots.
    """

    label: str
    fairstream: Side
    reference: Side
    ratio: float
    lower_is_better: bool = False
    details: dict[str, float] = field(default_factory=dict)
    note: str = ""


Extractor = Callable[[Mapping[str, Any]], list[Figure]]
Merger = Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]


def single(sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the JSON of a benchmark that runs its script once."""
    (source,) = sources
    return dict(source)


@dataclass(frozen=True)
class Benchmark:
    """Describe one benchmark script: its arguments and how to read its figures."""

    name: str
    title: str
    script: str
    result_file: str
    full_runs: tuple[tuple[str, ...], ...]
    quick_runs: tuple[tuple[str, ...], ...]
    figures: Extractor
    components: tuple[str, ...]
    tools: tuple[str, ...] = ()
    # How the JSON of several runs of the script (one per argument tuple) becomes one.
    merge: Merger = single


def _rate(label: str, ours: Side, ref: Side) -> Figure:
    return Figure(label, ours, ref, ours.value / ref.value)


def _latency(label: str, ours: Side, ref: Side) -> Figure:
    return Figure(label, ours, ref, ref.value / ours.value, lower_is_better=True)


def publish_figures(r: Mapping[str, Any]) -> list[Figure]:
    """Read publish_throughput.json: records/s and MB/s of the publisher and of perf-test."""
    ours, perf = r["publisher"], r["perf_test"]
    size = f"{perf['record_size']} B records"
    return [
        _rate(
            f"records/s, {size}",
            Side("fairstream publisher", ours["records_per_s"], "records/s"),
            Side("kafka-producer-perf-test", perf["records_per_s"], "records/s"),
        ),
        _rate(
            f"MB/s, {size}",
            Side("fairstream publisher", ours["mb_per_s"], "MB/s"),
            Side("kafka-producer-perf-test", perf["mb_per_s"], "MB/s"),
        ),
    ]


def merge_bias(sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Join the bias_throughput.json of one run per model: `models` of every run, sizes by model."""
    batches = {s["batch"] for s in sources}
    if len(batches) != 1:
        raise BenchFailed(f"the bias runs used different batch sizes: {sorted(batches)}")
    models: dict[str, Any] = {}
    events: dict[str, int] = {}
    for source in sources:
        for kind, figures in source["models"].items():
            models[kind] = figures
            events[kind] = source["events"]
    return {"batch": batches.pop(), "events": events, "models": models}


def bias_figures(r: Mapping[str, Any]) -> list[Figure]:
    """Read bias_throughput.json: processor events/s vs raw onnxruntime texts/s per model.

    The processor's latency (publish -> BiasScored at a fixed moderate rate) has no
    reference side; it goes into the figure's details and note.
    """
    out = []
    for kind, m in r["models"].items():
        proc = m["processor"]
        details = {
            "latency_rate_per_s": float(proc["latency_rate_per_s"]),
            "latency_p50_ms": float(proc["latency_p50_ms"]),
            "latency_p99_ms": float(proc["latency_p99_ms"]),
            "events": float(proc["events"]),
        }
        floor = ""
        if "passthrough_floor" in m:  # runs before the floor was measured lack it
            details["floor_events_per_s"] = float(m["passthrough_floor"]["events_per_s"])
            details["floor_ratio"] = float(m["floor_ratio"])
            floor = f"; Faust passthrough floor {details['floor_events_per_s']:,.0f} ev/s"
            floor += (
                f" = {details['floor_ratio']:.2f} of raw (the most the ratio can be)"
                if details["floor_ratio"] < 1
                else ", above the model: Faust is not the limit"
            )
        out.append(
            replace(
                _rate(
                    f"{kind} model, {proc['events']:,} events, batch {r['batch']}",
                    Side("Faust bias processor", proc["events_per_s"], "ev/s"),
                    Side("raw onnxruntime", m["raw_onnxruntime_per_s"], "texts/s"),
                ),
                details=details,
                note=(
                    f"latency at {details['latency_rate_per_s']:g} ev/s:"
                    f" p50 {details['latency_p50_ms']:,.1f} ms,"
                    f" p99 {details['latency_p99_ms']:,.1f} ms{floor}"
                ),
            )
        )
    return out


def projection_figures(r: Mapping[str, Any]) -> list[Figure]:
    """Read projection_throughput.json: apply rate vs the fastest raw write of the same rows."""
    out = []
    for name, p in r["projections"].items():
        raw = p["raw"]
        if "copy_rows_per_s" in raw:
            ref = Side("asyncpg copy_records_to_table", raw["copy_rows_per_s"], "rows/s")
        else:
            # The reference names its driver call since the update_one way was added.
            how = raw.get("reference", "")
            if not how.startswith(("bulk_write", "update_one")):
                how = f"bulk_write, {how}" if how else "bulk_write"
            ref = Side(f"motor {how} (FerretDB)", raw["bulk_write_rows_per_s"], "docs/s")
        out.append(
            _rate(name, Side(f"projection {name}", p["projection"]["events_per_s"], "ev/s"), ref)
        )
    return out


def api_figures(r: Mapping[str, Any]) -> list[Figure]:
    """Read api_throughput.json: requests/s and p99 of the API vs a minimal FastAPI endpoint."""
    out = []
    for endpoint, sides in r["endpoints"].items():
        minimal = sides["minimal"]
        for side, mode in (("api_cache_off", "cache off"), ("api_cache_on", "cache on")):
            real = sides[side]
            out.append(
                _rate(
                    f"{endpoint} req/s, {mode}",
                    Side(f"fairstream api, {mode}", real["requests_per_s"], "req/s"),
                    Side("minimal FastAPI endpoint", minimal["requests_per_s"], "req/s"),
                )
            )
            out.append(
                _latency(
                    f"{endpoint} p99, {mode}",
                    Side(f"fairstream api, {mode}", real["p99_ms"], "ms"),
                    Side("minimal FastAPI endpoint", minimal["p99_ms"], "ms"),
                )
            )
    return out


def e2e_figures(r: Mapping[str, Any]) -> list[Figure]:
    """Read e2e_latency.json: publish -> visible via the API vs publish -> plain consumer.

    The achieved interval between the API polls (the figure's resolution) goes into each
    figure's details and note.
    """
    e2e, floor = r["end_to_end"], r["transport_floor"]
    at = f"at {r['rate_per_s']:g} ev/s"
    gaps = r["poll_interval"]["answered"]
    details = {
        "poll_target_ms": float(r["poll_ms"]),
        "poll_gap_mean_ms": float(gaps["mean_ms"]),
        "poll_gap_p99_ms": float(gaps["p99_ms"]),
    }
    note = (
        f"API answers every {details['poll_gap_mean_ms']:,.1f} ms on average,"
        f" p99 gap {details['poll_gap_p99_ms']:,.1f} ms (target {details['poll_target_ms']:g})"
    )
    return [
        replace(
            _latency(
                f"{q} {at}",
                Side("publish -> visible via API", e2e[f"{q}_ms"], "ms"),
                Side("publish -> plain consumer", floor[f"{q}_ms"], "ms"),
            ),
            details=details,
            note=note,
        )
        for q in ("p50", "p99")
    ]


def replay_figures(r: Mapping[str, Any]) -> list[Figure]:
    """Read replay_throughput.json: rebuild rate vs consume-only and consume + decode."""
    rebuild = Side("rebuild bias-results", r["rebuild"]["events_per_s"], "ev/s")
    read_only = max(float(v["events_per_s"]) for v in r["consume_only"].values())
    return [
        _rate(f"{r['history_events']} events", rebuild, Side("consume only", read_only, "ev/s")),
        _rate(
            f"{r['history_events']} events, decoded",
            rebuild,
            Side("consume + decode", r["consume_decode"]["events_per_s"], "ev/s"),
        ),
    ]


# Full sizes keep a whole run under about 15 minutes on two shared cores.
BENCHMARKS = (
    Benchmark(
        "publish",
        "Publish throughput: fairstream publisher vs kafka-producer-perf-test",
        "publish_throughput.py",
        "publish_throughput.json",
        (("--events", "50000"),),
        (("--events", "2000", "--chunk", "500"),),
        publish_figures,
        ("kafka",),
    ),
    Benchmark(
        "bias",
        "Bias scoring: Faust processor vs raw onnxruntime",
        "bias_throughput.py",
        "bias_throughput.json",
        # One run per model, so that each is sized to its speed: the quality model
        # scores about 50 ev/s here, the fast one over a thousand. The rate is taken from
        # first to last output, so a backlog of few batches (256 events each) reads high.
        (("--models", "fast", "--events", "6000"), ("--models", "quality", "--events", "1500")),
        (("--models", "fast", "--events", "200"), ("--models", "quality", "--events", "200")),
        bias_figures,
        ("kafka",),
        merge=merge_bias,
    ),
    Benchmark(
        "projection",
        "Projection apply rate vs raw bulk write",
        "projection_throughput.py",
        "projection_throughput.json",
        (("--pg-events", "20000", "--mongo-events", "5000"),),
        (("--pg-events", "500", "--mongo-events", "100"),),
        projection_figures,
        ("kafka", "postgres", "ferretdb"),
    ),
    Benchmark(
        "api",
        "Query API vs a minimal FastAPI endpoint (wrk, 32 connections)",
        "api_throughput.py",
        "api_throughput.json",
        (("--rows", "10000", "--seconds", "10"),),
        (("--rows", "200", "--seconds", "2", "--warmup", "1"),),
        api_figures,
        ("postgres", "redis"),
        tools=("wrk",),
    ),
    Benchmark(
        "e2e",
        "End-to-end latency: publish -> visible via API vs the transport floor",
        "e2e_latency.py",
        "e2e_latency.json",
        (("--rate", "50", "--seconds", "60"),),
        (("--rate", "20", "--seconds", "5"),),
        e2e_figures,
        ("kafka", "postgres", "redis"),
    ),
    Benchmark(
        "replay",
        "Replay: blue/green rebuild vs consume-only",
        "replay_throughput.py",
        "replay_throughput.json",
        (("--events", "20000"),),
        (("--events", "500"),),
        replay_figures,
        ("kafka", "postgres"),
    ),
)
BY_NAME = {b.name: b for b in BENCHMARKS}


# -- running ----------------------------------------------------------------------------------


class BenchFailed(RuntimeError):
    """Signal that a benchmark did not produce its figures."""


def run_benchmark(
    bench: Benchmark, quick: bool, env: Mapping[str, str], hung: Set[str]
) -> dict[str, Any]:
    """Run one script, read the JSON it wrote, and return the record of its figures."""
    unavailable = [name for name in bench.components if name in hung]
    if unavailable:
        raise BenchFailed(f"needs {', '.join(unavailable)}, which did not answer")
    missing = [tool for tool in bench.tools if shutil.which(tool) is None]
    if missing:
        raise BenchFailed(f"{', '.join(missing)} missing (deploy/native/install-system-deps.sh)")
    result = SCRIPT_RESULTS / bench.result_file
    started_at = datetime.now(UTC)
    started = time.time()
    argvs, sources = [], []
    for args in bench.quick_runs if quick else bench.full_runs:
        argv = [sys.executable, str(BENCH_DIR / bench.script), *args]
        argvs.append([Path(argv[0]).name, *argv[1:]])
        run_started = time.time()
        code = subprocess.run(argv, env=dict(env), cwd=REPO_ROOT, check=False).returncode
        if code != 0:
            raise BenchFailed(f"{bench.script} {' '.join(args)} exited with {code}")
        if not result.exists() or result.stat().st_mtime < run_started:
            raise BenchFailed(f"{bench.script} {' '.join(args)} did not write {result}")
        sources.append(json.loads(result.read_text()))
    seconds = time.time() - started
    try:
        source = bench.merge(sources)
        figures = bench.figures(source)
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        raise BenchFailed(f"unexpected shape of {result}: {exc!r}") from exc
    if not figures:
        raise BenchFailed(f"{result} holds no figure")
    return {
        "name": bench.name,
        "title": bench.title,
        "argv": argvs,
        "quick": quick,
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "ratio_definition": RATIO_DEFINITION,
        "figures": [asdict(f) for f in figures],
        "source": source,
    }


def format_figure(name: str, f: Mapping[str, Any]) -> str:
    """Return one printed line: both sides with units, and the ratio."""
    ours, ref = f["fairstream"], f["reference"]
    note = f" | {f['note']}" if f.get("note") else ""
    return (
        f"{name:<10} {f['label']:<36} {ours['name']} {ours['value']:,.1f} {ours['unit']}"
        f" | {ref['name']} {ref['value']:,.1f} {ref['unit']} | ratio {f['ratio']:.3f}{note}"
    )


# -- plotting ---------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_benchmark(record: Mapping[str, Any], path: Path) -> None:
    """Draw one panel per figure: fairstream and reference bars, the ratio in the title."""
    plt = _pyplot()
    figures = record["figures"]
    cols = min(4, len(figures))
    rows = -(-len(figures) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, f in zip(axes.flat, figures, strict=False):
        ours, ref = f["fairstream"], f["reference"]
        bars = ax.bar(
            ["fairstream", "reference"], [ours["value"], ref["value"]], color=["#1f77b4", "#999999"]
        )
        ax.bar_label(bars, labels=[f"{ours['value']:,.1f}", f"{ref['value']:,.1f}"], fontsize=8)
        ax.set_xticks(
            [0, 1], [textwrap.fill(ours["name"], 22), textwrap.fill(ref["name"], 22)], fontsize=7
        )
        ax.set_ylabel(
            ours["unit"] if ours["unit"] == ref["unit"] else f"{ours['unit']} / {ref['unit']}"
        )
        better = "bars: lower is better" if f["lower_is_better"] else "bars: higher is better"
        ax.set_title(f"{f['label']}\nratio {f['ratio']:.3f} ({better})", fontsize=9)
        if f.get("note"):
            ax.set_xlabel(textwrap.fill(f["note"], 48), fontsize=7)
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(figures) :]:
        ax.axis("off")
    fig.suptitle(f"{record['title']}\n{record['started_at']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# Notes wrap at this many characters on the summary chart, so the bars keep their width.
NOTE_WIDTH = 60


def plot_summary(records: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Draw every figure's ratio on one log-scale bar chart, 1.0 = the reference."""
    plt = _pyplot()
    labels = [
        f"{r['name']}: {f['label']}"
        + ("\n" + "\n".join(textwrap.wrap(f["note"], NOTE_WIDTH)) if f.get("note") else "")
        for r in records
        for f in r["figures"]
    ]
    ratios = [f["ratio"] for r in records for f in r["figures"]]
    lines = sum(label.count("\n") + 1 for label in labels)
    fig, ax = plt.subplots(figsize=(9, 0.3 * lines + 0.1 * len(labels) + 1.6))
    y = list(range(len(labels)))[::-1]
    bars = ax.barh(y, ratios, color=["#1f77b4" if v < 1 else "#2ca02c" for v in ratios])
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in ratios], fontsize=7, padding=2)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(min([*ratios, 1.0]) / 2, max([*ratios, 1.0]) * 2)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("ratio: fairstream / reference (1.0 = as fast as the reference; log scale)")
    stamp = min((r["started_at"] for r in records), default="")
    ax.set_title(f"fairstream benchmarks, same-run ratios ({stamp})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the local stack --------------------------------------------------------------------------


class StackSession:
    """Use the local stack if it is up; otherwise start it, and stop it again on exit.

    A component whose health check does not answer within `STATUS_TIMEOUT` seconds is hung,
    not down: starting the stack would not help, so it is reported in `hung` and the
    benchmarks that need it are skipped instead of waiting forever.
    """

    STATUS_TIMEOUT = 60.0

    def __init__(self) -> None:
        from fairstream.stack.config import StackConfig
        from fairstream.stack.local_stack import LocalStack

        settings = load_settings()
        self._stack = LocalStack(StackConfig(stack_dir=settings.stack_dir), settings)
        self.started = False
        self.hung: set[str] = set()

    def _health(self) -> dict[str, bool | None]:
        """Return component -> up, or None when its check did not answer in time."""
        from fairstream.stack.config import COMPONENTS

        answers: dict[str, bool] = {}

        def check(name: str) -> None:
            try:
                answers[name] = bool(self._stack.component(name, running=True).status().up)
            except Exception:  # a component that cannot even describe itself is down
                answers[name] = False

        threads = {n: threading.Thread(target=check, args=(n,), daemon=True) for n in COMPONENTS}
        for thread in threads.values():
            thread.start()
        deadline = time.monotonic() + self.STATUS_TIMEOUT
        for thread in threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        return {name: answers.get(name) for name in COMPONENTS}

    def __enter__(self) -> dict[str, str]:
        health = self._health()
        self.hung = {name for name, up in health.items() if up is None}
        for name in sorted(self.hung):
            print(
                f"bench: {name} did not answer its health check within"
                f" {self.STATUS_TIMEOUT:.0f} s (hung?); benchmarks that need it are skipped",
                flush=True,
            )
        if not self.hung and not all(health.values()):
            print("bench: the local stack is not up; starting it", flush=True)
            self.started = True
            self._stack.up()
        # Point every benchmark and the servers it starts at the stack that is up.
        return {**os.environ, **self._stack.env_vars()}

    def __exit__(self, *exc: object) -> None:
        if self.started:
            print("bench: stopping the stack this run started", flush=True)
            self._stack.down()


# -- the command ------------------------------------------------------------------------------


def selected(only: str | None) -> list[Benchmark]:
    """Return the benchmarks named in `--only` (all when empty), in suite order."""
    if not only:
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        raise SystemExit(
            f"bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}"
        )
    return [b for b in BENCHMARKS if b.name in names]


def run_suite(
    benchmarks: list[Benchmark],
    quick: bool,
    out: Path,
    env: Mapping[str, str],
    hung: Set[str] = frozenset(),
) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """Run each benchmark; write its JSON and PNG; yield (name, record or failure message)."""
    for bench in benchmarks:
        print(f"== {bench.name}: {bench.title}", flush=True)
        try:
            record = run_benchmark(bench, quick, env, hung)
        except BenchFailed as exc:
            print(f"FAILED {bench.name}: {exc}", flush=True)
            yield bench.name, str(exc)
            continue
        (out / f"{bench.name}.json").write_text(json.dumps(record, indent=2))
        plot_benchmark(record, out / f"{bench.name}.png")
        for f in record["figures"]:
            print(format_figure(bench.name, f), flush=True)
        yield bench.name, record


def run_bench(args: argparse.Namespace) -> int:
    """Run the chosen benchmarks against the local stack; print, save and plot the figures."""
    benchmarks = selected(args.only)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    session = StackSession()
    with session as env:
        outcomes = list(run_suite(benchmarks, args.quick, out, env, session.hung))
    records = [r for _, r in outcomes if isinstance(r, dict)]
    failures = {name: r for name, r in outcomes if isinstance(r, str)}
    summary = {
        "quick": args.quick,
        "seconds": round(time.time() - started, 1),
        "ratio_definition": RATIO_DEFINITION,
        "figures": [{"benchmark": r["name"], **f} for r in records for f in r["figures"]],
        "failed": failures,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if records:
        plot_summary(records, out / "summary.png")
    print(f"== summary ({summary['seconds']:.0f} s; ratio = {RATIO_DEFINITION})")
    for r in records:
        for f in r["figures"]:
            print(format_figure(r["name"], f))
    for name, reason in failures.items():
        print(f"{name:<10} FAILED: {reason}")
    print(
        f"written {out}/<name>.json, <name>.png, summary.json"
        + (", summary.png" if records else "")
    )
    return 1 if failures else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench`."""
    parser = subparsers.add_parser(
        "bench",
        help="run the benchmarks against the local stack; print, save and plot the figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", help=f"comma-separated subset of {','.join(BY_NAME)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, not minutes)")
    parser.add_argument(
        "--out", type=Path, default=SCRIPT_RESULTS, help="where the JSON and PNG files go"
    )
    parser.set_defaults(func=run_bench)
