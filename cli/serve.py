"""`mlsel serve`: a model as a REST service (FastAPI + ONNX Runtime) on this machine."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from mlsel.cli._common import console, err_console, state
from mlsel.kernel.errors import ConfigError, invalid_parameter

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
) -> None:
    """Serve a model over HTTP: POST /predict, GET /healthz, /readyz, /metadata, /docs.

    A run is exported first (ONNX, parity-checked, with the service's app.py) to
    $MLSEL_HOME/exports/<run_id>/, and that export is reused next time.
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
    uvicorn.run("app:app", app_dir=str(served.folder), host=host, port=port, workers=workers)


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
