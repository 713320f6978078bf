"""The commit rule of `processors.commits`: contiguous from the committed offset, no gaps."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from fairstream.settings import Settings
from processors.commits import StrictCommitApp, StrictCommitConsumer, next_commit
from processors.deadletter import watermark_offsets
from processors.faust_app import new_app


def _commit(acked: list[int], start: int | None) -> tuple[int | None, int | None, list[int]]:
    index = set(acked)
    offset, missing = next_commit(acked, index, start)
    assert index == set(acked)
    return offset, missing, acked


def test_commits_the_run_that_starts_at_the_committed_offset() -> None:
    assert _commit([12, 10, 11], 10) == (13, None, [])


def test_stops_at_the_first_unacked_record() -> None:
    assert _commit([10, 11, 13, 14], 10) == (12, None, [13, 14])


def test_commits_nothing_while_the_head_record_is_missing() -> None:
    # Faust 0.15.3 commits 13 here: it accepts a head one past the committed offset.
    assert _commit([11, 12], 10) == (None, 10, [11, 12])


def test_a_missing_record_far_below_is_reported_not_skipped() -> None:
    assert _commit([50, 51, 52], 10) == (None, 10, [50, 51, 52])


def test_drops_offsets_below_the_committed_one() -> None:
    assert _commit([7, 8, 10, 11], 10) == (12, None, [])


def test_without_a_known_start_commits_the_first_run() -> None:
    assert _commit([3, 4, 6], None) == (5, None, [6])


def test_nothing_acked_commits_nothing() -> None:
    assert _commit([], 10) == (None, None, [])
    assert _commit([4, 5], 10) == (None, None, [])


def test_new_app_uses_the_strict_consumer(tmp_path: Path) -> None:
    app = new_app(Settings(stack_dir=tmp_path), "strict-commit-test")
    assert isinstance(app, StrictCommitApp)
    assert isinstance(app.consumer, StrictCommitConsumer)


class _RestartingBroker:
    """Answer watermark requests like a client whose broker restarts: errors, then offsets."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = errors
        self.calls = 0

    def get_watermark_offsets(self, tp: object, timeout: float) -> tuple[int, int]:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 3, 9


def test_watermarks_wait_out_a_broker_restart() -> None:
    client = _RestartingBroker([KafkaError._UNKNOWN_PARTITION, KafkaError._TRANSPORT])
    tp = TopicPartition("t", 0)
    assert watermark_offsets(client, tp, timeout=5.0) == (3, 9)  # type: ignore[arg-type]
    assert client.calls == 3


def test_watermarks_raise_a_lasting_error_at_once() -> None:
    client = _RestartingBroker([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaException):
        watermark_offsets(client, TopicPartition("t", 0), timeout=5.0)  # type: ignore[arg-type]
    assert client.calls == 1
