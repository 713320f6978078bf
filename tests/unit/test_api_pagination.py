"""Unit tests of cursor encoding, cursor validation and ETag matching."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from api.caching import entity_tag, matches
from api.document_views import public_document
from api.pagination import Cursor, InvalidCursor, convert, decode_cursor, encode_cursor


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    ts = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    cursor = Cursor("scored_at", "desc", ts, ("c/1+2", "fast-1"))
    token = encode_cursor(cursor)
    assert all(ch.isalnum() or ch in "-_" for ch in token)
    back = decode_cursor(token)
    assert (back.sort, back.order, back.ids) == ("scored_at", "desc", ("c/1+2", "fast-1"))
    assert convert(back.value, "timestamptz") == ts


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (0.1 + 0.2, "float8"),
        (7, "int8"),
        ("x", "text"),
        (date(2026, 3, 1), "date"),
        (uuid.uuid4(), "uuid"),
    ],
)
def test_cursor_values_keep_their_type(value: Any, kind: Any) -> None:
    token = encode_cursor(Cursor("f", "asc", value, (value,)))
    back = decode_cursor(token)
    assert convert(back.value, kind) == value


def _raw(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "a" * 3000,
        _raw([1, 2]),
        _raw({"s": "x", "o": "up", "v": 1, "i": [1]}),
        _raw({"s": "x", "o": "asc", "v": 1, "i": []}),
        _raw({"s": "x", "o": "asc", "v": 1}),
        _raw({"s": 1, "o": "asc", "v": 1, "i": [1]}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_malformed_cursors_are_rejected(token: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(token)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("2026-03-01T00:00:00", "timestamptz"),  # naive
        ("yesterday", "timestamptz"),
        (1, "timestamptz"),
        ("1.5", "float8"),
        (True, "int8"),
        (1.5, "int8"),
        (3, "text"),
        ("not-a-uuid", "uuid"),
        ("2026-13-01", "date"),
    ],
)
def test_values_of_the_wrong_type_are_rejected(value: Any, kind: Any) -> None:
    with pytest.raises(InvalidCursor):
        convert(value, kind)


def test_etag_matching_follows_if_none_match_rules() -> None:
    tag = entity_tag(b"{}")
    assert tag.startswith('"') and tag == entity_tag(b"{}") != entity_tag(b"[]")
    assert matches(tag, tag)
    assert matches(f'"other", W/{tag}', tag)
    assert matches("*", tag)
    assert not matches(None, tag)
    assert not matches('"other"', tag)


def test_public_documents_hide_internals_and_raw_text() -> None:
    doc = {
        "_id": "c1",
        "_positions": {"t:0": 3},
        "channels": [{"channel": "blog", "items": [{"content_id": "i", "text": "raw"}]}],
        "item_scores": {"b": {"content_id": "b"}, "a": {"content_id": "a"}},
    }
    out = public_document(doc, store_raw_text=False)
    assert out["id"] == "c1" and "_positions" not in out and "_id" not in out
    assert "text" not in out["channels"][0]["items"][0]
    assert out["item_scores"] == [{"content_id": "a"}, {"content_id": "b"}]
    kept = public_document(
        {"_id": "c1", "channels": [{"channel": "x", "items": [{"text": "raw"}]}]},
        store_raw_text=True,
    )
    assert kept["channels"][0]["items"][0]["text"] == "raw"
