"""Bad input matrix at the edges: the codec, the processors' decode step and NDJSON.

tests/unit/test_codec.py already covers each framing error once (empty value, unknown magic,
truncated headers, unknown fingerprint or schema id, a registry schema of another kind,
header mismatches, random bytes) and tests/unit/test_publish_cli.py the CLI's broken JSON,
missing fields and delivery failures. This file sweeps every prefix and every single-byte
corruption of real values, and covers what those do not: a valid record of the wrong type,
an oversize record, bytes that are not UTF-8 in NDJSON, and NUL bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import random
from pathlib import Path

import pytest

from events.catalog import CATALOG
from events.codec import SINGLE_OBJECT_HEADER_SIZE, DecodeError, EventCodec, ValidationError
from events.model import Event
from events.testing import example_event
from fairstream.cli import build_parser
from fairstream.commands import publish
from processors.deadletter import RawMessage, dead_letter
from processors.mapping import decode_expected
from producers.ndjson import iter_lines, parse_ndjson
from producers.publisher import EventPublisher, InMemoryEventPublisher

CODEC = EventCodec()


def _value(event_type: str = "RevenueProjectionRequested") -> bytes:
    return CODEC.encode(example_event(event_type)).value


def _decode_or_reason(value: bytes) -> str | None:
    """Decode; return the DecodeError's reason, or None when the bytes decode cleanly."""
    try:
        CODEC.decode(value)
    except DecodeError as exc:
        assert exc.reason, "a DecodeError must say what is wrong"
        return exc.reason
    return None


@pytest.mark.parametrize("event_type", sorted(CATALOG))
def test_every_proper_prefix_of_a_value_is_a_decode_error(event_type: str) -> None:
    value = _value(event_type)
    for end in range(len(value)):
        reason = _decode_or_reason(value[:end])
        assert reason is not None, (event_type, end)
        if end < SINGLE_OBJECT_HEADER_SIZE and end >= 2:
            assert "truncated single-object header" in reason


def test_every_single_byte_corruption_is_a_decode_error_or_a_clean_decode() -> None:
    value = _value()
    rng = random.Random(7)
    errors = 0
    for position in range(len(value)):
        corrupted = bytearray(value)
        corrupted[position] ^= rng.randrange(1, 256)
        if _decode_or_reason(bytes(corrupted)) is not None:
            errors += 1
    assert errors >= SINGLE_OBJECT_HEADER_SIZE  # at least every header byte is caught


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_after_a_known_fingerprint_never_escape_as_other_errors(seed: int) -> None:
    header = _value()[:SINGLE_OBJECT_HEADER_SIZE]
    rng = random.Random(seed)
    for _ in range(200):
        _decode_or_reason(header + rng.randbytes(rng.randrange(0, 200)))


def test_a_valid_record_of_the_wrong_type_is_named() -> None:
    message = RawMessage("revenue.projection.requested", 0, 7, b"k", _value("NicheResearched"))
    with pytest.raises(
        DecodeError, match="expected RevenueProjectionRequested, got NicheResearched"
    ):
        decode_expected(CODEC, message, "RevenueProjectionRequested")


def test_a_tombstone_is_named() -> None:
    message = RawMessage("revenue.projection.requested", 0, 7, b"k", None)
    with pytest.raises(DecodeError, match="tombstone"):
        decode_expected(CODEC, message, "RevenueProjectionRequested")


def test_the_dead_letter_record_carries_the_reason_and_the_original_bytes() -> None:
    value = b"\x00\x00\x00\x00\x07garbage"
    message = RawMessage("t-x.revenue.projection.requested", 2, 41, b"key", value, [("a", b"1")])
    reason = _decode_or_reason(value)
    assert reason is not None and "schema id 7" in reason
    out = dead_letter(message, reason=reason, error_type="DecodeError", processor="revenue")
    headers = dict(out.headers)
    assert out.topic == "t-x.revenue.projection.requested.dlq"
    assert (out.key, out.value, headers["a"]) == (b"key", value, b"1")
    assert headers["dlq_reason"] == reason.encode()
    assert headers["dlq_error_type"] == b"DecodeError"
    assert (headers["dlq_source_partition"], headers["dlq_source_offset"]) == (b"2", b"41")
    long = dead_letter(message, reason="x" * 10_000, error_type="DecodeError", processor="r")
    assert len(dict(long.headers)["dlq_reason"]) == 4096  # capped, never an oversize header


def test_an_oversize_record_round_trips_the_codec() -> None:
    """The codec has no size limit: Kafka's message.max.bytes is the limit, and the publisher
    reports an event over it by index (tests/integration/test_bad_input_paths.py)."""
    text = "word " * 500_000
    event = example_event("ContentSubmitted", content_id="huge", text=text)
    encoded = CODEC.encode(event)
    assert len(encoded.value) > 2_000_000
    assert CODEC.decode(encoded.value, encoded.headers).payload["text"] == text


def test_a_missing_required_field_is_a_validation_error_naming_it() -> None:
    event = example_event("RevenueProjectionRequested")
    payload = {k: v for k, v in event.payload.items() if k != "projection_id"}
    with pytest.raises(ValidationError) as info:
        CODEC.encode(Event(event.type, event.envelope, payload))
    assert info.value.field == "projection_id"


def test_a_nul_byte_in_a_string_round_trips_the_codec() -> None:
    """Avro strings may hold NUL; the API refuses it in parameters (PostgreSQL cannot)."""
    event = example_event("ContentSubmitted", content_id="c-nul", text="a\x00b")
    encoded = CODEC.encode(event)
    assert CODEC.decode(encoded.value).payload["text"] == "a\x00b"


# --- NDJSON ---------------------------------------------------------------------------------


def _line(content_id: str) -> bytes:
    return json.dumps({"content_id": content_id, "text": "Plan your week."}).encode()


def test_a_line_that_is_not_utf8_is_reported_by_number() -> None:
    lines = [_line("c-1"), b'{"content_id": "c-2", "text": "caf\xe9"}', b"", _line("c-4")]
    batch = parse_ndjson(lines, "ContentSubmitted", source="tests")
    assert [p.line for p in batch.events] == [1, 4]
    [error] = batch.errors
    assert error.describe() == "line 2: not UTF-8: byte 0xe9 at column 35"


def test_iter_lines_reads_a_file_as_bytes_and_strips_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "in.ndjson"
    path.write_bytes(_line("c-1") + b"\r\n\xff\xfe\n" + _line("c-3"))
    with path.open(encoding="utf-8") as handle:
        lines = list(iter_lines(handle))
    assert lines == [_line("c-1"), b"\xff\xfe", _line("c-3")]
    assert list(iter_lines(io.StringIO("a\r\nb\n"))) == ["a", "b"]


def _run_cli(path: Path) -> tuple[int, str, str, InMemoryEventPublisher]:
    used = InMemoryEventPublisher()

    def factory(bootstrap: str, prefix: str, timeout: float) -> EventPublisher:
        return used

    args: argparse.Namespace = build_parser().parse_args(["publish", "ContentSubmitted", str(path)])
    out, err = io.StringIO(), io.StringIO()
    code = publish.run(args, publisher_factory=factory, out=out, err=err)
    return code, out.getvalue(), err.getvalue(), used


@pytest.mark.parametrize(
    ("raw", "line", "problem"),
    [
        (b'{"content_id": "c-2", "text": "\xc3("}', 2, "not UTF-8"),
        (b'{"content_id": "c-2", "text": "x"', 2, "invalid JSON"),  # truncated last line
        (b'{"content_id": "c-2", "text": "a\x00b"}', 2, "invalid JSON"),  # raw NUL in a string
        (b'["c-2", "text"]', 2, "expected a JSON object"),
        (b'{"content_id": "c-2", "text": "x", "content_type": "poster"}', 2, "content_type"),
        (b'{"content_id": {"$gt": ""}, "text": "x"}', 2, "content_id"),
        (b'{"content_id": "c-2", "text": "' + b"x" * 3_000_000 + b'", "language": 5}', 2, "lang"),
    ],
)
def test_the_cli_names_the_broken_line_and_publishes_nothing(
    tmp_path: Path, raw: bytes, line: int, problem: str
) -> None:
    path = tmp_path / "in.ndjson"
    path.write_bytes(_line("c-1") + b"\n" + raw + b"\n" + _line("c-3"))  # no final newline
    code, out, err, used = _run_cli(path)
    assert code == publish.EXIT_INVALID, err
    assert f"line {line}" in err and problem in err, err
    assert "nothing was published" in err
    assert used.published == []
    assert "read 3, valid 2, invalid 1, published 0" in out
