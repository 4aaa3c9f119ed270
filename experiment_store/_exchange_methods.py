"""The store's import and export methods (a part of :class:`Store`, kept apart for length).

They open the store's sessions, then leave the work to :mod:`._exchange` (mlsel exports)
and :mod:`._tracker` (experiment-tracker CSV files).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._codec import utcnow

if TYPE_CHECKING:
    from mlsel.experiment_store._exchange import ImportReport
    from mlsel.experiment_store._tracker import TrackerMapping

__all__ = ["ExchangeMethods"]


class ExchangeMethods:
    """Export to Parquet and import exports and tracker CSVs (mixed into :class:`Store`)."""

    _session: Callable[..., Any]

    def export_parquet(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = True,
        exclude_datasets: Sequence[str] = (),
    ) -> dict[str, int]:
        """Write datasets, profiles, runs and epochs to one Parquet file (atomically: a
        failed export leaves no file, and an existing one stays whole).

        Args:
            path: the file to write.
            overwrite: replace an existing file; ``False`` refuses it (StoreError).
            exclude_datasets: fingerprints of datasets left out, with their profiles,
                runs and epochs (a leave-one-task-out home, or a share without them).

        Returns:
            Rows written by kind: ``dataset``, ``profile``, ``feature``, ``run``, ``epoch``.
        """
        from mlsel.experiment_store import _exchange

        with self._session(write=False, what="export") as con:
            return _exchange.export_parquet(
                con, Path(path), overwrite=overwrite, exclude_datasets=exclude_datasets
            )

    def import_file(self, path: str | os.PathLike[str], *, dry_run: bool = False) -> ImportReport:
        """Add the runs of an mlsel export that are not in the store yet (then checkpoint,
        so no large ``.wal`` file is left beside the store). With ``dry_run``, only say
        what would be added: nothing is written."""
        from mlsel.experiment_store import _exchange

        source_file = _exchange.check_export_file(Path(path))
        return self._import(
            "import",
            dry_run,
            lambda con, dry: _exchange.import_export(con, source_file, utcnow(), dry_run=dry),
        )

    def import_tracker_csv(
        self,
        path: str | os.PathLike[str],
        mapping: TrackerMapping | None = None,
        *,
        fmt: str = "auto",
        dry_run: bool = False,
    ) -> ImportReport:
        """Add the runs of an experiment-tracker CSV export (W&B, MLflow ``search_runs``
        or UI download; one row a run) that the store lacks, by the tracker's own run
        identity; then checkpoint, as :meth:`import_file` does.

        Args:
            path: the CSV file.
            mapping: column names overriding what is found from the header.
            fmt: ``auto`` (from the header), ``wandb``, ``mlflow``, ``mlflow-ui`` or
                ``tracker-csv``.
            dry_run: only say what would be added (nothing is written).
        """
        from mlsel.experiment_store import _tracker

        parsed = _tracker.read_tracker_csv(Path(path), mapping, fmt)
        return self._import(
            "import tracker runs",
            dry_run,
            lambda con, dry: _tracker.write_tracker_runs(con, parsed, utcnow(), dry_run=dry),
        )

    def _import(
        self, what: str, dry_run: bool, write: Callable[[Any, bool], ImportReport]
    ) -> ImportReport:
        """``write(con, dry_run)`` in a read-only session (a dry run) or a writing one
        that checkpoints after."""
        if dry_run:
            with self._session(write=False, what="check an import") as con:
                return write(con, True)
        with self._session(write=True, what=what, checkpoint=True) as con:
            return write(con, False)

    def import_any(
        self,
        path: str | os.PathLike[str],
        mapping: TrackerMapping | None = None,
        *,
        fmt: str = "auto",
        dry_run: bool = False,
    ) -> ImportReport:
        """Import an mlsel export or a tracker CSV, whichever ``path`` is (``fmt="auto"``:
        a Parquet file is an mlsel export, anything else a tracker CSV)."""
        from mlsel.experiment_store import _tracker

        if fmt == "auto":
            fmt = "mlsel" if _tracker.is_parquet(Path(path)) else "auto"
        if fmt == "mlsel":
            return self.import_file(path, dry_run=dry_run)
        return self.import_tracker_csv(path, mapping, fmt=fmt, dry_run=dry_run)
