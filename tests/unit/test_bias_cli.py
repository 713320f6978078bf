"""`fairstream score` and `fairstream model` through the console script."""

from __future__ import annotations

import io
import json

import pytest

from fairstream.cli import build_parser, main


def _run(argv: list[str], stdin: str = "") -> list[dict[str, object]]:
    from fairstream.commands.score import run

    args = build_parser().parse_args(argv)
    out = io.StringIO()
    assert run(args, stdin=io.StringIO(stdin), stdout=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("model", ["fast", "quality"])
def test_score_texts_as_arguments(model: str) -> None:
    rows = _run(["score", "--model", model, "All Muslims are terrorists.", "Hello there."])
    assert len(rows) == 2
    first = rows[0]
    for key in ("overall_score", "level", "confidence", "dimensions", "evidence"):
        assert key in first
    assert first["level"] in ("low", "medium", "high", "critical")
    assert isinstance(first["dimensions"], dict) and "religion" in first["dimensions"]
    assert str(first["model_name"]).endswith(model)


def test_score_ndjson_passes_other_fields_through() -> None:
    stdin = (
        json.dumps({"id": 1, "text": "Old people cannot use phones.", "tag": "x"})
        + "\n\n"
        + json.dumps({"id": 2, "text": ""})
        + "\n"
    )
    rows = _run(["score", "--model", "fast"], stdin)
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["tag"] == "x"
    assert "text" not in rows[0]
    assert rows[1]["flags"] == ["empty"] and rows[1]["overall_score"] == 0.0


def test_score_rejects_lines_without_text() -> None:
    with pytest.raises(SystemExit, match="line 1"):
        _run(["score", "--model", "fast"], json.dumps({"body": "x"}) + "\n")


def test_score_uses_settings_model_and_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRSTREAM_BIAS_MODEL", "fast")
    monkeypatch.setenv("FAIRSTREAM_BIAS_THRESHOLD_MEDIUM", "0")
    monkeypatch.setenv("FAIRSTREAM_BIAS_THRESHOLD_HIGH", "0")
    monkeypatch.setenv("FAIRSTREAM_BIAS_THRESHOLD_CRITICAL", "0")
    (row,) = _run(["score", "Please schedule the meeting."])
    assert row["level"] == "critical"
    assert str(row["model_name"]).endswith("fast")


def test_main_prints_ndjson(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--model", "fast", "Girls are bad at science."]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert 0.0 <= json.loads(line)["overall_score"] <= 1.0


def test_model_command_is_registered() -> None:
    args = build_parser().parse_args(["model", "verify", "--model", "fast"])
    assert args.model == "fast" and callable(args.func)
    args = build_parser().parse_args(["model", "train"])
    assert args.model == "all"


def test_an_invalid_setting_is_named_with_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAIRSTREAM_BIAS_EVIDENCE_SPANS", "-1")
    monkeypatch.setenv("FAIRSTREAM_BIAS_BATCH_MAX", "many")
    assert main(["score", "some text"]) == 2
    err = capsys.readouterr().err
    assert "invalid setting FAIRSTREAM_BIAS_EVIDENCE_SPANS='-1'" in err
    assert "greater than or equal to 0" in err
    assert "invalid setting FAIRSTREAM_BIAS_BATCH_MAX='many'" in err
    assert "Traceback" not in err
