"""Unit tests for `fairstream publish`: validation first, line numbers, the nothing-sent rule."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from events.model import Event
from fairstream.cli import build_parser
from fairstream.commands import publish
from producers.publisher import (
    EventPublisher,
    InMemoryEventPublisher,
    PublishFailure,
    PublishReport,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class RefusingPublisher(InMemoryEventPublisher):
    """Accept every event but report the ones whose text says 'refuse' as undelivered."""

    def publish_all(
        self, events: Sequence[Event], *, traceparent: str | None = None
    ) -> PublishReport:
        """Deliver all but the refused events."""
        accepted = [e for e in events if "refuse" not in e.payload.get("text", "")]
        super().publish_all(accepted, traceparent=traceparent)
        failures = tuple(
            PublishFailure(i, e.type, str(e.envelope.event_id), "Broker: Not enough replicas")
            for i, e in enumerate(events)
            if "refuse" in e.payload.get("text", "")
        )
        return PublishReport(
            attempted=len(events), delivered=len(events) - len(failures), failures=failures
        )


class Run:
    """Hold one CLI run's exit code, streams and the publisher it used."""

    def __init__(
        self,
        code: int,
        out: str,
        err: str,
        publisher: InMemoryEventPublisher,
        factory_calls: list[tuple[str, str]],
    ) -> None:
        self.code = code
        self.out = out
        self.err = err
        self.publisher = publisher
        self.factory_calls = factory_calls


def _line(content_id: str, text: object = "Plan your week in ten minutes.", **extra: object) -> str:
    return json.dumps({"content_id": content_id, "text": text, **extra})


def run_publish(
    argv: Sequence[str],
    *,
    stdin: str = "",
    publisher: InMemoryEventPublisher | None = None,
) -> Run:
    """Run `fairstream publish` with an in-memory publisher and captured streams."""
    used = publisher if publisher is not None else InMemoryEventPublisher()
    factory_calls: list[tuple[str, str]] = []

    def factory(bootstrap: str, prefix: str, timeout: float) -> EventPublisher:
        factory_calls.append((bootstrap, prefix))
        return used

    args: argparse.Namespace = build_parser().parse_args(["publish", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = publish.run(args, publisher_factory=factory, stdin=io.StringIO(stdin), out=out, err=err)
    return Run(code, out.getvalue(), err.getvalue(), used, factory_calls)


@pytest.fixture
def ndjson_file(tmp_path: Path) -> Callable[[Sequence[str]], str]:
    """Write lines to a temporary NDJSON file and return its path."""

    def write(lines: Sequence[str]) -> str:
        path = tmp_path / f"{uuid.uuid4().hex}.ndjson"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(path)

    return write


def test_valid_file_is_published_with_filled_envelopes(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    path = ndjson_file([_line("c-1"), _line("c-2", content_type="ad")])
    run = run_publish(["ContentSubmitted", path, "--source", "unit-test"])
    assert run.code == 0, run.err
    assert [e.payload["content_id"] for e in run.publisher.published] == ["c-1", "c-2"]
    first = run.publisher.published[0]
    assert first.envelope.source == "unit-test"
    assert first.envelope.subject == "c-1"
    assert isinstance(first.envelope.event_id, uuid.UUID)
    assert first.envelope.occurred_at.tzinfo is not None
    assert run.publisher.published[1].payload["content_type"] == "ad"
    assert "read 2, valid 2, invalid 0, published 2, failed 0" in run.out


def test_default_source_is_the_cli(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    run = run_publish(["ContentSubmitted", ndjson_file([_line("c-1")])])
    assert run.publisher.published[0].envelope.source == "fairstream-cli"


def test_broken_json_reports_its_line_and_nothing_is_sent(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    path = ndjson_file([_line("c-1"), _line("c-2"), '{"content_id": "c-3", "text": '])
    run = run_publish(["ContentSubmitted", path])
    assert run.code == 2
    assert run.publisher.published == []
    assert run.factory_calls == []
    assert "line 3: invalid JSON" in run.err
    assert "nothing was published" in run.err
    assert "read 3, valid 2, invalid 1, published 0, failed 0" in run.out


def test_missing_field_names_the_field(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    path = ndjson_file([_line("c-1"), json.dumps({"content_id": "c-2"})])
    run = run_publish(["ContentSubmitted", path])
    assert run.code == 2
    assert "line 2: field text:" in run.err
    assert run.publisher.published == []


def test_wrong_value_names_the_field(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    path = ndjson_file([_line("c-1", content_type="podcast"), _line("c-2", text=42)])
    run = run_publish(["ContentSubmitted", path])
    assert run.code == 2
    assert "line 1: field content_type:" in run.err
    assert "line 2: field text:" in run.err


def test_nested_field_errors_carry_their_path(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    path = ndjson_file([_line("c-1", demographics={"cultural_background": "not-a-list"})])
    run = run_publish(["ContentSubmitted", path])
    assert run.code == 2
    assert "line 1: field demographics.cultural_background:" in run.err


def test_bad_envelope_field_is_reported(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    path = ndjson_file([_line("c-1", envelope={"event_id": "not-a-uuid"})])
    run = run_publish(["ContentSubmitted", path])
    assert run.code == 2
    assert "line 1: field envelope.event_id:" in run.err


def test_non_object_line_is_invalid(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    run = run_publish(["ContentSubmitted", ndjson_file(["[1, 2]"])])
    assert run.code == 2
    assert "line 1:" in run.err and "object" in run.err


def test_blank_lines_are_ignored_but_keep_numbering(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    path = ndjson_file(["", _line("c-1"), "   ", "", "{oops}"])
    run = run_publish(["ContentSubmitted", path])
    assert run.code == 2
    assert "line 5: invalid JSON" in run.err
    assert "read 2, valid 1, invalid 1" in run.out


def test_skip_invalid_sends_the_valid_lines(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    path = ndjson_file([_line("c-1"), "not json", _line("c-3"), json.dumps({"text": "x"})])
    run = run_publish(["ContentSubmitted", path, "--skip-invalid"])
    assert run.code == 0
    assert [e.payload["content_id"] for e in run.publisher.published] == ["c-1", "c-3"]
    assert "line 2: invalid JSON" in run.err
    assert "line 4: field content_id:" in run.err
    assert "read 4, valid 2, invalid 2, published 2, failed 0" in run.out


def test_envelope_given_in_the_line_is_kept(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    event_id = str(uuid.uuid4())
    envelope = {
        "event_id": event_id,
        "occurred_at": "2025-01-02T03:04:05.678Z",
        "correlation_id": "corr-own",
    }
    run = run_publish(["ContentSubmitted", ndjson_file([_line("c-1", envelope=envelope)])])
    assert run.code == 0, run.err
    published = run.publisher.published[0].envelope
    assert str(published.event_id) == event_id
    assert published.occurred_at.isoformat() == "2025-01-02T03:04:05.678000+00:00"
    assert published.correlation_id == "corr-own"


def test_correlation_id_fills_events_without_one(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    lines = [
        _line("c-1"),
        _line("c-2", envelope={"correlation_id": None}),
        _line("c-3", envelope={"correlation_id": "mine"}),
    ]
    run = run_publish(["ContentSubmitted", ndjson_file(lines), "--correlation-id", "batch-7"])
    assert [e.envelope.correlation_id for e in run.publisher.published] == [
        "batch-7",
        "batch-7",
        "mine",
    ]


def test_subject_must_match_the_catalog_field(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    run = run_publish(["ContentSubmitted", ndjson_file([_line("c-1", envelope={"subject": "x"})])])
    assert run.code == 2
    assert "line 1: field envelope.subject:" in run.err


def test_reads_standard_input() -> None:
    run = run_publish(["ContentSubmitted", "-"], stdin=_line("c-1") + "\n" + _line("c-2") + "\n")
    assert run.code == 0
    assert len(run.publisher.published) == 2


def test_delivery_failures_exit_1_and_are_reported_by_line(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    path = ndjson_file([_line("c-1"), "", _line("c-2", text="please refuse me"), _line("c-3")])
    run = run_publish(["ContentSubmitted", path], publisher=RefusingPublisher())
    assert run.code == 1
    assert "failed: line 3:" in run.err and "Not enough replicas" in run.err
    assert "read 3, valid 3, invalid 0, published 2, failed 1" in run.out


def test_unknown_event_type_is_a_usage_error(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    run = run_publish(["ContentSubmited", ndjson_file([_line("c-1")])])
    assert run.code == 2
    assert "unknown event type 'ContentSubmited'" in run.err


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    run = run_publish(["ContentSubmitted", str(tmp_path / "absent.ndjson")])
    assert run.code == 2
    assert "cannot read" in run.err


def test_dry_run_validates_only(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    run = run_publish(["ContentSubmitted", ndjson_file([_line("c-1")]), "--dry-run"])
    assert run.code == 0
    assert run.publisher.published == []
    assert "(dry run)" in run.out


def test_events_go_out_in_batches(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    path = ndjson_file([_line(f"c-{i}") for i in range(7)])
    run = run_publish(["ContentSubmitted", path, "--batch-size", "3"])
    assert run.code == 0
    assert run.publisher.batches == 3
    assert len(run.publisher.published) == 7


def test_traceparent_is_passed_and_checked(ndjson_file: Callable[[Sequence[str]], str]) -> None:
    path = ndjson_file([_line("c-1")])
    run = run_publish(["ContentSubmitted", path, "--traceparent", TRACEPARENT])
    assert run.publisher.traceparents == [TRACEPARENT]
    bad = run_publish(["ContentSubmitted", path, "--traceparent", "00-abc"])
    assert bad.code == 2 and "traceparent" in bad.err


def test_topic_prefix_and_bootstrap_reach_the_publisher(
    ndjson_file: Callable[[Sequence[str]], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ndjson_file([_line("c-1")])
    monkeypatch.setenv("FAIRSTREAM_TOPIC_PREFIX", "env-prefix.")
    monkeypatch.setenv("FAIRSTREAM_KAFKA_BOOTSTRAP", "env-host:9999")
    run = run_publish(["ContentSubmitted", path])
    assert run.factory_calls == [("env-host:9999", "env-prefix.")]
    run = run_publish(["ContentSubmitted", path, "--bootstrap", "h:1", "--topic-prefix", "t-x."])
    assert run.factory_calls == [("h:1", "t-x.")]


def test_many_errors_are_capped_in_the_report(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    run = run_publish(["ContentSubmitted", ndjson_file(["x"] * 60)])
    assert run.code == 2
    assert run.err.count("invalid: line") == publish.MAX_REPORTED
    assert "... and 10 more" in run.err


def test_progress_bar_shows_for_a_tty_or_long_input() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not publish._show_progress(10, io.StringIO(), disabled=False)
    assert publish._show_progress(10, Tty(), disabled=False)
    assert publish._show_progress(publish.LONG_INPUT, io.StringIO(), disabled=False)
    assert not publish._show_progress(publish.LONG_INPUT, Tty(), disabled=True)


def test_long_input_shows_progress_on_stderr(
    ndjson_file: Callable[[Sequence[str]], str],
) -> None:
    path = ndjson_file([_line(f"c-{i}") for i in range(publish.LONG_INPUT)])
    run = run_publish(["ContentSubmitted", path])
    assert run.code == 0
    assert "publish ContentSubmitted" in run.err and "100%" in run.err
    assert "100%" not in run.out
