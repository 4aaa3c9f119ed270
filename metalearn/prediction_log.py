"""The prediction log's way into the store: a service's spool, and ``mlsel predict --log``.

A served model logs to its spool folder, ``$MLSEL_HOME/predictions/<model key>/`` (the key
is ``NAME@vN`` for a registered model, else the export's model id)::

    model.json          what ``mlsel serve --log`` served: model, model_version, run_id
    pending/*.jsonl     the service's records (``app.py``'s ``PredictionLog``), each file
                        whole: it is written under another name and renamed
    blobs/<h[:2]>/<h>   each upload's bytes, once, by their BLAKE2b hash

:func:`ingest_spool` brings one spool's pending files into the store and deletes them;
every record has its own ``prediction_id``, so a file brought in twice (a crash between
the insert and the delete, two ingesters at once) still gives one row per prediction.
:class:`SpoolIngester` does it every few seconds beside a running service, and once more
when it stops; :func:`ingest_all` takes every spool of the home, so what a killed service
wrote is not lost. :func:`log_file_predictions` logs what ``mlsel predict`` predicted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import MlselError
from mlsel.kernel.home import Home

if TYPE_CHECKING:
    from mlsel.experiment_store import PredictionRow
    from mlsel.experiment_store.store import Store

__all__ = [
    "MODEL_FILE",
    "SpoolIngester",
    "SpoolModel",
    "image_hash",
    "ingest_all",
    "export_identity",
    "ingest_spool",
    "log_file_predictions",
    "logged_model",
    "model_key",
    "spool_folder",
    "write_spool_model",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.json"
PENDING = "pending"
# Records taken into one store transaction: few sessions, bounded memory.
_ROWS_PER_INSERT = 5000


def image_hash(data: bytes) -> str:
    """The content hash of an image's bytes (as the embedding cache and the service take it)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class SpoolModel:
    """The model a spool folder logs for (its ``model.json``)."""

    model: str
    model_version: int | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_version": self.model_version, "run_id": self.run_id}


def logged_model(
    model_id: str,
    *,
    registry_name: str | None = None,
    registry_version: int | None = None,
    run_id: str | None = None,
) -> SpoolModel:
    """Whom predictions are logged for: the registered name and version when the model
    was named so, else its model id (a run id, or an export's ``model_id``)."""
    if registry_name:
        return SpoolModel(registry_name, registry_version, run_id)
    return SpoolModel(model_id, None, run_id)


def export_identity(folder: Path) -> tuple[str, str | None]:
    """``(model id, run id)`` of an export folder, from its ``metadata.json``."""
    try:
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return folder.name, None
    run_id = metadata.get("run_id")
    model_id = metadata.get("model_id") or run_id or folder.name
    return str(model_id), str(run_id) if run_id else None


def model_key(model: str, model_version: int | None) -> str:
    """The spool folder's name: ``NAME@vN`` for a registered version, else the model id."""
    return f"{model}@v{model_version}" if model_version is not None else model


def spool_folder(home: str | os.PathLike[str] | None, model: str, version: int | None) -> Path:
    """``$MLSEL_HOME/predictions/<model key>/`` (not created)."""
    return Home.resolve(home).predictions / model_key(model, version)


def write_spool_model(folder: Path, model: SpoolModel) -> Path:
    """Create the spool ``folder`` with its ``model.json`` (replaced whole)."""
    (folder / PENDING).mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILE
    tmp = target.with_name(f".{MODEL_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(model.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def _spool_model(folder: Path) -> SpoolModel | None:
    try:
        data = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None  # a service run without mlsel: each record names its model
    except (OSError, ValueError) as exc:
        logger.warning("%s is unreadable (%s): the records' own model ids are used", folder, exc)
        return None
    version = data.get("model_version")
    return SpoolModel(
        str(data["model"]),
        int(version) if version is not None else None,
        str(data["run_id"]) if data.get("run_id") else None,
    )


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
    return stamp


def _served_row(record: Mapping[str, Any], folder: Path, model: SpoolModel | None) -> PredictionRow:
    """One service record as a row (KeyError, TypeError, ValueError: not a record)."""
    from mlsel.experiment_store import PredictionRow

    probabilities = record.get("probabilities")
    classes = record.get("classes")
    blob = record.get("blob")
    return PredictionRow(
        prediction_id=str(record["prediction_id"]),
        model=model.model if model is not None else str(record["model"]),
        image_hash=str(record["image_hash"]),
        label=str(record["label"]),
        confidence=float(record["confidence"]),
        top_k=tuple((str(t["label"]), float(t["probability"])) for t in record["top_k"]),
        probabilities=None if probabilities is None else tuple(float(p) for p in probabilities),
        classes=None if classes is None else tuple(str(c) for c in classes),
        model_version=model.model_version if model is not None else None,
        run_id=model.run_id if model is not None else None,
        path=None,  # an upload's file name is not a path on this machine
        blob=str((folder / blob).resolve()) if blob else None,
        source="serve",
        predicted_at=_utc(record.get("predicted_at")),
    )


def _read_pending(path: Path, folder: Path, model: SpoolModel | None) -> list[PredictionRow]:
    rows = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:  # json.loads takes UTF-8 bytes; a line that is not raises a ValueError
            rows.append(_served_row(json.loads(line), folder, model))
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning(
                "skipped line %d of %s: not a prediction record (%s: %s)",
                number,
                path,
                type(exc).__name__,
                exc,
            )
    return rows


def ingest_spool(store: Store, folder: str | os.PathLike[str]) -> int:
    """Bring the pending files of the spool ``folder`` into ``store``, then delete them.

    Returns:
        The predictions new to the store.

    Raises:
        StoreError: the store cannot be written (the files stay, for the next time).
    """
    folder = Path(folder)
    model = _spool_model(folder)
    new = 0
    chunk: list[PredictionRow] = []
    done: list[Path] = []

    def flush() -> None:
        nonlocal new
        new += store.log_predictions(chunk)
        for path in done:
            path.unlink(missing_ok=True)  # another ingester may have taken it too
        chunk.clear()
        done.clear()

    for path in sorted((folder / PENDING).glob("*.jsonl")):
        try:
            chunk.extend(_read_pending(path, folder, model))
        except FileNotFoundError:
            continue  # taken by another ingester since the listing
        done.append(path)
        if len(chunk) >= _ROWS_PER_INSERT:
            flush()
    if done:
        flush()
    return new


def ingest_all(store: Store, home: str | os.PathLike[str] | None = None) -> int:
    """Bring every spool of ``home`` (``$MLSEL_HOME/predictions/*/``) into ``store``."""
    root = Home.resolve(home).predictions
    if not root.is_dir():
        return 0
    return sum(ingest_spool(store, folder) for folder in sorted(root.iterdir()) if folder.is_dir())


class SpoolIngester:
    """Ingest one spool folder every ``interval`` seconds in a thread, and once more on
    exit (a context manager around a running service).

    A failed ingest (the store locked or full) is logged and tried again next time; the
    files wait in the spool.
    """

    def __init__(self, store: Store, folder: Path, *, interval: float = 2.0) -> None:
        self.store = store
        self.folder = Path(folder)
        self.interval = interval
        self.ingested = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SpoolIngester:
        self._thread = threading.Thread(target=self._run, name="spool-ingester", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._once()  # what the service flushed as it stopped

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._once()

    def _once(self) -> None:
        try:
            self.ingested += ingest_spool(self.store, self.folder)
        except (MlselError, OSError) as exc:
            logger.warning("cannot bring the prediction log of %s in yet: %s", self.folder, exc)


def _file_hashes(rows: Sequence[Mapping[str, Any]]) -> Iterator[str | None]:
    for row in rows:
        try:
            yield image_hash(Path(row["path"]).read_bytes())
        except OSError as exc:  # gone since it was predicted
            logger.warning("not logged: cannot read %s again (%s)", row["path"], exc)
            yield None


def log_file_predictions(
    store: Store,
    rows: Sequence[Mapping[str, Any]],
    *,
    model: str,
    classes: Sequence[str],
    model_version: int | None = None,
    run_id: str | None = None,
) -> int:
    """Log the rows of ``FilePredictor.predict_files(..., probabilities=True)`` (``path``,
    ``label``, ``probability``, ``top_k``, ``probabilities``), each with the hash of its
    file's bytes.

    Returns:
        The predictions logged (a file that cannot be read again is left out, with a
        warning).
    """
    from mlsel.experiment_store import PredictionRow

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    logged = []
    for row, digest in zip(rows, _file_hashes(rows), strict=True):
        if digest is None:
            continue
        probabilities = row.get("probabilities")
        logged.append(
            PredictionRow(
                prediction_id=uuid.uuid4().hex,
                model=model,
                image_hash=digest,
                label=str(row["label"]),
                confidence=float(row["probability"]),
                top_k=tuple((str(t["label"]), float(t["probability"])) for t in row["top_k"]),
                probabilities=None if probabilities is None else tuple(probabilities),
                classes=tuple(classes) if probabilities is not None else None,
                model_version=model_version,
                run_id=run_id,
                path=str(Path(row["path"]).resolve()),
                source="predict",
                predicted_at=now,
            )
        )
    store.log_predictions(logged)
    return len(logged)
