"""Champion against challenger on one fixed held-out set, and the gates a promotion passes.

Both models predict the same images (the held-out split of the data the challenger was
trained on: the champion's validation split plus the held-out part of every feedback
batch), decoded by each model's own decoder. Macro F1 and every class's recall are taken
over the classes of the held-out set, so a class the champion never saw counts 0 for it.
Latency is the fastest of a few timed passes over the same batch, alternating the models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ConfigError

if TYPE_CHECKING:
    from mlsel.experiment_store.store import Store

__all__ = [
    "GATES_SETTING",
    "GateCheck",
    "Gates",
    "ModelScore",
    "check_gates",
    "measure_latencies",
    "score_model",
]

GATES_SETTING = "promotion_gates"
_LATENCY_BATCH = 16
_LATENCY_PASSES = 9

# a latency measurement: the model's folder -> milliseconds per image
LatencyFn = Callable[[Path], float]


@dataclass(frozen=True)
class Gates:
    """What a challenger must do to replace the champion (kept in the store's settings).

    Attributes:
        min_gain: macro F1 at least the champion's plus this.
        max_class_drop: no class's recall lower than the champion's by more than this.
        max_latency_ratio: milliseconds per image at most this times the champion's.
        min_class_support: classes with fewer held-out images than this are not held to
            ``max_class_drop`` (one image there moves recall by more than the gate allows);
            the report names them.
        class_drop_alpha: a class's drop counts when a paired sign test on its images
            (the images the champion got right and the challenger wrong, against the
            reverse: McNemar's exact test) finds it at this level; 1 counts every drop.
    """

    min_gain: float = 0.01
    max_class_drop: float = 0.05
    max_latency_ratio: float = 1.5
    min_class_support: float = 5
    class_drop_alpha: float = 0.05

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or value != value:
                raise ConfigError(f"The gate {name} must be a number; got {value!r}.")
        if not 0 < self.class_drop_alpha <= 1:
            raise ConfigError(f"class_drop_alpha must be in (0, 1]; got {self.class_drop_alpha}.")
        if self.max_class_drop < 0 or self.max_latency_ratio <= 0 or self.min_class_support < 0:
            raise ConfigError(
                "max_class_drop and min_class_support must be >= 0 and max_latency_ratio > 0; "
                f"got {self.max_class_drop}, {self.min_class_support} and "
                f"{self.max_latency_ratio}."
            )

    @classmethod
    def load(cls, store: Store) -> Gates:
        saved = store.get_setting(GATES_SETTING, {}) or {}
        known = {k: float(v) for k, v in dict(saved).items() if k in asdict(cls())}
        return cls(**known)

    def save(self, store: Store) -> None:
        store.set_setting(GATES_SETTING, self.to_dict())

    def with_(self, **changes: float) -> Gates:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def describe(self) -> list[str]:
        return [
            f"min_gain = {self.min_gain:g}  macro F1 at least the champion's + {self.min_gain:g}",
            f"max_class_drop = {self.max_class_drop:g}  no class's recall drops by more than "
            f"{self.max_class_drop:g}",
            f"max_latency_ratio = {self.max_latency_ratio:g}  at most {self.max_latency_ratio:g}x "
            "the champion's milliseconds per image",
            f"min_class_support = {self.min_class_support:g}  classes with fewer held-out images "
            "are not held to max_class_drop",
            f"class_drop_alpha = {self.class_drop_alpha:g}  a class's drop counts when a paired "
            f"sign test on its images finds it at this level (1: every drop counts)",
        ]


@dataclass(frozen=True)
class ModelScore:
    """One model on the held-out set."""

    ref: str
    run_id: str
    macro_f1: float
    accuracy: float
    recall: Mapping[str, float]
    latency_ms: float
    n_images: int
    unreadable: int = 0
    support: Mapping[str, int] = field(default_factory=dict)
    # per held-out image, in the same order for every model: its class, and whether the
    # model got it right (the paired test of the class-drop gate)
    truth: tuple[str, ...] = ()
    hits: tuple[bool, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "recall": dict(self.recall), "support": dict(self.support)}
        del out["truth"], out["hits"]
        return out


@dataclass(frozen=True)
class GateCheck:
    """One gate's verdict, with its figures in words."""

    gate: str
    passed: bool
    detail: str
    figures: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "figures": dict(self.figures)}


def _predicted(run_dir: Path, paths: Sequence[Path]) -> tuple[list[str | None], Any]:
    """The top label of every path (None: unreadable), and the model's predictor."""
    from mlsel.trainers.prediction import open_predictor

    predictor = open_predictor(run_dir=run_dir)
    labels: dict[str, str] = {}
    rows = predictor.predict_files(list(paths), batch_size=64)
    for row in rows:
        labels[row["path"]] = row["label"]
    return [labels.get(str(path)) for path in paths], predictor


def measure_latencies(run_dirs: Sequence[Path], paths: Sequence[Path]) -> list[float]:
    """Milliseconds per image of each model in ``run_dirs`` on the same batch of
    ``paths`` (decoding not included): after a warm-up, the models run in turn, pass after
    pass, so a machine that slows down or speeds up slows every model alike; each figure
    is the fastest of its passes (a busy machine only ever adds time)."""
    from mlsel.trainers.prediction import open_predictor

    predictors = [open_predictor(run_dir=run_dir) for run_dir in run_dirs]
    batches = []
    for run_dir, predictor in zip(run_dirs, predictors, strict=True):
        decoded = []
        for path in paths:
            try:
                decoded.append(predictor.decode(path))
            except predictor.errors:
                continue
            if len(decoded) == _LATENCY_BATCH:
                break
        if not decoded:
            raise ConfigError(f"None of the held-out images can be read by the model in {run_dir}.")
        predictor.run(decoded)  # warm-up
        batches.append(decoded)
    times: list[list[float]] = [[] for _ in predictors]
    for _ in range(_LATENCY_PASSES):
        for i, (predictor, decoded) in enumerate(zip(predictors, batches, strict=True)):
            start = time.perf_counter()
            predictor.run(decoded)
            times[i].append((time.perf_counter() - start) * 1000 / len(decoded))
    return [min(t) for t in times]


def score_model(
    ref: str,
    run_id: str,
    run_dir: Path,
    images: Sequence[tuple[Path, str]],
    *,
    latency_ms: float,
) -> ModelScore:
    """Macro F1, accuracy and every class's recall of one model on ``images``
    (``(path, true label)``), with its measured latency."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    paths = [path for path, _ in images]
    predicted, _ = _predicted(run_dir, paths)
    unreadable = sum(p is None for p in predicted)
    truth = [label for _, label in images]
    shown = [p if p is not None else "\0unreadable" for p in predicted]
    classes = sorted(set(truth))
    recalls = recall_score(truth, shown, labels=classes, average=None, zero_division=0)
    return ModelScore(
        ref=ref,
        run_id=run_id,
        macro_f1=float(f1_score(truth, shown, labels=classes, average="macro", zero_division=0)),
        accuracy=float(accuracy_score(truth, shown)),
        recall={c: float(r) for c, r in zip(classes, recalls, strict=True)},
        latency_ms=float(latency_ms),
        n_images=len(images),
        unreadable=unreadable,
        support={c: truth.count(c) for c in classes},
        truth=tuple(truth),
        hits=tuple(p == t for p, t in zip(shown, truth, strict=True)),
    )


def _paired_drop(champion: ModelScore, challenger: ModelScore, label: str) -> float:
    """One-sided p-value that the challenger is worse than the champion on class
    ``label``'s images: an exact sign test on the images exactly one of them got right
    (McNemar's exact test). Without per-image results (figures given by hand), 0."""
    if not champion.hits or len(champion.hits) != len(challenger.hits):
        return 0.0
    from scipy.stats import binomtest

    pairs = [
        (a, b)
        for t, a, b in zip(champion.truth, champion.hits, challenger.hits, strict=True)
        if t == label and a != b
    ]
    lost = sum(a for a, _ in pairs)
    if not pairs:
        return 1.0
    return float(binomtest(lost, len(pairs), 0.5, alternative="greater").pvalue)


def check_gates(champion: ModelScore, challenger: ModelScore, gates: Gates) -> list[GateCheck]:
    """Each gate's verdict for replacing ``champion`` with ``challenger``."""
    gain = challenger.macro_f1 - champion.macro_f1
    checks = [
        GateCheck(
            "min_gain",
            gain >= gates.min_gain - 1e-12,
            f"macro F1 {challenger.macro_f1:.4f} against {champion.macro_f1:.4f}: "
            f"{gain:+.4f} ({'>=' if gain >= gates.min_gain - 1e-12 else '<'} "
            f"+{gates.min_gain:g} needed)",
            {"challenger": challenger.macro_f1, "champion": champion.macro_f1, "gain": gain},
        )
    ]
    support = champion.support or {c: int(gates.min_class_support) for c in champion.recall}
    few = sorted(c for c in champion.recall if support.get(c, 0) < gates.min_class_support)
    drops = {
        c: champion.recall[c] - challenger.recall.get(c, 0.0)
        for c in champion.recall
        if c in challenger.recall and c not in few
    }
    tests = {c: _paired_drop(champion, challenger, c) for c in drops}
    counted = {
        c: d
        for c, d in drops.items()
        if d > gates.max_class_drop and tests[c] < gates.class_drop_alpha
    }
    worst = max(counted or drops, key=lambda c: drops[c]) if drops else None
    worst_drop = drops[worst] if worst is not None else 0.0
    passed = not counted
    if worst is None or worst_drop <= 0:
        detail = "no class's recall dropped"
    else:
        detail = (
            f"largest recall drop {worst_drop:+.4f} on class {worst!r} "
            f"({champion.recall[worst]:.4f} -> {challenger.recall[worst]:.4f}; at most "
            f"{gates.max_class_drop:g} allowed"
        )
        if worst_drop > gates.max_class_drop:
            sign = "<" if tests[worst] < gates.class_drop_alpha else ">="
            found = "significant" if sign == "<" else "not significant"
            detail += (
                f"; {found}: paired sign test p = {tests[worst]:.3g} {sign} "
                f"{gates.class_drop_alpha:g} on {support.get(worst, 0)} images"
            )
        detail += ")"
    if few:
        shown = ", ".join(repr(c) for c in few[:5]) + (" ..." if len(few) > 5 else "")
        detail += f"; not gated, fewer than {gates.min_class_support:g} held-out images: {shown}"
    checks.append(
        GateCheck(
            "max_class_drop",
            passed,
            detail,
            {
                "drop": worst_drop,
                "p_value": tests.get(worst, 1.0) if worst else 1.0,
                "not_gated": len(few),
            },
        )
    )
    ratio = challenger.latency_ms / champion.latency_ms if champion.latency_ms > 0 else 1.0
    checks.append(
        GateCheck(
            "max_latency_ratio",
            ratio <= gates.max_latency_ratio + 1e-12,
            f"{challenger.latency_ms:.2f} ms per image against {champion.latency_ms:.2f}: "
            f"{ratio:.2f}x (at most {gates.max_latency_ratio:g}x allowed)",
            {
                "ratio": ratio,
                "challenger_ms": challenger.latency_ms,
                "champion_ms": champion.latency_ms,
            },
        )
    )
    return checks
