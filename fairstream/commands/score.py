"""`fairstream score`: score texts for bias without Kafka, one JSON object per line out.

Texts come as arguments, or as NDJSON on stdin (one object per line with a `text`
field; the other fields are passed through to the output line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from fairstream.settings import load_settings

BATCH_SIZE = 64


def register(subparsers: Any) -> None:
    """Add the `score` command."""
    parser = subparsers.add_parser(
        "score", help="score texts for bias (arguments, or NDJSON with a `text` field on stdin)"
    )
    parser.add_argument("texts", nargs="*", help="texts to score; none: read NDJSON from stdin")
    parser.add_argument(
        "--model", choices=("fast", "quality"), default=None, help="model (default: settings)"
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="model folder")
    parser.set_defaults(func=run)


def _records(args: argparse.Namespace, stdin: TextIO) -> Iterator[dict[str, Any]]:
    if args.texts:
        for text in args.texts:
            yield {"text": text}
        return
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"stdin line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise SystemExit(f"stdin line {number}: expected an object with a string `text`")
        yield record


def output_record(record: dict[str, Any], assessment: Any) -> dict[str, Any]:
    """Merge the input record with the assessment; `dimensions` maps dimension -> score."""
    fields = dataclasses.asdict(assessment)
    out = {k: v for k, v in record.items() if k != "text"}
    out.update(
        overall_score=fields["overall_score"],
        level=fields["level"],
        confidence=fields["confidence"],
        dimensions={d["dimension"]: d["score"] for d in fields["dimensions"]},
        dimension_details=fields["dimensions"],
        evidence=fields["evidence"],
        language=fields["language"],
        flags=fields["flags"],
        word_count=fields["word_count"],
        text_length=fields["text_length"],
        content_hash=fields["content_hash"],
        model_name=fields["model_name"],
        model_version=fields["model_version"],
        latency_ms=round(fields["latency_ms"], 3),
    )
    return out


def run(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Score every text and print one JSON line each."""
    from processors.bias.scoring import load_scorer, thresholds_from_settings

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    settings = load_settings()
    kind = args.model or settings.bias_model
    scorer = load_scorer(
        kind,
        args.models_dir or settings.models_dir,
        thresholds=thresholds_from_settings(settings),
        evidence_spans=settings.bias_evidence_spans,
    )
    records = _records(args, stdin)
    while batch := list(islice(records, BATCH_SIZE)):
        assessments = scorer.score_batch([r["text"] for r in batch])
        for record, assessment in zip(batch, assessments, strict=True):
            stdout.write(json.dumps(output_record(record, assessment), ensure_ascii=False) + "\n")
        stdout.flush()
    return 0
