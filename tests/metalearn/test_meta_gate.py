"""The refit gate compares both rankers on the same folds; the user's own runs count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from mlsel.cli.suggest import _as_json, _table
from mlsel.experiment_store import Store
from mlsel.kernel.records import Config, DatasetProfile, RunResult
from mlsel.metalearn import refit, suggest
from mlsel.metalearn._observed import combine
from mlsel.metalearn.evaluation import evaluate
from mlsel.metalearn.features import candidate_frame
from mlsel.metalearn.ranker import RankerModel
from mlsel.metalearn.synthetic import synthetic_runs
from tests.metalearn.test_meta_refit_suggest import FEW  # the user's dataset, few images

INFORMATIVE = "images_per_class_min"


def _log(store: Store, runs, *, source: str, keep=None, offset: int = 0) -> None:
    """Log synthetic runs, their profiles restricted to the features in ``keep``."""
    rows, seen = [], set()
    for profile, config, result in runs:
        fp = f"{profile.fingerprint}-{offset}"
        if fp not in seen:
            feats = {k: v for k, v in profile.features.items() if keep is None or k in keep}
            store.save_profile(
                DatasetProfile(fp, profile.task, feats, "t", name=f"{profile.name}-{offset}"),
                source=source,
            )
            seen.add(fp)
        rows.append((fp, config, result))
    store.log_runs(rows, source=source)


def test_a_better_informed_candidate_activates_and_a_worse_one_does_not(mlsel_home) -> None:
    store = Store.open(mlsel_home)
    # the active ranker learnt when the profiles lacked the feature that decides the winner
    _log(store, synthetic_runs(8, seed=2), source="bundled", keep={"brightness_mean", "n_classes"})
    first = refit(store, home=mlsel_home, max_folds=4)
    assert first.evaluation["active"]["scored_by"] == "rules"
    store.activate_ranker(first.version)  # blind to that feature, the rules beat it
    # a better-informed log arrives: datasets whose profiles have it; a newer profiler
    # adds it to the old datasets' profiles too
    _log(store, synthetic_runs(10, seed=3), source="imported", offset=1)
    for profile, _, _ in synthetic_runs(8, seed=2):
        fp = f"{profile.fingerprint}-0"
        store.save_profile(DatasetProfile(fp, "classify", profile.features, "t2"), "bundled")
    second = refit(store, home=mlsel_home, max_folds=5)
    ev = second.evaluation
    assert ev["active"]["scored_by"] == "refitted" and ev["active"]["version"] == first.version
    assert ev["candidate"]["regret@1"] < ev["active"]["regret@1"]
    assert second.activated and "the same" in second.reason
    assert store.active_ranker().version == second.version
    # both sides were measured on the same folds, named
    compared = ev["compared_on"]
    assert compared["n_folds"] == 5 and compared["n_datasets"] == 18
    assert all(d["name"] for fold in compared["folds"] for d in fold)
    assert set(ev["summary"]) == {"random", "ranker", "best-on-average", "nearest-dataset", "rules"}
    # a worse recipe (it cannot split: one constant score) stays inactive
    weak = RankerModel(n_estimators=1, num_leaves=2, min_child_samples=100_000)
    third = refit(store, home=mlsel_home, max_folds=5, ranker=weak)
    assert not third.activated and "kept inactive" in third.reason
    assert third.evaluation["candidate"]["regret@1"] > third.evaluation["active"]["regret@1"]
    assert store.active_ranker().version == second.version


def test_a_refit_after_importing_a_log_activates_and_unknown_recipes_are_applied(
    mlsel_home,
) -> None:
    store = Store.open(mlsel_home)
    _log(store, synthetic_runs(6, seed=4), source="bundled")
    first = refit(store, home=mlsel_home, max_folds=3)
    store.activate_ranker(first.version)  # as the bundled seed's first refit is
    _log(store, synthetic_runs(8, seed=5), source="imported", offset=1)
    second = refit(store, home=mlsel_home, max_folds=4)
    assert second.activated, second.reason
    assert second.evaluation["active"]["scored_by"] == "refitted"
    # a ranker whose files do not say how it was fitted is applied to the datasets it never saw
    meta = Path(second.path) / "meta.json"
    data = json.loads(meta.read_text())
    del data["params"]
    meta.write_text(json.dumps(data))
    _log(store, synthetic_runs(4, seed=6), source="imported", offset=2)
    third = refit(store, home=mlsel_home, max_folds=0 or None)
    ev = third.evaluation
    assert ev["active"]["scored_by"] == "applied"
    unseen = {d["dataset"] for fold in ev["compared_on"]["folds"] for d in fold}
    assert unseen == {f"synth{d:03d}-2" for d in range(4)}


def _conflict_frame(seed: int) -> pl.DataFrame:
    """The user's own datasets (local) and four bundled ones share one profile but disagree:
    a frozen head wins on the user's, full fine-tuning on the bundled ones. Eight bundled
    datasets elsewhere agree with the bundled four."""
    rng = np.random.default_rng(seed)
    archs = ("efficientnet_lite0", "mobilenet_v2", "resnet18", "convnext_tiny")
    specs = [("local", 35.0, "head")] * 4 + [("bundled", 35.0, "full")] * 4
    specs += [("bundled", float(pc), "full") for pc in np.geomspace(200, 2000, 8)]
    parts = []
    for d, (source, per_class, winner) in enumerate(specs):
        profile = DatasetProfile(
            f"{source}{d:02d}", "classify", {INFORMATIVE: per_class, "n_classes": 10.0}, "t"
        )
        configs = [
            Config(backend="torchvision", arch=a, finetune=f)
            for a in archs
            for f in ("head", "partial", "full")
        ]
        effect = {"head": -0.2, "partial": 0.0, "full": -0.2, winner: 0.3}
        scores = [
            float(0.5 + effect[c.finetune] + 0.02 * archs.index(c.arch) + rng.normal(0, 0.02))
            for c in configs
        ]
        parts.append(
            candidate_frame(profile, configs).with_columns(
                pl.Series("status", ["completed"] * len(configs)),
                pl.Series("score", scores),
                pl.lit(source).alias("source"),
            )
        )
    return pl.concat(parts, how="diagonal_relaxed")


def test_weighting_the_users_runs_helps_leave_one_dataset_out() -> None:
    frame = _conflict_frame(seed=1)

    def fitted(weight):
        return lambda train, test: RankerModel(local_weight=weight).fit(train).predict(test)

    ev = evaluate(frame, scorers={"plain": fitted(1.0), "weighted": fitted(3.0)})
    rows = ev.per_dataset
    local = [r for r in rows if str(r["dataset"]).startswith("local")]

    def mean(part, method):
        return float(np.mean([r[method]["regret@1"] for r in part]))

    # held out, one of the user's datasets follows the user's other runs...
    assert mean(local, "weighted") < 0.2 < 0.5 < mean(local, "plain")
    # ...and over every dataset held out, weighting helps rather than hurts
    assert mean(rows, "weighted") < mean(rows, "plain")


def test_combine_puts_the_best_observed_first_and_places_the_rest() -> None:
    predicted = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert list(combine(predicted, [None] * 5)) == [0, 1, 2, 3, 4]
    # observed: 3 is the best seen; 1 was seen and poor; unseen 0 predicted best comes next
    order = list(combine(predicted, [None, 0.2, None, 0.9, None]))
    assert order[0] == 3 and order.index(0) < order.index(1)


def test_suggest_after_runs_puts_the_observed_best_first(mlsel_home) -> None:
    store = Store.open(mlsel_home)
    _log(store, synthetic_runs(10, seed=7), source="bundled")
    store.activate_ranker(refit(store, home=mlsel_home, max_folds=3).version)
    before = suggest(FEW, store=store, top=3)
    assert before.scorer == "ranker" and before.observed == 0
    # the user ran three configs on their dataset; the ranker's least favourite won
    store.save_profile(FEW)
    winner = Config(backend="torchvision", arch="resnet18", finetune="full", lr=1e-3)
    runs = [
        (winner, 0.91),
        (Config(backend="torchvision", arch="mobilenet_v2", finetune="head"), 0.62),
        (Config(backend="torchvision", arch="resnet18", finetune="head"), 0.55),
    ]
    for config, score in runs:
        store.log_run("userfp", config, RunResult(status="completed", score=score))
    assert winner not in [s.config for s in before.suggestions]
    after = suggest(FEW, store=store, top=3)
    first = after.suggestions[0]
    assert first.config == winner and first.observed_score == 0.91 and first.observed_runs == 1
    assert after.observed == 3
    shown = _as_json(after)["suggestions"][0]
    assert shown["observed_score"] == 0.91
    assert [c.header for c in _table(after).columns][4] == "observed"
