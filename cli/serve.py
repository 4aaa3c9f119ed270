"""`mlsel serve`: a model as a REST service (FastAPI + ONNX Runtime) on this machine."""

from __future__ import annotations

import os
import signal
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from mlsel.cli._common import console, err_console, state
from mlsel.kernel.errors import ConfigError, invalid_parameter

if TYPE_CHECKING:
    from mlsel.metalearn.prediction_log import SpoolModel
    from mlsel.metalearn.serving import ServedModel

__all__ = ["register", "serve_command"]


def serve_command(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help="An export folder, a run id, `best` (with --dataset) or a search name.",
            show_default=False,
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes, each with its own model session.")
    ] = 1,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="The dataset `best` or a search name refers to.", show_default=False
        ),
    ] = None,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Record every prediction (and keep each upload) for `mlsel feedback export`; "
            "written off the request path, brought into the store every few seconds.",
        ),
    ] = False,
) -> None:
    """Serve a model over HTTP: POST /predict, GET /healthz, /readyz, /metadata, /docs.

    A run is exported first (ONNX, parity-checked, with the service's app.py) to
    $MLSEL_HOME/exports/<run_id>/, and that export is reused next time. With --log, the
    service spools its predictions to $MLSEL_HOME/predictions/<model>/ and this process
    brings them into the store while it serves, and once more when it stops.
    """
    from mlsel.trainers.service import require_service

    if not 1 <= port <= 65535:
        raise invalid_parameter("port", "serve", "an int in [1, 65535]", port)
    if workers < 1:
        raise invalid_parameter("workers", "serve", "an int in [1, inf)", workers)
    require_service()
    _check_port(host, port)
    from mlsel.metalearn.serving import servable_folder

    served = servable_folder(model, dataset=dataset, home=state(ctx).home)
    for line in served.done:
        err_console.print(f"[dim]{line}[/]", highlight=False)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    console.print(
        f"serving {served.how} on http://{shown}:{port} (docs: http://{shown}:{port}/docs); "
        "Ctrl-C stops it",
        highlight=False,
    )
    import uvicorn

    # the service reads its folder from MODEL_DIR; every worker inherits it
    os.environ["MODEL_DIR"] = str(served.folder)
    if not log:
        os.environ.pop(LOG_DIR_VARIABLE, None)  # --log alone decides
        uvicorn.run("app:app", app_dir=str(served.folder), host=host, port=port, workers=workers)
        return
    from mlsel.experiment_store.store import Store
    from mlsel.metalearn.prediction_log import SpoolIngester, spool_folder, write_spool_model

    home = state(ctx).home
    who = _logged_model(served)
    spool = spool_folder(home, who.model, who.model_version)
    write_spool_model(spool, who)
    os.environ[LOG_DIR_VARIABLE] = str(spool)
    err_console.print(f"[dim]logging predictions to {spool}[/]", highlight=False)
    ingester = SpoolIngester(Store.open(home), spool)
    # uvicorn re-raises the SIGTERM it stopped on once it is done: it must end the
    # ingester's `with` (its last ingest), not the process
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        with ingester:
            uvicorn.run(
                "app:app", app_dir=str(served.folder), host=host, port=port, workers=workers
            )
    except (_Stopped, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    err_console.print(
        f"[dim]logged {ingester.ingested} predictions of {spool.name}[/]", highlight=False
    )


class _Stopped(Exception):
    """SIGTERM arrived while serving with --log."""


def _stopped(signum: int, frame: object) -> None:
    raise _Stopped


LOG_DIR_VARIABLE = "PREDICTION_LOG_DIR"  # the service's setting (app.py)


def _logged_model(served: ServedModel) -> SpoolModel:
    """Whom the served model's predictions are logged for."""
    from mlsel.metalearn.prediction_log import export_identity, logged_model

    _, run_id = export_identity(served.folder)
    return logged_model(
        served.model_id,
        registry_name=served.registry_name,
        registry_version=served.registry_version,
        run_id=served.run_id or run_id,
    )


def _check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything is exported."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Pass another --port "
                "(or --host)."
            ) from None


def register(app: typer.Typer) -> None:
    """Add `mlsel serve` to the root app."""
    app.command("serve")(serve_command)
