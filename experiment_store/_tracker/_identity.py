"""Who a tracker run is, whatever file it arrives in: its keys, and matching them to the store.

A run's identity is the tracker's own: its run id, else its run name, else a hash of the
row (canonical JSON of its non-empty cells, sorted by column). The file's name plays no
part; the project/entity/experiment does when the export has such a column. Every
identity a row has is a key (``tracker:<scope>:<kind>:<value>``) kept in ``run_keys``, so
an export with only run names still finds the runs an export with ids added. Two runs
are the same when they share a key of the strongest kind both have: a stored run whose id
differs is another run, even with the same name. Keys of runs imported before (the file
name and tracker id) are matched too, so an upgrade duplicates nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlsel.experiment_store._tracker._formats import ExportColumns, logical_name

if TYPE_CHECKING:
    import duckdb

__all__ = ["RunKeys", "known_runs", "record_keys", "row_keys"]

_STRENGTH = {"id": 0, "name": 1, "row": 2}


@dataclass(frozen=True)
class RunKeys:
    """The keys of one row: ``keys`` (kind, key), strongest first; ``legacy`` keys of
    earlier mlsel versions, matched as they are."""

    keys: tuple[tuple[str, str], ...]
    legacy: tuple[str, ...] = ()

    @property
    def primary(self) -> str:
        """The strongest key: what the run id is derived from."""
        return self.keys[0][1]


def row_hash(row: Mapping[str, str]) -> str:
    """A stable hash of a row's non-empty cells (column order and empty cells ignored)."""
    cells = {k: v.strip() for k, v in row.items() if k and v is not None and v.strip()}
    canon = json.dumps(cells, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(canon.encode()).hexdigest()[:20]


def row_keys(
    rows: Sequence[Mapping[str, str]], columns: ExportColumns, file_name: str
) -> list[RunKeys]:
    """The keys of every row of one export, in order."""
    id_col, name_col = columns.roles.get("run_id"), columns.roles.get("run_name")
    names = Counter((row.get(name_col) or "").strip() for row in rows) if name_col else Counter()
    legacy_col = id_col or "ID"
    out = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        scope = "/".join(
            f"{logical_name(c)}={value}"
            for c in columns.scope
            if (value := (row.get(c) or "").strip())
        )
        keys: list[tuple[str, str]] = []
        run_id = (row.get(id_col) or "").strip() if id_col else ""
        if run_id:
            keys.append(("id", f"tracker:{scope}:id:{run_id}"))
        name = (row.get(name_col) or "").strip() if name_col else ""
        if name and names[name] == 1:  # a name two rows share identifies neither
            keys.append(("name", f"tracker:{scope}:name:{name}"))
        keys.append(("row", f"tracker:{scope}:row:{row_hash(row)}"))
        old_id = (row.get(legacy_col) or "").strip()
        legacy = [f"tracker-csv:{file_name}:{old_id or f'line{line}'}"]
        if old_id:
            legacy.append(f"tracker-legacy-id:{old_id}")
        out.append(RunKeys(tuple(keys), tuple(legacy)))
    return out


def known_runs(con: duckdb.DuckDBPyConnection, rows: Sequence[RunKeys]) -> list[str | None]:
    """For each row, the run of the store it is (by the rule of the module docstring)."""
    wanted = sorted({k for r in rows for _, k in r.keys} | {k for r in rows for k in r.legacy})
    found = dict(
        con.execute(
            "SELECT key, run_id FROM run_keys WHERE key IN (SELECT unnest(?::VARCHAR[]))",
            [wanted],
        ).fetchall()
    )
    kinds: dict[str, set[str]] = {}
    if found:
        for run_id, kind in con.execute(
            "SELECT DISTINCT run_id, kind FROM run_keys WHERE run_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [sorted(set(found.values()))],
        ).fetchall():
            kinds.setdefault(run_id, set()).add(kind)
    out: list[str | None] = []
    for row in rows:
        out.append(_match(row, found, kinds))
    return out


def _match(row: RunKeys, found: Mapping[str, str], kinds: Mapping[str, set[str]]) -> str | None:
    for key in row.legacy:
        if key in found:
            return found[key]
    mine = [kind for kind, _ in row.keys]
    for kind, key in row.keys:
        run_id = found.get(key)
        if run_id is None:
            continue
        stronger = {k for k in mine if _STRENGTH[k] < _STRENGTH[kind]}
        if not stronger & kinds.get(run_id, set()):  # no identity of its own says otherwise
            return run_id
    return None


def record_keys(con: duckdb.DuckDBPyConnection, pairs: Sequence[tuple[str, RunKeys]]) -> None:
    """Keep every key of ``(run_id, keys)``; a key another run holds already stays its."""
    values: dict[str, tuple[str, str]] = {}
    for run_id, keys in pairs:
        for kind, key in keys.keys:
            values.setdefault(key, (run_id, kind))
    if values:
        con.execute(
            "INSERT INTO run_keys SELECT * FROM (SELECT unnest(?::VARCHAR[]), "
            "unnest(?::VARCHAR[]), unnest(?::VARCHAR[])) ON CONFLICT DO NOTHING",
            [list(values), [v[0] for v in values.values()], [v[1] for v in values.values()]],
        )
