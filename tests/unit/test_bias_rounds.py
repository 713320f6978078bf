"""Scoring a Faust batch in overlapped rounds gives what one handle_batch gives."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from events.codec import EventCodec
from events.jsonform import event_from_json
from fairstream.settings import REPO_ROOT
from processors.bias.app import score_in_rounds
from processors.bias.scoring import BiasScorer, StagedScorer, load_scorer
from processors.bias.service import BatchOutcome, BiasScoringService, ScoringRound
from processors.deadletter import OutgoingMessage, RawMessage

CODEC = EventCodec()
TEXTS = [
    "All Muslims are terrorists.",
    "Please schedule the meeting for Tuesday afternoon.",
    "",
    "Women are too emotional to lead.",
    "Ma collègue est musulmane et elle est très gentille.",
]


def _batch(count: int) -> list[RawMessage]:
    batch = []
    for i in range(count):
        event = event_from_json(
            "ContentSubmitted",
            {"content_id": f"c{i}", "text": TEXTS[i % len(TEXTS)]},
            source="test",
        )
        encoded = CODEC.encode(event)
        batch.append(RawMessage("in", 0, i, encoded.key, encoded.value, encoded.headers))
    batch.insert(3, RawMessage("in", 0, 99, b"k", os.urandom(30)))  # dead-lettered
    return batch


def _comparable(messages: list[OutgoingMessage]) -> dict[tuple[str, bytes], dict[str, Any]]:
    """Return each record's payload by topic and key; the model's numbers are compared apart.

    onnxruntime's results for a text move in the last float bits with the batch it runs
    in, so scores are left to `_scores` and compared with a tolerance.
    """
    out: dict[tuple[str, bytes], dict[str, Any]] = {}
    for m in messages:
        if m.topic.endswith(".dlq"):
            out[(m.topic, m.key or b"")] = {"value": m.value}
            continue
        payload = dict(CODEC.decode(m.value, m.headers).payload)
        for name in ("latency_ms", "overall_score", "confidence", "dimensions", "reason"):
            payload.pop(name, None)
        payload["evidence"] = [e["text"] for e in payload.get("evidence", [])]
        out[(m.topic, m.key or b"")] = payload
    return out


def _scores(messages: list[OutgoingMessage]) -> dict[bytes, float]:
    return {
        m.key or b"": float(CODEC.decode(m.value, m.headers).payload["overall_score"])
        for m in messages
        if m.topic == "bias.scored"
    }


@pytest.fixture(scope="module", params=["fast", "quality"])
def scorer(request: pytest.FixtureRequest) -> BiasScorer:
    return load_scorer(str(request.param), REPO_ROOT / "models")


@pytest.mark.parametrize("round_size", [1, 4, 64])
def test_rounds_give_the_records_of_one_handle_batch(scorer: BiasScorer, round_size: int) -> None:
    service = BiasScoringService(scorer, CODEC)
    batch = _batch(13)

    async def in_thread(scoring: ScoringRound) -> ScoringRound:
        return await asyncio.to_thread(service.run_model, scoring)

    rounds = asyncio.run(score_in_rounds(service, batch, round_size, in_thread))
    whole = service.handle_batch(batch)
    assert (rounds.scored, rounds.alerts, rounds.dead_lettered) == (
        whole.scored,
        whole.alerts,
        whole.dead_lettered,
    )
    assert (rounds.scored, rounds.dead_lettered) == (13, 1)
    assert _comparable(rounds.messages) == _comparable(whole.messages)
    scores = _scores(whole.messages)
    assert _scores(rounds.messages) == pytest.approx(scores, abs=1e-5)


def test_the_fast_scorer_is_staged_and_rounds_run_the_model_once_each() -> None:
    scorer = load_scorer("fast", REPO_ROOT / "models")
    assert isinstance(scorer, StagedScorer)
    service = BiasScoringService(scorer, CODEC)
    calls: list[int] = []

    async def counted(scoring: ScoringRound) -> ScoringRound:
        calls.append(len(scoring.events))
        return service.run_model(scoring)

    outcome: BatchOutcome = asyncio.run(score_in_rounds(service, _batch(10), 4, counted))
    assert calls == [3, 4, 3]  # the undecodable record sits in the first round
    assert outcome.scored == 10
