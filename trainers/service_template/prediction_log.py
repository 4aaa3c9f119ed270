"""The prediction log of the service (on when ``PREDICTION_LOG_DIR`` is set; see SERVICE.md).

Each answered image becomes one JSON record (its content hash, top-k, the whole
probability vector, the model, the time) in ``<dir>/pending/<pid>-<token>-<seq>.jsonl``,
and its bytes are kept once, by hash, in ``<dir>/blobs/``. A request only queues its
predictions; a thread writes them in batches, off the request path. Files appear whole
(written under a temporary name, then renamed), so a reader never sees half a batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PredictionLog"]

logger = logging.getLogger("uvicorn.error")  # as app.py: uvicorn shows it


class PredictionLog:
    """The prediction log of one service process: a queue the requests feed, and a
    thread that writes it to ``folder`` in batches (see the module docstring).

    ``add`` is all a request does; ``start`` and ``stop`` (which writes what is still
    queued) belong to the service's lifespan. Writing never raises: a failure drops the
    batch, is counted in ``dropped`` and logged once until a write succeeds again.
    """

    BATCH_RECORDS = 256
    BATCH_SECONDS = 0.5
    # Queued upload bytes beyond this are dropped rather than held: a stalled disk must
    # not grow the process without end.
    MAX_QUEUED_BYTES = 128 * 1024 * 1024

    def __init__(self, folder: Path, model: str) -> None:
        self.folder = Path(folder)
        self.model = model
        self.logged = 0
        self.dropped = 0
        self._queue: queue.Queue[_Batch | None] = queue.Queue()
        self._lock = threading.Lock()
        self._queued_bytes = 0
        self._failing = False
        self._seq = 0
        # the pid and a token of this start: a restarted process (pid 1 in a container)
        # never reuses the name of a file that the ingester has not read yet
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._thread: threading.Thread | None = None

    def add(
        self,
        uploads: Sequence[tuple[str | None, bytes]],
        probabilities: np.ndarray,
        ranked: Sequence[Sequence[Mapping[str, Any]]],
        classes: Sequence[str],
    ) -> None:
        """Queue the predictions of one request (one record per upload)."""
        size = sum(len(data) for _, data in uploads)
        with self._lock:
            if self._queued_bytes + size > self.MAX_QUEUED_BYTES:
                self.dropped += len(uploads)
                self._warn(f"more than {self.MAX_QUEUED_BYTES} bytes are waiting to be written")
                return
            self._queued_bytes += size
        stamp = datetime.now(timezone.utc).replace(tzinfo=None).isoformat()
        self._queue.put(_Batch(list(uploads), probabilities, list(ranked), list(classes), stamp))

    def start(self) -> None:
        for sub in ("pending", "blobs"):
            try:
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._warn(f"cannot create {self.folder / sub}: {exc}")
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        logger.info("logging predictions to %s", self.folder)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("the prediction log did not finish writing within %.0f s", timeout)
        self._thread = None

    def counts(self) -> dict[str, Any]:
        return {
            "dir": str(self.folder),
            "logged": self.logged,
            "dropped": self.dropped,
            "queued": self._queue.qsize(),
        }

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batches: list[_Batch] = []
            records = 0
            item = self._queue.get()  # wait for the first
            deadline = time.monotonic() + self.BATCH_SECONDS
            while True:
                if item is None:
                    stopping = True
                    break
                batches.append(item)
                records += len(item.uploads)
                if records >= self.BATCH_RECORDS:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if batches:
                self._write(batches, records)
        # anything put after the stop sentinel (a request that raced the shutdown)
        late = []
        while True:
            try:
                leftover = self._queue.get_nowait()
            except queue.Empty:
                break
            if leftover is not None:
                late.append(leftover)
        if late:
            self._write(late, sum(len(b.uploads) for b in late))

    def _write(self, batches: list[_Batch], records: int) -> None:
        size = sum(len(data) for b in batches for _, data in b.uploads)
        failure = None
        try:
            lines = [json.dumps(r, separators=(",", ":")) for r in self._records(batches)]
            self._seq += 1
            target = self.folder / "pending" / f"{self._prefix}-{self._seq:06d}.jsonl"
            _write_atomically(target, ("\n".join(lines) + "\n").encode("utf-8"))
        except OSError as exc:  # a full or read-only disk, a folder that went away
            failure = f"cannot write to {self.folder}: {exc}"
        except Exception as exc:  # a fault here must not end the thread nor fail requests
            logger.exception("prediction log: cannot write a batch")
            failure = f"cannot write a batch ({type(exc).__name__})"
        with self._lock:
            self._queued_bytes -= size
            if failure is None:
                self.logged += records
            else:
                self.dropped += records
        if failure is not None:
            self._warn(f"{failure}; dropping predictions")
        elif self._failing:
            logger.warning("the prediction log writes to %s again", self.folder)
            self._failing = False

    def _records(self, batches: list[_Batch]) -> list[dict[str, Any]]:
        """The JSON records of ``batches``, each upload's bytes written once as a blob."""
        out = []
        for batch in batches:
            for (name, data), row, top in zip(
                batch.uploads, batch.probabilities, batch.ranked, strict=True
            ):
                digest = hashlib.blake2b(data, digest_size=16).hexdigest()
                blob = f"blobs/{digest[:2]}/{digest}"
                self._write_blob(self.folder / blob, data)
                out.append(
                    {
                        "prediction_id": uuid.uuid4().hex,
                        "image_hash": digest,
                        "filename": name,
                        "label": str(top[0]["label"]),
                        "confidence": float(top[0]["probability"]),
                        "top_k": [
                            {"label": str(t["label"]), "probability": float(t["probability"])}
                            for t in top
                        ],
                        "probabilities": [float(p) for p in row],
                        "classes": batch.classes,
                        "model": self.model,
                        "predicted_at": batch.predicted_at,
                        "blob": blob,
                    }
                )
        return out

    @staticmethod
    def _write_blob(path: Path, data: bytes) -> None:
        if path.exists():  # the same bytes, by their hash
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)

    def _warn(self, message: str) -> None:
        if not self._failing:
            logger.warning("prediction log: %s (requests are still answered)", message)
        self._failing = True


@dataclass(frozen=True)
class _Batch:
    """What one request queues for the prediction log."""

    uploads: list[tuple[str | None, bytes]]
    probabilities: np.ndarray
    ranked: list[Sequence[Mapping[str, Any]]]
    classes: list[str]
    predicted_at: str


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` to ``path`` under a temporary name, renamed into place when whole."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
