"""The model registry: runs promoted into named models, their aliases, and dataset versions.

A *model* is a name (``cats``) with numbered versions; each version is one run, the data
it was trained on (a fingerprint, and the feedback dataset version when there was one),
the version it was retrained from (``parent``), who or what promoted it and the gate's
evaluation. Aliases (``champion``, ``challenger``, any free word) point at one version
each; every change of an alias is kept in ``alias_history``, so a rollback knows what an
alias pointed at before. Nothing is ever deleted: a rollback is one more history row.

Dataset versions are the datasets ``mlsel feedback import`` makes for a model: each is a
folder (``$MLSEL_HOME/datasets/<name>/v<N>/``) with its fingerprint and lineage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._codec import iso, utcnow
from mlsel.kernel.errors import ConfigError

if TYPE_CHECKING:
    import duckdb

    from mlsel.experiment_store.store import Store

__all__ = ["CHAMPION", "DatasetVersion", "ModelVersion", "Registry", "check_model_name"]

CHAMPION = "champion"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^v?([0-9]+)$")


def check_model_name(name: str, what: str = "model name") -> str:
    """``name`` when it is a valid model or alias name (a letter, then letters, digits,
    ``_ . -``; at most 64), else a one-line ConfigError."""
    if not _NAME.match(name or "") or _VERSION.match(name):
        raise ConfigError(
            f"{name!r} is not a valid {what}: use a letter followed by letters, digits, '_', "
            "'.' or '-' (at most 64), not a version number."
        )
    return name


@dataclass(frozen=True)
class ModelVersion:
    """One version of a named model (see the module's docstring)."""

    name: str
    version: int
    run_id: str
    dataset: str
    dataset_version: str | None
    parent: int | None
    promoted_by: str
    created_at: str
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """``NAME@vN``: this version, whatever its aliases become."""
        return f"{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "run_id": self.run_id,
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "parent": self.parent,
            "promoted_by": self.promoted_by,
            "created_at": self.created_at,
            "aliases": list(self.aliases),
            "evaluation": dict(self.evaluation),
        }


@dataclass(frozen=True)
class AliasChange:
    """One change of an alias: what it pointed at before and after, by whom and when."""

    name: str
    alias: str
    version: int | None
    previous: int | None
    set_by: str
    set_at: str
    action: str


@dataclass(frozen=True)
class DatasetVersion:
    """A dataset made from labelled feedback for model ``name`` (see the module's docstring)."""

    name: str
    version: int
    fingerprint: str
    path: str
    parent: str | None
    lineage: Mapping[str, Any]
    created_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}/v{self.version}"


_MODEL_COLUMNS = (
    "m.name, m.version, m.run_id, m.dataset, m.dataset_version, m.parent, m.promoted_by, "
    "m.created_at, m.evaluation, "
    "coalesce((SELECT list(a.alias ORDER BY a.alias) FROM model_aliases a "
    "WHERE a.name = m.name AND a.version = m.version), [])"
)


def _model(row: tuple[Any, ...]) -> ModelVersion:
    name, version, run_id, dataset, data_version, parent, by, created, evaluation, aliases = row
    return ModelVersion(
        name=name,
        version=int(version),
        run_id=run_id,
        dataset=dataset,
        dataset_version=data_version,
        parent=None if parent is None else int(parent),
        promoted_by=by,
        created_at=iso(created) or "",
        evaluation=json.loads(evaluation or "{}"),
        aliases=tuple(aliases or ()),
    )


def _dataset_version(row: tuple[Any, ...]) -> DatasetVersion:
    name, version, fingerprint, path, parent, lineage, created = row
    return DatasetVersion(
        name, int(version), fingerprint, path, parent, json.loads(lineage), iso(created) or ""
    )


class Registry:
    """The registry tables of ``store``; each call is one short store session."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _session(self, *, write: bool, what: str) -> Any:
        return self._store._session(write=write, what=what)

    # -- models --------------------------------------------------------------------------

    def register(
        self,
        name: str,
        run_id: str,
        *,
        dataset_version: str | None = None,
        parent: int | None = None,
        by: str = "user",
        evaluation: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Add run ``run_id`` as the next version of model ``name`` (no alias moves).

        Raises:
            ConfigError: the name is invalid, or there is no such run in the store.
        """
        check_model_name(name)
        with self._session(write=True, what="register a model") as con:
            version = self._register(con, name, run_id, dataset_version, parent, by, evaluation)
            return self._get(con, name, version)

    def _register(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        run_id: str,
        dataset_version: str | None,
        parent: int | None,
        by: str,
        evaluation: Mapping[str, Any] | None,
    ) -> int:
        found = con.execute(
            "SELECT dataset, status FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if found is None:
            raise ConfigError(
                f"There is no run {run_id!r} in {self._store.path}: `mlsel runs` lists them."
            )
        if found[1] != "completed":
            raise ConfigError(
                f"Run {run_id} is {found[1]}, not completed: only a completed run can become "
                f"a model version of {name!r}."
            )
        row = con.execute(
            "SELECT coalesce(max(version), 0) FROM models WHERE name = ?", [name]
        ).fetchone()
        version = int(row[0] if row else 0) + 1
        con.execute(
            "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                version,
                run_id,
                found[0],
                dataset_version,
                parent,
                by,
                utcnow(),
                json.dumps(dict(evaluation or {}), default=str),
            ],
        )
        return version

    def set_alias(self, name: str, alias: str, version: int, *, by: str = "user") -> None:
        """Point ``NAME@alias`` at ``version`` (recorded in the alias history).

        Raises:
            ConfigError: no such model version, or an invalid alias.
        """
        check_model_name(alias, "alias")
        with self._session(write=True, what="set a model alias") as con:
            self._get(con, name, version)
            self._set_alias(con, name, alias, version, by, "set")

    @staticmethod
    def _set_alias(
        con: duckdb.DuckDBPyConnection, name: str, alias: str, version: int, by: str, action: str
    ) -> None:
        before = con.execute(
            "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", [name, alias]
        ).fetchone()
        now = utcnow()
        con.execute(
            "INSERT INTO model_aliases VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, alias) DO "
            "UPDATE SET version = excluded.version, set_by = excluded.set_by, "
            "set_at = excluded.set_at",
            [name, alias, version, by, now],
        )
        con.execute(
            "INSERT INTO alias_history VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name, alias, version, before[0] if before else None, by, now, action],
        )

    def promote(
        self,
        name: str,
        run_id: str,
        *,
        alias: str = CHAMPION,
        by: str = "user",
        evaluation: Mapping[str, Any] | None = None,
        dataset_version: str | None = None,
        parent: int | None = None,
    ) -> ModelVersion:
        """Make run ``run_id`` ``NAME@alias``: its existing version, or a new one (whose
        parent defaults to the version the alias pointed at), in one transaction."""
        check_model_name(name)
        check_model_name(alias, "alias")
        with self._session(write=True, what="promote a model") as con:
            existing = con.execute(
                "SELECT max(version) FROM models WHERE name = ? AND run_id = ?", [name, run_id]
            ).fetchone()
            version = existing[0] if existing else None
            if version is None:
                if parent is None:
                    held = con.execute(
                        "SELECT version FROM model_aliases WHERE name = ? AND alias = ?",
                        [name, alias],
                    ).fetchone()
                    parent = held[0] if held else None
                version = self._register(con, name, run_id, dataset_version, parent, by, evaluation)
            elif evaluation:
                con.execute(
                    "UPDATE models SET evaluation = ? WHERE name = ? AND version = ?",
                    [json.dumps(dict(evaluation), default=str), name, version],
                )
            self._set_alias(con, name, alias, int(version), by, "promote")
            return self._get(con, name, int(version))

    def rollback(self, name: str, alias: str = CHAMPION, *, by: str = "user") -> ModelVersion:
        """Point ``NAME@alias`` back at the version it held before its latest change.

        Raises:
            ConfigError: the alias was never set, or it has no earlier version to go back to.
        """
        with self._session(write=True, what="roll back a model") as con:
            held = con.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", [name, alias]
            ).fetchone()
            if held is None:
                raise ConfigError(f"{name}@{alias} is not set: nothing to roll back.")
            # the changes that brought the alias to each version, newest first; a rollback
            # steps back past the promotions that were themselves undone
            history = con.execute(
                "SELECT version, previous, action FROM alias_history WHERE name = ? AND "
                "alias = ? ORDER BY set_at DESC, rowid DESC",
                [name, alias],
            ).fetchall()
            target = _previous_holder(history)
            if target is None:
                raise ConfigError(
                    f"{name}@{alias} has no earlier version to roll back to (it is v{held[0]})."
                )
            self._set_alias(con, name, alias, target, by, "rollback")
            return self._get(con, name, target)

    def get(self, name: str, which: str | int = CHAMPION) -> ModelVersion:
        """``NAME@which``: an alias, ``vN`` or ``N``.

        Raises:
            ConfigError: no such model, alias or version; the message says what exists.
        """
        with self._session(write=False, what="read the model registry") as con:
            return self._get(con, name, which)

    def find(self, name: str, which: str | int = CHAMPION) -> ModelVersion | None:
        """Like :meth:`get`, or None when there is no such model, alias or version."""
        try:
            return self.get(name, which)
        except ConfigError:
            return None

    def _get(self, con: duckdb.DuckDBPyConnection, name: str, which: str | int) -> ModelVersion:
        text = str(which)
        number = _VERSION.match(text)
        if number:
            version: Any = int(number.group(1))
        else:
            held = con.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", [name, text]
            ).fetchone()
            version = held[0] if held else None
        row = None
        if version is not None:
            row = con.execute(
                f"SELECT {_MODEL_COLUMNS} FROM models m WHERE m.name = ? AND m.version = ?",
                [name, version],
            ).fetchone()
        if row is None:
            known = con.execute("SELECT count(*) FROM models WHERE name = ?", [name]).fetchone()
            if not known or not known[0]:
                raise ConfigError(
                    f"There is no model named {name!r}: `mlsel models` lists them, and "
                    f"`mlsel models promote {name} RUN_ID` makes one."
                )
            aliases = con.execute(
                "SELECT list(alias || '=v' || version ORDER BY alias) FROM model_aliases "
                "WHERE name = ?",
                [name],
            ).fetchone()
            have = ", ".join(aliases[0] or []) if aliases else ""
            raise ConfigError(
                f"Model {name!r} has no {'version' if number else 'alias'} {text!r} "
                f"(aliases: {have or 'none'}). `mlsel models` lists its versions."
            )
        return _model(row)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of every model), by name then version."""
        where, params = ("WHERE m.name = ?", [name]) if name else ("", [])
        with self._session(write=False, what="read the model registry") as con:
            rows = con.execute(
                f"SELECT {_MODEL_COLUMNS} FROM models m {where} ORDER BY m.name, m.version",
                params,
            ).fetchall()
        return [_model(row) for row in rows]

    def names(self) -> list[str]:
        """The registered model names, sorted."""
        with self._session(write=False, what="read the model registry") as con:
            rows = con.execute("SELECT DISTINCT name FROM models ORDER BY name").fetchall()
        return [str(row[0]) for row in rows]

    def history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """The alias changes of ``name`` (of one alias), oldest first."""
        where, params = "WHERE name = ?", [name]
        if alias:
            where, params = where + " AND alias = ?", [name, alias]
        with self._session(write=False, what="read the model registry") as con:
            rows = con.execute(
                "SELECT name, alias, version, previous, set_by, set_at, action FROM "
                f"alias_history {where} ORDER BY set_at, rowid",
                params,
            ).fetchall()
        return [
            AliasChange(n, a, v, p, by, iso(at) or "", action)
            for n, a, v, p, by, at, action in rows
        ]

    # -- dataset versions ------------------------------------------------------------------

    def save_dataset_version(
        self,
        name: str,
        version: int,
        fingerprint: str,
        path: str,
        *,
        parent: str | None,
        lineage: Mapping[str, Any],
    ) -> DatasetVersion:
        """Record dataset version ``name/v<version>`` (a folder already written)."""
        with self._session(write=True, what="record a dataset version") as con:
            con.execute(
                "INSERT INTO dataset_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    name,
                    version,
                    fingerprint,
                    path,
                    parent,
                    json.dumps(dict(lineage), default=str),
                    utcnow(),
                ],
            )
        found = self.dataset_version(name, version)
        assert found is not None  # just written
        return found

    def dataset_versions(self, name: str) -> list[DatasetVersion]:
        """The dataset versions of model ``name``, oldest first."""
        with self._session(write=False, what="read dataset versions") as con:
            rows = con.execute(
                "SELECT name, version, fingerprint, path, parent, lineage, created_at FROM "
                "dataset_versions WHERE name = ? ORDER BY version",
                [name],
            ).fetchall()
        return [_dataset_version(row) for row in rows]

    def dataset_version(self, name: str, which: str | int = "latest") -> DatasetVersion | None:
        """Version ``which`` (``latest``, ``vN`` or ``N``) of ``name``'s datasets, or None."""
        versions = self.dataset_versions(name)
        if which == "latest":
            return versions[-1] if versions else None
        number = _VERSION.match(str(which))
        if number is None:
            return None
        return next((v for v in versions if v.version == int(number.group(1))), None)


def _previous_holder(history: list[tuple[Any, Any, str]]) -> int | None:
    """The version an alias goes back to: before its latest change, skipping the changes
    that earlier rollbacks already undid (so two rollbacks go back two steps)."""
    undone = 0
    for _, previous, action in history:
        if action == "rollback":
            undone += 1
            continue
        if undone:
            undone -= 1
            continue
        return None if previous is None else int(previous)
    return None
