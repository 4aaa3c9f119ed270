"""Where mlsel keeps its data: every path of ``$MLSEL_HOME``, and the machine cache.

Layout of a home (``$MLSEL_HOME``, default ``~/.mlsel``; ``--home`` overrides it)::

    $MLSEL_HOME/
        experiments.duckdb        the experiment store
        runs/<run_id>/            artifacts of one run (weights, plots, metadata)
        rankers/<version>/        fitted meta-models
        searches/<fp>-<name>/     Optuna studies of `mlsel run`, for --resume
        exports/<run_id>/         runs exported for `mlsel serve` (ONNX + the REST service)
        weights/                  pretrained weights the user put there
        cache/ultralytics/        Ultralytics' settings and downloaded weights

The machine cache (``$MLSEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlsel``, else
``~/.cache/mlsel``) holds files derived from installed packages only, so every home on a
machine shares it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STORE_FILENAME", "Home", "machine_cache_dir", "resolve_home"]

STORE_FILENAME = "experiments.duckdb"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The mlsel home: ``home`` if given, else ``$MLSEL_HOME``, else ``~/.mlsel``."""
    if home is None or str(home) == "":
        home = os.environ.get("MLSEL_HOME") or Path.home() / ".mlsel"
    return Path(home).expanduser().resolve()


@dataclass(frozen=True)
class Home:
    """The folders and files of one mlsel home (nothing is created by asking)."""

    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Home:
        """The home ``home``, ``$MLSEL_HOME`` or ``~/.mlsel`` (see :func:`resolve_home`)."""
        return cls(resolve_home(home))

    @classmethod
    def of_store(cls, store_file: str | os.PathLike[str]) -> Home:
        """The home whose store is ``store_file``."""
        return cls(Path(store_file).expanduser().absolute().parent)

    @property
    def store(self) -> Path:
        return self.root / STORE_FILENAME

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, run_id: str) -> Path:
        """Artifact folder of one run."""
        return self.runs / run_id

    @property
    def rankers(self) -> Path:
        return self.root / "rankers"

    def ranker(self, version: str) -> Path:
        """Folder of one fitted ranker."""
        return self.rankers / version

    @property
    def searches(self) -> Path:
        return self.root / "searches"

    def search(self, fingerprint: str, name: str) -> Path:
        """Folder of the search ``name`` on the dataset ``fingerprint``."""
        return self.searches / f"{fingerprint[:12]}-{name}"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def export(self, run_id: str) -> Path:
        """The export of one run that ``mlsel serve`` made (and reuses)."""
        return self.exports / run_id

    @property
    def datasets(self) -> Path:
        """Dataset versions made from labelled feedback: ``datasets/<model>/v<N>/``."""
        return self.root / "datasets"

    def dataset_version(self, name: str, version: int) -> Path:
        """The folder of version ``version`` of the feedback datasets of model ``name``."""
        return self.datasets / name / f"v{version}"

    @property
    def predictions(self) -> Path:
        """The prediction log's spool (what services wrote, before the store takes it)."""
        return self.root / "predictions"

    @property
    def weights(self) -> Path:
        """Pretrained weights the user put there (``<arch>.pth``, or the upstream file name)."""
        return self.root / "weights"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def ultralytics(self) -> Path:
        """Ultralytics' settings folder (``YOLO_CONFIG_DIR`` unless set) and its weights."""
        return self.cache / "ultralytics"


def machine_cache_dir() -> Path:
    """Machine-wide cache: ``$MLSEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlsel``, else
    ``~/.cache/mlsel``."""
    explicit = os.environ.get("MLSEL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mlsel"
