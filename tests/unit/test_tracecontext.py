"""Unit tests for W3C Trace Context parsing, formatting and propagation through the codec."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import pytest

from events.codec import EventCodec
from events.model import Envelope, Event
from events.tracecontext import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    TraceContext,
    from_headers,
    parse_traceparent,
    parse_tracestate,
)
from processors.bias.scoring import BiasAssessment, DimensionScore, EvidenceSpan, level_for
from processors.bias.service import BiasScoringService
from processors.deadletter import RawMessage, dead_letter
from processors.mapping import derived_envelope
from producers.publisher import InMemoryEventPublisher, _header_list, _record_traceparent

# The examples of the W3C Trace Context recommendation.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_valid_traceparent_is_parsed() -> None:
    ctx = parse_traceparent(TRACEPARENT, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    assert (ctx.trace_id, ctx.span_id, ctx.flags, ctx.sampled) == (TRACE_ID, SPAN_ID, 1, True)
    assert ctx.tracestate == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert ctx.traceparent == TRACEPARENT
    unsampled = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-00".encode())
    assert not unsampled.sampled and unsampled.tracestate is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00",
        f"00-{TRACE_ID}",
        f"00-{TRACE_ID}-{SPAN_ID}",
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is invalid
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",  # uppercase hex
        f"00-{TRACE_ID[:-1]}g-{SPAN_ID}-01",  # not hex
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE_ID}-{SPAN_ID}-1",
        f"0-{TRACE_ID}-{SPAN_ID}-01",
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        f"cc-{TRACE_ID}-{SPAN_ID}-01x",  # a future version still needs `-` after flags
    ],
)
def test_invalid_traceparent_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_traceparent(value)


def test_future_version_is_read_as_version_00_and_written_as_00() -> None:
    ctx = parse_traceparent(f"cc-{TRACE_ID}-{SPAN_ID}-01-what-the-future-holds")
    assert ctx.trace_id == TRACE_ID
    assert ctx.traceparent == TRACEPARENT
    assert parse_traceparent(f"cc-{TRACE_ID}-{SPAN_ID}-01").traceparent == TRACEPARENT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("rojo=00f067aa0ba902b7", "rojo=00f067aa0ba902b7"),
        (b"a=1,b=2", "a=1,b=2"),
        ("no-equals-sign", None),
        ("a=" + "x" * 600, None),
        (",".join(f"k{i}=v" for i in range(33)), None),
        ("a=1\n", "a=1"),
        ("a=\x01", None),
    ],
)
def test_tracestate_is_passed_through_only_when_usable(
    value: str | bytes | None, expected: str | None
) -> None:
    assert parse_tracestate(value) == expected


def test_new_trace_and_child_span() -> None:
    root = TraceContext.new()
    assert len(root.trace_id) == 32 and len(root.span_id) == 16
    assert parse_traceparent(root.traceparent) == root
    child = parse_traceparent(TRACEPARENT, "a=1").child()
    assert child.trace_id == TRACE_ID
    assert child.span_id != SPAN_ID and len(child.span_id) == 16
    assert child.parent_id == SPAN_ID
    assert (child.flags, child.tracestate) == (1, "a=1")
    assert TraceContext.new().trace_id != root.trace_id


def test_headers_round_trip_and_bad_header_reads_as_absent() -> None:
    ctx = parse_traceparent(TRACEPARENT, "a=1")
    assert ctx.headers() == [
        (TRACEPARENT_HEADER, TRACEPARENT.encode()),
        (TRACESTATE_HEADER, b"a=1"),
    ]
    assert from_headers(ctx.headers()) == ctx
    assert from_headers({"traceparent": TRACEPARENT}) == parse_traceparent(TRACEPARENT)
    assert from_headers([("traceparent", b"00-bad"), ("tracestate", b"a=1")]) is None
    assert from_headers([("traceparent", b"\xff\xfe")]) is None
    assert from_headers([("ce_id", b"x")]) is None
    assert from_headers(None) is None


def _event(trace: TraceContext | None) -> Event:
    envelope = Envelope.new(source="test", subject="c-1", trace=trace)
    return Event(
        type="ContentSubmitted",
        envelope=envelope,
        payload={
            "content_id": "c-1",
            "text": "hello",
            "content_type": "other",
            "language": None,
            "speaker": None,
            "scenario_type": None,
            "session_id": None,
            "campaign_id": None,
            "demographics": None,
            "metadata": {},
        },
    )


def test_codec_writes_and_reads_the_trace_headers_outside_avro() -> None:
    codec = EventCodec()
    ctx = parse_traceparent(TRACEPARENT, "a=1")
    with_trace = _event(ctx)
    encoded = codec.encode(with_trace)
    assert encoded.header("traceparent") == TRACEPARENT
    assert encoded.header("tracestate") == "a=1"
    decoded = codec.decode(encoded.value, encoded.headers)
    assert decoded.envelope.trace == ctx
    assert decoded == with_trace
    # Same Avro bytes with or without a trace: it lives in the headers only.
    plain = Event(
        type=with_trace.type,
        envelope=Envelope(
            event_id=with_trace.envelope.event_id,
            occurred_at=with_trace.envelope.occurred_at,
            source="test",
            subject="c-1",
        ),
        payload=with_trace.payload,
    )
    assert codec.encode(plain).value == encoded.value
    assert codec.encode(plain).header("traceparent") is None
    assert codec.decode(encoded.value).envelope.trace is None


def test_derived_envelope_continues_the_trace_or_starts_one() -> None:
    cause = Envelope.new(source="s", subject="c-1", trace=parse_traceparent(TRACEPARENT))
    derived = derived_envelope(cause, event_id=uuid.uuid4(), source="p", subject="c-1")
    assert derived.trace is not None
    assert derived.trace.trace_id == TRACE_ID
    assert derived.trace.parent_id == SPAN_ID and derived.trace.span_id != SPAN_ID
    untraced = Envelope(
        event_id=uuid.uuid4(), occurred_at=dt.datetime.now(dt.UTC), source="x", subject="c-1"
    )
    started = derived_envelope(untraced, event_id=uuid.uuid4(), source="p", subject="c-1")
    assert started.trace is not None and started.trace.parent_id is None


def test_dead_letter_record_carries_a_child_span() -> None:
    message = RawMessage(
        "content.submitted",
        0,
        7,
        b"k",
        b"junk",
        [("traceparent", TRACEPARENT.encode()), ("tracestate", b"a=1"), ("ce_id", b"x")],
    )
    out = dead_letter(message, reason="bad", error_type="DecodeError", processor="p")
    received = from_headers(out.headers)
    assert received is not None
    assert received.trace_id == TRACE_ID and received.span_id != SPAN_ID
    assert received.tracestate == "a=1"
    assert [k for k, _ in out.headers].count("traceparent") == 1
    assert ("ce_id", b"x") in out.headers
    untraced = RawMessage("content.submitted", 0, 8, b"k", b"junk", [("traceparent", b"bad")])
    fresh = from_headers(dead_letter(untraced, reason="r", error_type="E", processor="p").headers)
    assert fresh is not None and fresh.trace_id != TRACE_ID


class _HighScorer:
    """Score every text 0.9 (critical), so the bias service raises an alert too."""

    name = "high"
    version = "high-1"
    max_tokens = 128

    def score_batch(self, texts: Sequence[str]) -> list[BiasAssessment]:
        return [
            BiasAssessment(
                model_name=self.name,
                model_version=self.version,
                overall_score=0.9,
                confidence=0.9,
                level=level_for(0.9),
                dimensions=[DimensionScore("gender", 0.9, 0.9, ["x"])],
                evidence=[EvidenceSpan("x", 0, 1, 0.5, "gender")],
                content_hash="0" * 64,
                text_length=len(text),
                word_count=len(text.split()),
                language="en",
                flags=[],
                latency_ms=0.1,
            )
            for text in texts
        ]


def test_bias_outputs_and_alert_continue_the_input_trace() -> None:
    codec = EventCodec()
    encoded = codec.encode(_event(parse_traceparent(TRACEPARENT)))
    message = RawMessage("content.submitted", 0, 0, encoded.key, encoded.value, encoded.headers)
    outcome = BiasScoringService(_HighScorer(), codec).handle_batch([message])
    assert (outcome.scored, outcome.alerts) == (1, 1)
    spans = set()
    for out in outcome.messages:
        trace = codec.decode(out.value, out.headers).envelope.trace
        assert trace is not None and trace.trace_id == TRACE_ID
        spans.add(trace.span_id)
    # One processing span (child of the input's) for everything derived from the input.
    assert len(spans) == 1 and SPAN_ID not in spans


def test_publisher_continues_the_callers_trace_or_starts_one_per_event() -> None:
    codec = EventCodec()
    plain, own = _event(None), _event(parse_traceparent(TRACEPARENT, "a=1"))
    # A caller's traceparent (and tracestate) replaces whatever the encoding carried.
    caller = "00-11111111111111111111111111111111-2222222222222222-01"
    headers = dict(_header_list(codec.encode(own), caller, "b=2"))
    assert headers["traceparent"] == caller.encode() and headers["tracestate"] == b"b=2"
    # Without one, an event keeps its own trace, or gets a new trace of its own.
    assert _record_traceparent(own, None) is None
    assert dict(_header_list(codec.encode(own), None))["traceparent"] == TRACEPARENT.encode()
    first, second = (_record_traceparent(plain, None) for _ in range(2))
    assert first and second
    assert parse_traceparent(first).trace_id != parse_traceparent(second).trace_id
    publisher = InMemoryEventPublisher()
    publisher.publish_all([plain, own])
    assert publisher.traceparents[1] == TRACEPARENT
    assert publisher.traceparents[0] is not None
    assert parse_traceparent(publisher.traceparents[0]).trace_id != TRACE_ID
    with pytest.raises(ValueError):
        publisher.publish_all([plain], traceparent=f"ff-{TRACE_ID}-{SPAN_ID}-01")
