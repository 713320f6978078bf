"""The fault harness's diagnosis of a run short of the reference: lost or stopped, and where."""

from __future__ import annotations

from operations.faults.harness import PipelineResult, where_it_stopped


def _result(records: dict[str, int], behind: list[str]) -> PipelineResult:
    result = PipelineResult("ns", "scenario")
    result.topic_records = records
    result.groups_behind = behind
    return result


def test_names_the_topics_short_of_the_reference_and_the_groups_behind() -> None:
    reference = _result(
        {"revenue.requested": 29, "revenue.projected": 29, "app-table-changelog": 50}, []
    )
    run = _result(
        {"revenue.requested": 33, "revenue.projected": 18, "app-table-changelog": 40},
        ["ns-revenue revenue.requested[1] at 3 of 14 (assigned, group Stable, 1 members)"],
    )

    said = where_it_stopped(run, reference)

    # Fewer output records than the reference: the processor did not emit them.
    assert "revenue.projected 18 vs 29" in said
    # More records (poison, re-emissions) is not short; a changelog's count varies by run.
    assert "revenue.requested" not in said.split(";")[0]
    assert "changelog" not in said
    assert "ns-revenue revenue.requested[1] at 3 of 14" in said


def test_says_none_when_every_topic_holds_the_reference_s_records() -> None:
    reference = _result({"revenue.projected": 29}, [])
    run = _result({"revenue.projected": 29}, [])

    said = where_it_stopped(run, reference)

    assert said == (
        "at the end, topics with fewer records than the reference's: none; "
        "partitions not committed to their end: none"
    )
