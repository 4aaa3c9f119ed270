"""The store as Polars frames: runs, datasets, the ranker's training rows, plain SQL.

``training_frame`` is the ranker's one query; its columns are a contract with
``mlsel.metalearn``: run_id, dataset, dataset_name, task, source, status, score,
wall_seconds, seconds_per_epoch, peak_gpu_mb, peak_host_mb, device, n_train,
``cfg_<field>`` for every :class:`Config` field (``cfg_extra`` as JSON text) and
``feat_<name>`` (Float64) for every meta-feature of each dataset's latest profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._schema import CONFIG_COLUMNS, schema_version
from mlsel.experiment_store._tables import dataset_filter
from mlsel.kernel.catalogue import FINISHED_STATUSES
from mlsel.kernel.records import Config

if TYPE_CHECKING:
    import duckdb
    import polars as pl

__all__ = ["datasets_frame", "info", "runs_frame", "sql_frame", "training_frame"]

_SQL_TYPES = {"int": "INTEGER", "float": "DOUBLE", "bool": "BOOLEAN"}

_LATEST_FEATURES = """
    WITH latest AS (
        SELECT fingerprint, profiler_version FROM (
            SELECT fingerprint, profiler_version, row_number() OVER (
                PARTITION BY fingerprint ORDER BY created_at DESC, profiler_version DESC) AS rank
            FROM profiles)
        WHERE rank = 1)
    SELECT f.fingerprint AS dataset, f.feature, f.value
    FROM profile_features f JOIN latest USING (fingerprint, profiler_version)
"""


def _polars(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A DuckDB result as a Polars frame (DuckDB's stubs type ``pl()`` loosely)."""
    frame: pl.DataFrame = relation.pl()
    return frame


def _config_columns(prefix: str) -> str:
    """SELECT terms for every Config field: a column when ``runs`` has one, else JSON."""
    terms = []
    for f in fields(Config):
        if f.name == "extra":
            terms.append(f"json_extract(r.config, '$.extra')::VARCHAR AS {prefix}extra")
        elif f.name in CONFIG_COLUMNS:
            terms.append(f"r.{f.name} AS {prefix}{f.name}")
        else:  # a field newer than the table: read it from the config JSON
            kind = _SQL_TYPES.get(str(f.type).split("|")[0].strip(), "VARCHAR")
            terms.append(
                f"TRY_CAST(json_extract_string(r.config, '$.{f.name}') AS {kind}) "
                f"AS {prefix}{f.name}"
            )
    return ",\n".join(terms)


def runs_frame(
    con: duckdb.DuckDBPyConnection, dataset: str | None, status: str | None
) -> pl.DataFrame:
    """One row a run, newest first, config fields as plain columns."""
    where, params = dataset_filter(dataset)
    query = f"""
        SELECT r.run_id, r.dataset, d.name AS dataset_name, d.task, r.source, r.status,
            {_config_columns("")},
            r.score, r.wall_seconds, r.seconds_per_epoch, r.peak_gpu_mb, r.peak_host_mb,
            r.hardware ->> 'device' AS device, coalesce(e.n_epochs, 0) AS n_epochs,
            r.error, r.artifact_dir, r.started_at, r.finished_at, r.import_key,
            r.metrics, r.hardware, r.versions, r.config
        FROM runs r
        LEFT JOIN datasets d ON d.fingerprint = r.dataset
        LEFT JOIN (SELECT run_id, count(*) AS n_epochs FROM epochs GROUP BY run_id) e
            USING (run_id)
        WHERE {where} AND (? IS NULL OR r.status = ?)
        ORDER BY r.started_at DESC NULLS LAST, r.run_id
    """
    return _polars(con.sql(query, params=[*params, status, status]))


def training_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every finished run with its config (``cfg_*``) and latest features (``feat_*``)."""
    import polars as pl

    marks = ", ".join("?" for _ in FINISHED_STATUSES)
    runs: pl.DataFrame = con.sql(
        f"""
        SELECT r.run_id, r.dataset, d.name AS dataset_name, d.task, r.source, r.status,
            r.score, r.wall_seconds, r.seconds_per_epoch, r.peak_gpu_mb, r.peak_host_mb,
            r.hardware ->> 'device' AS device, r.hardware ->> 'cpu' AS hw_cpu,
            r.hardware ->> 'torch_threads' AS hw_threads, r.hardware ->> 'gpu' AS hw_gpu,
            {_config_columns("cfg_")}
        FROM runs r LEFT JOIN datasets d ON d.fingerprint = r.dataset
        WHERE r.status IN ({marks})
        ORDER BY r.run_id
        """,
        params=list(FINISHED_STATUSES),
    ).pl()
    features = con.sql(_LATEST_FEATURES).pl()
    n_train = pl.lit(None, dtype=pl.Float64).alias("n_train")
    if features.height:
        wide = features.pivot(on="feature", index="dataset", values="value", sort_columns=True)
        wide = wide.rename({c: f"feat_{c}" for c in wide.columns if c != "dataset"})
        wide = wide.with_columns(pl.exclude("dataset").cast(pl.Float64))
        runs = runs.join(wide, on="dataset", how="left")
        if "feat_n_train" in wide.columns:
            n_train = pl.col("feat_n_train").alias("n_train")
    runs = runs.with_columns(n_train)
    head = [
        "run_id",
        "dataset",
        "dataset_name",
        "task",
        "source",
        "status",
        "score",
        "wall_seconds",
        "seconds_per_epoch",
        "peak_gpu_mb",
        "peak_host_mb",
        "device",
        "hw_cpu",
        "hw_threads",
        "hw_gpu",
        "n_train",
    ]
    rest = [c for c in runs.columns if c not in head]
    return runs.select(head + rest)


def datasets_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row a dataset with its number of runs."""
    return _polars(
        con.sql(
            """
        SELECT d.fingerprint, d.name, d.task, d.source, coalesce(n.n_runs, 0) AS n_runs,
            d.path, d.created_at
        FROM datasets d
        LEFT JOIN (SELECT dataset AS fingerprint, count(*) AS n_runs FROM runs GROUP BY 1) n
            USING (fingerprint)
        ORDER BY d.name, d.fingerprint
        """
        )
    )


def sql_frame(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Sequence[Any] | Mapping[str, Any] | None,
) -> pl.DataFrame:
    """The result of one read-only SQL statement (an empty frame when it has none)."""
    import polars as pl

    relation = con.sql(query, params=params)
    return pl.DataFrame() if relation is None else _polars(relation)


def info(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Schema version and counts of the store on ``con``."""

    def counts(column: str) -> dict[str, int]:
        rows = con.execute(f"SELECT {column}, count(*) FROM runs GROUP BY 1 ORDER BY 1").fetchall()
        return {str(key): int(n) for key, n in rows}

    def total(table: str) -> int:
        found = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(found[0]) if found else 0

    return {
        "schema_version": schema_version(con),
        "runs": total("runs"),
        "runs_by_status": counts("status"),
        "runs_by_source": counts("source"),
        "datasets": total("datasets"),
        "profiles": total("profiles"),
        "epochs": total("epochs"),
        "rankers": total("rankers"),
    }
