"""Which trained model a user means: ``resolve_model("best", dataset="digits")``.

``mlsel export``, ``mlsel predict`` and ``mlsel serve`` name a model by one string,
resolved in this order:

1. a path to an exported folder (``model.onnx`` and ``predict.py``): used as it is;
2. a run id (``mlsel runs`` lists them);
3. ``best`` with a dataset (a path, a fingerprint or its prefix, or a name): the model
   kept by the latest search on that dataset;
4. a registered model, ``NAME@alias`` or ``NAME@vN`` (a bare ``NAME`` is
   ``NAME@champion``; ``mlsel models`` lists them);
5. a search name (``mlsel run --name``, or the start time it was given).

The model a search keeps is recomputed from its study and the store exactly as the
search chose it (:func:`~mlsel.metalearn.search.leaderboard.best_row`: the lowest
validation loss among the trials within one standard error of the top score). A kept
linear probe is the one the search refitted on train + val (``<run>/final/``), the model
``mlsel run`` hands over; a run id and a registered model always mean the run's own model,
so that its validation split stays held out for the retraining loop's comparisons.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.kernel.errors import ConfigError, StoreError
from mlsel.kernel.home import Home

if TYPE_CHECKING:
    from mlsel.experiment_store.store import Store
    from mlsel.kernel.records import RunRecord

__all__ = ["ResolvedModel", "ValidationImages", "resolve_model", "validation_images"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model found by :func:`resolve_model`.

    ``run_id``, ``run_dir`` and ``record`` are set for a trained run, ``exported`` for an
    export folder; ``how`` says in words how the name was resolved.
    """

    run_id: str | None
    run_dir: Path | None
    record: RunRecord | None
    how: str
    exported: Path | None = None
    registry_name: str | None = None
    registry_version: int | None = None

    @property
    def is_exported(self) -> bool:
        return self.exported is not None


@dataclass(frozen=True)
class ValidationImages:
    """The run's validation images for a parity check (empty: none to hand, see ``note``)."""

    paths: tuple[Path, ...] = ()
    dataset_name: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def is_export_folder(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``mlsel export``."""
    return (path / "model.onnx").is_file() and (path / "predict.py").is_file()


def _run(store: Store, home: Home, run_id: str, how: str, *, kept: bool = False) -> ResolvedModel:
    """The run ``run_id``; a search's ``kept`` run is its model refitted on train + val
    when the search made one (as ``mlsel run`` hands it to ``--output``)."""
    from mlsel.metalearn.search.leaderboard import FINAL_DIR

    record = store.get_run(run_id)
    folder = Path(record.result.artifact_dir) if record.result.artifact_dir else home.run(run_id)
    if not folder.is_dir():
        folder = home.run(run_id)
    if kept and (folder / FINAL_DIR / "model.pt").is_file():
        folder, how = folder / FINAL_DIR, f"{how}, refitted on train + val"
    return ResolvedModel(run_id, folder, record, how)


def _dataset_fingerprints(store: Store, dataset: str) -> list[tuple[str, str]]:
    """``(fingerprint, name)`` of the datasets ``dataset`` names: a path, a fingerprint
    (or a prefix of 6 characters or more) or a name."""
    if os.path.exists(dataset):
        from mlsel.profilers import read_dataset

        read = read_dataset(dataset)
        return [(read.fingerprint, read.name)]
    frame = store.datasets_frame()
    out = []
    for fingerprint, name in zip(frame["fingerprint"], frame["name"], strict=True):
        prefix = len(dataset) >= 6 and str(fingerprint).startswith(dataset)
        if dataset in (fingerprint, name) or prefix:
            out.append((str(fingerprint), str(name or "")))
    return out


def _search_best(store: Store, folder: Path, what: str) -> str:
    """The run id of the model the search in ``folder`` kept."""
    from mlsel.metalearn.search.leaderboard import best_row, leaderboard, validation_losses
    from mlsel.metalearn.search.study import open_study

    rows = leaderboard(open_study(folder))
    top = next((r for r in rows if r.run_id and r.score is not None), None)
    n_val = 0
    if top is not None and top.run_id:
        n_val = int(store.get_run(top.run_id).result.metrics.get("n_val", 0) or 0)
    best = best_row(rows, val_losses=validation_losses(store, rows), n_val=n_val)
    if best is None or not best.run_id:
        raise ConfigError(f"{what} has no trial that finished with a score: no model to use.")
    return best.run_id


def resolve_model(
    spec: str, *, dataset: str | None, home: str | os.PathLike[str] | None
) -> ResolvedModel:
    """The model named by ``spec`` (see the module's docstring for the order).

    Raises:
        ConfigError: nothing is named so; the message lists what was tried.
    """
    from mlsel.experiment_store.store import Store
    from mlsel.metalearn.search.study import JOURNAL, latest_search, search_dir

    path = Path(spec).expanduser()
    if path.is_dir() and is_export_folder(path):
        return ResolvedModel(None, None, None, f"the export in {path}", exported=path.resolve())
    where = Home.resolve(home)
    store = Store.open(where.root)
    try:
        return _run(store, where, spec, f"run {spec}")
    except StoreError:
        pass
    if spec == "best":
        if not dataset:
            raise ConfigError(
                "`best` needs the dataset: pass --dataset DATASET (its path, fingerprint or name)."
            )
        found = _dataset_fingerprints(store, dataset)
        for fingerprint, name in found:
            latest = latest_search(where.root, fingerprint)
            if latest is not None:
                folder = search_dir(where.root, fingerprint, latest)
                run_id = _search_best(store, folder, f"Search {latest!r}")
                how = f"run {run_id}, the best of the latest search {latest!r} on {name}"
                return _run(store, where, run_id, how, kept=True)
        known = ", ".join(name or fp for fp, name in found) or "no dataset of that name"
        raise ConfigError(
            f"There is no search on dataset {dataset!r} ({known}) in {where.root}, so no "
            "`best` model. Run `mlsel run DATASET` first, or name a run id (`mlsel runs`)."
        )
    registered = _registered(store, where, spec)
    if registered is not None:
        return registered
    fingerprints = [fp for fp, _ in _dataset_fingerprints(store, dataset)] if dataset else None
    matches = sorted(
        p
        for p in where.searches.glob(f"*-{spec}")
        if (p / JOURNAL).is_file()
        and p.name.split("-", 1)[1] == spec
        and (fingerprints is None or any(p.name.startswith(fp[:12]) for fp in fingerprints))
    )
    if len(matches) > 1:
        raise ConfigError(
            f"{len(matches)} searches are named {spec!r} (on datasets "
            f"{', '.join(p.name.split('-', 1)[0] for p in matches)}). Pass --dataset."
        )
    if matches:
        folder = matches[0]
        run_id = _search_best(store, folder, f"Search {spec!r}")
        how = f"run {run_id}, the best of search {spec!r}"
        return _run(store, where, run_id, how, kept=True)
    raise ConfigError(
        f"No model named {spec!r}: it is not an export folder (model.onnx and predict.py), "
        f"a run id in {where.store}, `best` with --dataset, a registered model (`mlsel "
        f"models`), nor a search name in {where.searches}. `mlsel runs` lists the run ids."
    )


def _registered(store: Store, home: Home, spec: str) -> ResolvedModel | None:
    """``NAME@alias``, ``NAME@vN`` or a bare ``NAME`` (its champion), when registered.

    Raises:
        ConfigError: ``spec`` has an ``@`` but names no registered version.
    """
    from mlsel.experiment_store import CHAMPION

    name, _, which = spec.partition("@")
    if not which and name not in store.registry.names():
        return None
    version = store.registry.get(name, which or CHAMPION)
    how = f"{version.ref} ({'@'.join((name, which or CHAMPION))}, run {version.run_id})"
    found = _run(store, home, version.run_id, how)
    return replace(found, registry_name=name, registry_version=version.version)


def validation_images(
    resolved: ResolvedModel, *, dataset: str | None, home: str | os.PathLike[str] | None
) -> ValidationImages:
    """The validation split of the run's dataset, read from ``dataset`` (a path) when
    given, else from the path the store keeps; empty, with a note, when neither is there
    or the dataset changed since the run.

    Raises:
        ConfigError: ``dataset`` is a folder of another dataset than the run's.
    """
    from mlsel.experiment_store.store import Store
    from mlsel.profilers import read_dataset

    record = resolved.record
    if record is None:
        return ValidationImages(notes=("an export folder has no run to compare with",))
    given = dataset if dataset and os.path.exists(dataset) else None
    name = None
    if given is None:
        frame = Store.open(Home.resolve(home).root).datasets_frame()
        for fingerprint, known_name, known_path in zip(
            frame["fingerprint"], frame["name"], frame["path"], strict=True
        ):
            if fingerprint == record.dataset:
                name, given = known_name, known_path
        if not given or not os.path.exists(given):
            return ValidationImages(
                dataset_name=name,
                notes=(
                    "the store keeps no readable path of the run's dataset; pass --dataset "
                    "PATH to check parity on its validation images",
                ),
            )
    read = read_dataset(given)
    if read.fingerprint != record.dataset:
        message = (
            f"{given} is not the dataset run {record.run_id} was trained on (fingerprint "
            f"{read.fingerprint}, the run's {record.dataset})"
        )
        if dataset and os.path.exists(dataset):
            raise ConfigError(f"{message}. Pass the run's dataset, or leave --dataset out.")
        return ValidationImages(dataset_name=name, notes=(f"{message}: it changed since.",))
    paths: Sequence[Path] = [Path(item.path) for item in read.split("val")]
    return ValidationImages(tuple(paths), read.name)
