"""Recognise a tracker export (W&B, MLflow, MLflow UI) and find the columns of each role.

A W&B "Export CSV" has ``Name``, ``State``, ``Runtime``, ``Created`` and (not always)
``ID``, then every config key and summary metric, plain or as ``config.x``/``summary.x``.
``mlflow.search_runs()`` saved to CSV has ``run_id``, ``experiment_id``, ``status``,
``start_time``, ``end_time``, ``params.*``, ``metrics.*`` and ``tags.*``. The MLflow UI's
download has ``Start Time``, ``Duration``, ``Run ID``, ``Name``, ``Source Type``, ``Source
Name``, ``User``, ``Status``, then params, metrics and tags under their plain names.
Columns are found by their logical name (the prefix removed), never by position, so a
later export with columns reordered, added or missing maps the same way.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlsel.experiment_store._tracker._mapping import ROLE_CANDIDATES, TrackerMapping
from mlsel.kernel.errors import ConfigError

__all__ = ["CSV_FORMATS", "ExportColumns", "detect_csv_format", "logical_name", "resolve_columns"]

CSV_FORMATS = ("wandb", "mlflow", "mlflow-ui", "tracker-csv")
_PREFIXES = ("config.", "summary.", "params.", "metrics.", "tags.")
_METRIC_PREFIXES = ("summary.", "metrics.")
_OPTION = {
    "run_id": "run-id-col",
    "dataset": "dataset-col",
    "arch": "arch-col",
    "score": "score-col",
    "status": "status-col",
}
_WORDS = {"run_id": "run id", "arch": "architecture"}
_PERCENT = re.compile(r"top[-_]?[15]\b|top[-_]?[15]_|percent|_pct\b", re.IGNORECASE)


def logical_name(column: str) -> str:
    """``column`` without a ``config.``/``summary.``/``params.``/``metrics.``/``tags.`` prefix."""
    for prefix in _PREFIXES:
        if column.startswith(prefix):
            return column[len(prefix) :]
    return column


def detect_csv_format(header: Sequence[str]) -> str:
    """``wandb``, ``mlflow``, ``mlflow-ui`` or ``tracker-csv`` (a plain table), from the header."""
    names = set(header)
    prefixed = {c.split(".", 1)[0] + "." for c in header if "." in c}
    if "run_id" in names and ({"params.", "metrics."} & prefixed or "experiment_id" in names):
        return "mlflow"
    if "Run ID" in names and ({"Source Type", "Start Time", "Duration"} & names):
        return "mlflow-ui"
    lowered = {c.lower() for c in header}
    if {"config.", "summary."} & prefixed or "state" in lowered or {"Name", "Runtime"} <= names:
        return "wandb"
    return "tracker-csv"


@dataclass(frozen=True)
class ExportColumns:
    """What each column of one export means.

    Attributes:
        format: see :data:`CSV_FORMATS`.
        roles: role (``run_id``, ``run_name``, ``dataset``, ``arch``, ``score``, ``status``,
            ``wall_seconds``, ``started``, ``finished``) -> its column, or None.
        identity: the column that identifies a run (its ``identity_kind``: ``id``,
            ``name``, or ``row`` for a hash of the row's values, when there is neither).
        scope: the project/entity/experiment columns that qualify the identity.
        score_scale: factor to mlsel's 0..1 score.
        hyperparams: column -> Config field; ``extras``: other hyperparameter columns;
            ``metrics``: result columns kept as metrics; ``features``: column -> meta-feature.
    """

    format: str
    roles: Mapping[str, str | None]
    identity: str
    identity_kind: str
    scope: tuple[str, ...]
    score_scale: float
    hyperparams: Mapping[str, str] = field(default_factory=dict)
    extras: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    features: Mapping[str, str] = field(default_factory=dict)

    def mapping(self) -> dict[str, str]:
        """Role -> column (or what was assumed) for display: the ``--dry-run`` mapping."""
        shown = {role: column for role, column in self.roles.items() if column is not None}
        shown["identity"] = self.identity
        if self.scope:
            shown["scope"] = ", ".join(self.scope)
        shown["score_scale"] = f"{self.score_scale:g}"
        for column, feature in self.features.items():
            shown[f"feature {feature}"] = column
        shown["hyperparameters"] = ", ".join(
            [f"{c} -> {f}" for c, f in self.hyperparams.items()] + [f"{len(self.extras)} extra"]
        )
        shown["metrics"] = ", ".join(self.metrics) or "none"
        return shown


def _find(header: Sequence[str], names: Sequence[str]) -> str | None:
    """The column whose full, then logical, then case-folded logical name is in ``names``."""
    for name in names:
        if name in header:
            return name
    for name in names:
        for column in header:
            if logical_name(column) == name:
                return column
    for name in names:
        for column in header:
            if logical_name(column).lower() == name.lower():
                return column
    return None


def _missing(path: Path, header: Sequence[str], role: str, wanted: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(wanted[0], header, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    what = f"column {wanted[0]!r} is" if len(wanted) == 1 else "column is"
    looked = "" if len(wanted) == 1 else f" (looked for {', '.join(wanted)})"
    return ConfigError(
        f"The {_WORDS.get(role, role)} {what} not in {path.name}{looked}; it has "
        f"{len(header)} columns: {shown}.{hint} Name the right column with --{_OPTION[role]}."
    )


def _score_scale(column: str, rows: Sequence[Mapping[str, str]], given: float | None) -> float:
    if given is not None:
        return given
    if _PERCENT.search(logical_name(column)):
        return 0.01
    for row in rows:
        try:
            if float(row.get(column) or "nan") > 1.0:
                return 0.01
        except ValueError:
            continue
    return 1.0


def _numeric(rows: Sequence[Mapping[str, str]], column: str) -> bool:
    """Whether every non-empty cell of ``column`` is a number."""
    for row in rows:
        text = (row.get(column) or "").strip()
        if text:
            try:
                float(text)
            except ValueError:
                return False
    return True


def resolve_columns(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Mapping[str, str]],
    mapping: TrackerMapping,
    fmt: str,
) -> ExportColumns:
    """Find every role's column in ``header`` (explicit ``mapping`` names first).

    Raises:
        ConfigError: a required column (dataset, architecture, score), or one named in
            ``mapping``, is not in the file.
    """
    explicit = {
        "run_id": mapping.run_id_col,
        "dataset": mapping.dataset_col,
        "arch": mapping.arch_col,
        "score": mapping.score_col,
        "status": mapping.status_col,
        "wall_seconds": mapping.wall_seconds_col,
        "started": mapping.started_col,
        "finished": mapping.finished_col,
    }
    roles: dict[str, str | None] = {}
    for role in ("run_id", "run_name", "dataset", "arch", "score", "status"):
        given = explicit.get(role)
        wanted = (given,) if given else ROLE_CANDIDATES[role]
        found = _find(header, wanted)
        if found is None and (given or role in ("dataset", "arch", "score")):
            raise _missing(path, header, role, wanted)
        roles[role] = found
    for role in ("wall_seconds", "started", "finished"):
        given = explicit[role]
        roles[role] = _find(header, (given,) if given else ROLE_CANDIDATES[role])
    if roles["run_id"] is not None and not any(
        (r.get(roles["run_id"]) or "").strip() for r in rows
    ):
        roles["run_id"] = None  # an ID column left empty identifies nothing
    if roles["run_id"] is not None:
        identity, kind = roles["run_id"], "id"
    elif roles["run_name"] is not None:
        identity, kind = roles["run_name"], "name"
    else:
        identity, kind = "row hash", "row"
    scope = tuple(
        c for c in (_find(header, (n,)) for n in ROLE_CANDIDATES["scope"]) if c is not None
    )
    score = roles["score"] or ""  # found, or _missing raised above
    return _classify(
        ExportColumns(
            format=fmt,
            roles=roles,
            identity=identity,
            identity_kind=kind,
            scope=tuple(dict.fromkeys(scope)),
            score_scale=_score_scale(score, rows, mapping.score_scale),
        ),
        header,
        rows,
        mapping,
    )


def _classify(
    columns: ExportColumns,
    header: Sequence[str],
    rows: Sequence[Mapping[str, str]],
    mapping: TrackerMapping,
) -> ExportColumns:
    """Split the columns without a role into hyperparameters, extras, metrics, features."""
    ignored = {c.lower() for c in mapping.ignore_cols}
    taken = {c for c in columns.roles.values() if c is not None} | set(columns.scope)
    taken |= {c for c in header if logical_name(c) in mapping.seconds_per_epoch_cols}
    taken |= {c for c in header if c in mapping.hardware_cols}
    if mapping.pretrained_col:
        taken.add(mapping.pretrained_col)
    hyperparams: dict[str, str] = {}
    features: dict[str, str] = {}
    extras, metrics = [], []
    for column in header:
        name = logical_name(column)
        if column in taken or column.startswith("tags.") or name.startswith("mlflow."):
            continue
        if name.lower() in ignored or column.lower() in ignored:
            continue
        if name in mapping.feature_cols:
            features.setdefault(column, mapping.feature_cols[name])
        elif column.startswith(_METRIC_PREFIXES) or (
            (
                name.startswith(tuple(mapping.metric_prefixes))
                or name.lower() in mapping.metric_cols
                or name.lower().endswith(mapping.metric_suffixes)
            )
            and _numeric(rows, column)
        ):
            metrics.append(column)
        elif name in mapping.hyperparams and mapping.hyperparams[name] not in hyperparams.values():
            hyperparams[column] = mapping.hyperparams[name]
        else:
            extras.append(column)
    if mapping.drop_constant and len(rows) > 1:
        extras = [c for c in extras if len({row.get(c) or "" for row in rows}) > 1]
    return ExportColumns(
        format=columns.format,
        roles=columns.roles,
        identity=columns.identity,
        identity_kind=columns.identity_kind,
        scope=columns.scope,
        score_scale=columns.score_scale,
        hyperparams=hyperparams,
        extras=tuple(extras),
        metrics=tuple(metrics),
        features=features,
    )
