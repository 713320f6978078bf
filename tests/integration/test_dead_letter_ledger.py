"""A dead letter already in its topic is not written again by a successor (real broker)."""

from __future__ import annotations

from confluent_kafka import Producer

from fairstream.settings import Settings
from processors.deadletter import DeadLetterLedger, OutgoingMessage, RawMessage, dead_letter


def _letter(topic: str, offset: int, processor: str = "revenue-projection") -> OutgoingMessage:
    raw = RawMessage(topic, 0, offset, b"k", b"\x00garbage", [("ce_type", b"x")])
    return dead_letter(raw, reason="bad magic byte", error_type="DecodeError", processor=processor)


def _ledger(settings: Settings) -> DeadLetterLedger:
    return DeadLetterLedger({"bootstrap.servers": settings.kafka_bootstrap})


def test_a_written_dead_letter_is_not_sent_again(
    isolated_settings: Settings, event_topics: list[str]
) -> None:
    source = next(t for t in event_topics if not t.endswith(".dlq"))
    first, second = _letter(source, 5), _letter(source, 6)
    other_processor = _letter(source, 5, processor="bias-scorer")
    plain = OutgoingMessage(source, b"k", b"v")

    before = _ledger(isolated_settings)
    assert before.unsent([first, plain]) == [first, plain]
    producer = Producer({"bootstrap.servers": isolated_settings.kafka_bootstrap})
    producer.produce(first.topic, first.value, first.key, headers=list(first.headers))
    assert producer.flush(30) == 0

    # The predecessor's ledger and a fresh one (a restarted worker) both see it now.
    after = _ledger(isolated_settings)
    for ledger in (before, after):
        assert ledger.unsent([first, second, other_processor, plain]) == [
            second,
            other_processor,
            plain,
        ]
    # The same source twice in one batch is sent once.
    assert after.unsent([second, second]) == [second]


def test_a_missing_dead_letter_topic_holds_nothing(isolated_settings: Settings) -> None:
    letter = _letter(f"{isolated_settings.topic_prefix}never-created", 1)
    assert _ledger(isolated_settings).unsent([letter]) == [letter]
