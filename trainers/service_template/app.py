"""REST service for one exported model: FastAPI and ONNX Runtime, without mlsel.

Written by ``mlsel export MODEL DIR --service`` (and by ``mlsel serve``) beside
``predict.py``, whose ``Model`` it serves: one ONNX Runtime session, loaded when the
service starts, shared by every request.

Endpoints::

    POST /predict    images as multipart/form-data (field ``files``, or ``file``), or one
                     image as the raw body (image/* or application/octet-stream);
                     ``?top_k=K`` labels per image
    GET  /healthz    the process is alive
    GET  /readyz     the model is loaded (503 until then)
    GET  /metadata   model id, classes, input size, metrics
    GET  /docs       the OpenAPI pages (the schema is at /openapi.json)

Settings, from environment variables::

    MODEL_DIR          the exported folder (default: this file's folder)
    MAX_UPLOAD_BYTES   the largest request body, in bytes (default 10 MiB)
    MAX_FILES          the most images in one request (default 32)
    TOP_K              labels per image when ?top_k is not given (default 3, at most the
                       number of classes)
    PREDICTION_LOG_DIR when set, every prediction is logged there (see below)

The prediction log. With ``PREDICTION_LOG_DIR`` set, a request only queues its
predictions; a background thread writes them, every half second or 256 records, as JSON
lines to ``<dir>/pending/<pid>-<start>-<seq>.jsonl`` (written under a temporary name, then
renamed, so a file that is there is whole), and each distinct upload once to
``<dir>/blobs/<hash[:2]>/<hash>`` (``hash``: BLAKE2b, 16 bytes, of the upload). A record
holds ``prediction_id``, ``image_hash``, ``filename``, ``label``, ``confidence``,
``top_k``, ``probabilities`` (in ``classes`` order), ``classes``, ``model``,
``predicted_at`` (UTC) and ``blob``. The queue is flushed when the service stops. A disk
that is full or read-only never fails a request: the records are dropped, a warning is
logged once, and ``/metadata`` counts them (``prediction_log``).

Run it with ``uvicorn app:app --host 0.0.0.0 --port 8000``, or ``python app.py [--host H]
[--port P] [--workers N]``. Every error is JSON ``{"error": "one line"}``: bad input is a
4xx (400 empty or malformed, 413 too large or too many files, 415 not an image, 422 a
wrong parameter), never a 500; a 500 is an internal fault, and the log has its traceback.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from predict import ImageError, Model
from prediction_log import PredictionLog
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

__all__ = ["PredictionLog", "Settings", "SettingsError", "app", "create_app"]

HERE = Path(__file__).resolve().parent
LOG_DIR_VARIABLE = "PREDICTION_LOG_DIR"
# uvicorn's own logger: its handlers and level apply, with one worker or many.
logger = logging.getLogger("uvicorn.error")


class SettingsError(ValueError):
    """An environment variable of the service holds an invalid value."""


@dataclass(frozen=True)
class Settings:
    """What the service is configured with (see the module docstring)."""

    model_dir: Path = HERE
    max_upload_bytes: int = 10 * 1024 * 1024
    max_files: int = 32
    top_k: int = 3
    prediction_log_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The settings of ``environ``; unset variables keep their defaults.

        Raises:
            SettingsError: a variable is set to something other than a positive integer.
        """
        defaults = cls()
        log_dir = environ.get(LOG_DIR_VARIABLE, "").strip()
        return cls(
            model_dir=Path(environ.get("MODEL_DIR") or defaults.model_dir),
            max_upload_bytes=_positive(environ, "MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
            max_files=_positive(environ, "MAX_FILES", defaults.max_files),
            top_k=_positive(environ, "TOP_K", defaults.top_k),
            prediction_log_dir=Path(log_dir) if log_dir else None,
        )


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise SettingsError(f"{name} must be a positive integer; got {text!r}. Fix or unset it.")
    return int(text)


class Label(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    filename: str | None
    top_k: list[Label]


class PredictResponse(BaseModel):
    model: str
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "empty or malformed body"),
        (413, "body too large, or too many files"),
        (415, "not an image, or an unsupported content type"),
        (422, "a wrong parameter (top_k)"),
        (503, "the model is not loaded yet"),
    )
}
# /predict reads its body itself (multipart or raw bytes): this tells /docs what it takes.
_PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        }
                    },
                    "required": ["files"],
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


class _Service:
    """The settings and the loaded model of one application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: Model | None = None
        self.model_id = ""
        self.log: PredictionLog | None = None

    def load(self) -> None:
        model = Model(self.settings.model_dir)
        metadata = model.metadata or {}
        self.model_id = str(
            metadata.get("model_id") or metadata.get("run_id") or self.settings.model_dir.name
        )
        self.model = model

    def ready(self) -> Model:
        if self.model is None:
            raise HTTPException(503, "the model is not loaded yet; retry when /readyz answers 200")
        return self.model

    def top_k(self, asked: int | None, n_classes: int) -> int:
        if asked is None:
            return min(self.settings.top_k, n_classes)
        if asked > n_classes:
            raise HTTPException(
                422,
                f"top_k must be an int in [1, {n_classes}] (the number of classes); got {asked}",
            )
        return asked


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment); the model loads at
    start-up (the application's lifespan)."""
    service = _Service(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(service.load)
        except Exception as exc:
            logger.error("cannot load the model from %s: %s", service.settings.model_dir, exc)
            raise
        logger.info(
            "model %s loaded from %s (%d classes, %d px)",
            service.model_id,
            service.settings.model_dir,
            len(service.ready().classes),
            service.ready().image_size,
        )
        if service.settings.prediction_log_dir is not None:
            service.log = PredictionLog(service.settings.prediction_log_dir, service.model_id)
            service.log.start()
        try:
            yield
        finally:
            if service.log is not None:
                await run_in_threadpool(service.log.stop)
                logger.info("prediction log: %s", service.log.counts())
                service.log = None
            service.model = None

    app = FastAPI(
        title="Image classifier",
        summary="An exported mlsel model served with ONNX Runtime.",
        lifespan=lifespan,
    )
    app.state.service = service
    _add_error_handlers(app)

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The model is loaded", responses={503: _ERRORS[503]})
    async def readyz() -> dict[str, str]:
        service.ready()
        return {"status": "ready", "model": service.model_id}

    @app.get("/metadata", summary="Model id, classes, input size, metrics")
    async def metadata() -> dict[str, Any]:
        model = service.ready()
        meta = model.metadata or {}
        return {
            "model": service.model_id,
            "classes": list(model.classes),
            "image_size": model.image_size,
            "metrics": meta.get("metrics", {}),
            "dataset": meta.get("dataset"),
            "config": meta.get("config"),
            "limits": {
                "max_upload_bytes": service.settings.max_upload_bytes,
                "max_files": service.settings.max_files,
                "top_k": min(service.settings.top_k, len(model.classes)),
            },
            "prediction_log": service.log.counts() if service.log is not None else None,
        }

    @app.post(
        "/predict",
        summary="Top-k labels of one or many images",
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_PREDICT_BODY,
    )
    async def predict(
        request: Request,
        top_k: Annotated[
            int | None, Query(ge=1, description="Labels per image (default: TOP_K).")
        ] = None,
    ) -> dict[str, Any]:
        model = service.ready()
        k = service.top_k(top_k, len(model.classes))
        uploads = await _uploads(request, service.settings)
        pixels = await run_in_threadpool(_decode_all, uploads, model)
        probabilities = await run_in_threadpool(model.probabilities, pixels)
        ranked = [model.top(row, k) for row in probabilities]
        if service.log is not None:
            service.log.add(uploads, probabilities, ranked, model.classes)
        return {
            "model": service.model_id,
            "predictions": [
                {
                    "filename": name,
                    "top_k": [
                        {"label": str(item["label"]), "probability": float(item["probability"])}
                        for item in labels
                    ],
                }
                for (name, _), labels in zip(uploads, ranked, strict=True)
            ],
        }

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers JSON ``{"error": "one line"}``."""

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": _one_line(str(exc.detail))}, exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
            problems.append(f"{where}: {error.get('msg')}; got {error.get('input')!r}")
        return JSONResponse({"error": _one_line("; ".join(problems) or "invalid request")}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": f"internal error ({type(exc).__name__}); the service log has the details"},
            500,
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed ``limit`` bytes: by its
    Content-Length, then by what actually arrives (a chunked body declares no length)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise HTTPException(400, f"Content-Length must be a number of bytes; got {declared!r}")
        if int(declared) > limit:
            raise HTTPException(
                413, f"the body is {int(declared)} bytes; at most {limit} are accepted"
            )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"the body is larger than {limit} bytes, the most accepted")
    return bytes(body)


async def _uploads(request: Request, settings: Settings) -> list[tuple[str | None, bytes]]:
    """``(filename, bytes)`` of every image of the request, in order."""
    body = await _read_body(request, settings.max_upload_bytes)
    if not body:
        raise HTTPException(
            400, "the body is empty: send images as multipart field 'files', or one as the body"
        )
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        return await _multipart(request, body, content_type, settings.max_files)
    if media in ("", "application/octet-stream") or media.startswith("image/"):
        return [(None, body)]
    raise HTTPException(
        415,
        f"content type {media!r} is not accepted: send multipart/form-data (field 'files'), "
        "or the image bytes as image/* or application/octet-stream",
    )


async def _multipart(
    request: Request, body: bytes, content_type: str, max_files: int
) -> list[tuple[str | None, bytes]]:
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise HTTPException(400, "the multipart content type names no boundary")
    # A boundary never occurs inside a part (RFC 2046): counting it counts the parts
    # before any is parsed; the closing delimiter is one more.
    parts = body.count(b"--" + found.group(1).encode("latin-1")) - 1
    if parts > max_files:
        raise HTTPException(413, f"too many files: {parts} in one request; at most {max_files}")

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=max_files, max_fields=max_files)
    except HTTPException as exc:  # Starlette's parser: 400 with its reason
        raise HTTPException(400, f"the multipart body cannot be parsed: {exc.detail}") from None
    try:
        uploads: list[tuple[str | None, bytes]] = []
        for field in ("files", "file"):
            for value in form.getlist(field):
                if isinstance(value, str):
                    raise HTTPException(
                        422, f"field {field!r} holds text, not a file: send each image as a file"
                    )
                data = await value.read()
                if not data:
                    raise HTTPException(400, f"file {value.filename!r} is empty")
                uploads.append((value.filename, data))
    finally:
        await form.close()
    if not uploads:
        raise HTTPException(400, "the multipart body has no image: send them in the field 'files'")
    return uploads


def _decode_all(uploads: list[tuple[str | None, bytes]], model: Model) -> np.ndarray:
    """Every upload decoded as the trained model's own predictor decodes it
    (``Model.decode``), as one uint8 batch; 415 for the first that is not a readable
    image, named."""
    pixels = []
    for index, (name, data) in enumerate(uploads):
        try:
            pixels.append(model.decode(data))
        except ImageError as exc:
            which = repr(name) if name else f"image {index + 1}"
            # the decoder words it for a file on disk: keep only the reason
            reason = str(exc).replace("Cannot decode image <image bytes>: ", "")
            reason = reason.removesuffix(" Remove or replace the file.")
            raise HTTPException(415, f"{which} is not a readable image: {reason}") from None
    return np.stack(pixels)


def _app_or_exit() -> FastAPI:
    try:
        return create_app()
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None


app = _app_or_exit()


def main(argv: list[str] | None = None) -> None:
    """``python app.py``: run this service with uvicorn."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the exported model over HTTP.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(
        f"{Path(__file__).stem}:app",
        app_dir=str(HERE),
        host=args.host,
        port=args.port,
        workers=args.workers,
    )


if __name__ == "__main__":
    main()
