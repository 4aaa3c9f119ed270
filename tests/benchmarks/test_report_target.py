"""The report says in words whether the corpus target is met, ties counted as shown."""

from __future__ import annotations

from benchmarks.report import _target


def _summary(**regret: float) -> dict[str, dict[str, float]]:
    return {m.replace("_", "-"): {"regret@1": v} for m, v in regret.items()}


def test_the_target_is_met_when_the_ranker_is_lowest_overall_and_on_most_sources() -> None:
    lines = _target(
        _summary(ranker=0.05, best_on_average=0.06, rules=0.14),
        ["a", "b", "c", "d"],
        ["a", "b", "c"],
    )
    assert lines[0].endswith("met.")
    assert "met (3 of 4; not lowest on d)" in lines[1]


def test_the_target_names_what_beat_the_ranker() -> None:
    lines = _target(
        _summary(ranker=0.06, best_on_average=0.06, rules=0.14), ["a", "b", "c", "d"], ["a", "b"]
    )
    assert "missed (best-on-average as low or lower)" in lines[0]
    assert lines[1].startswith("Target, the ranker lowest") and "missed (2 of 4" in lines[1]
