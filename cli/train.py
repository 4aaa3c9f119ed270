"""`mlsel train`: train one configuration on a dataset and log the run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlsel.cli._common import console, print_json, state

if TYPE_CHECKING:
    from mlsel.kernel.records import Config, RunResult

__all__ = ["register", "train_command"]

_METRICS = (
    ("f1_macro", "macro F1"),
    ("accuracy", "accuracy"),
    ("top5_accuracy", "top-5 accuracy"),
    ("precision_macro", "macro precision"),
    ("recall_macro", "macro recall"),
    ("f1_weighted", "weighted F1"),
    ("precision_weighted", "weighted precision"),
    ("recall_weighted", "weighted recall"),
    ("mAP50-95", "mAP50-95"),
    ("mAP50", "mAP50"),
)


def _config(
    arch: str,
    backend: str | None,
    pretrained: bool,
    weights: Path | None,
    finetune: str | None,
    options: dict[str, Any],
) -> Config:
    from mlsel.kernel.records import Config

    backend = backend or ("ultralytics" if arch.startswith("yolo") else "torchvision")
    given = {k: v for k, v in options.items() if v is not None}
    if finetune == "linear":  # a probe is fitted once: one "epoch"
        given.setdefault("epochs", 1)
    return Config(
        backend=backend,
        arch=arch,
        pretrained=("imagenet" if weights is None else str(weights)) if pretrained else None,
        finetune=finetune or ("head" if pretrained else "full"),
        **given,
    )


def _result_json(run_id: str, result: RunResult) -> dict[str, Any]:
    return {"run_id": run_id, **result.to_dict()}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def train_command(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (class folders, YOLO or CSV).")],
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            "-a",
            help="Architecture, e.g. efficientnet_lite0, resnet18, small_cnn, yolo11n-cls.",
        ),
    ],
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend", help="torchvision, ultralytics or timm (default: from the arch)."
        ),
    ] = None,
    pretrained: Annotated[
        bool, typer.Option("--pretrained/--no-pretrained", help="Start from ImageNet weights.")
    ] = True,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="A weights file to start from (implies --pretrained)."),
    ] = None,
    finetune: Annotated[
        str | None,
        typer.Option(
            "--finetune",
            help=(
                "linear (a probe on frozen embeddings), head, partial or full (default: head "
                "if pretrained, else full)."
            ),
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default 10).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate (default 1e-4).")] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option(
            "--weight-decay",
            help="L2 strength (default 1e-4); for linear, C = 1 / (weight_decay * n_train).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Batch (default 8).")
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option("--image-size", help="Training resolution in pixels (default 224)."),
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(
            "--augment",
            help="none, light (flips, small rotations, colour jitter) or strong (default light).",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda:N.")] = "auto",
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default 0).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Train one model on DATASET, log the run, and save its weights and plots."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from mlsel.experiment_store.store import Store
    from mlsel.profilers import read_dataset
    from mlsel.trainers import check_config, train

    home = state(ctx).home
    config = _config(
        arch,
        backend,
        pretrained or weights is not None,
        weights,
        finetune,
        {
            "epochs": epochs,
            "lr": lr,
            "weight_decay": weight_decay,
            "batch_size": batch_size,
            "image_size": image_size,
            "augment": augment,
            "seed": seed,
        },
    )
    check_config(config)  # a bad option is one line before the dataset is read
    data = read_dataset(dataset)
    store = Store.open(home)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
        transient=False,
    )
    with progress:
        task = progress.add_task(
            f"{config.arch} on {data.name}", total=config.epochs, info="preparing"
        )

        def on_epoch(record: Any) -> None:
            progress.update(
                task,
                advance=1,
                info=(
                    f"loss {_fmt(record.train_loss, 3)} val {_fmt(record.val_loss, 3)} "
                    f"score {_fmt(record.score, 3)}"
                ),
            )

        run_id, result = train(
            data,
            config,
            store=store,
            device=device,
            on_epoch=on_epoch,
            weights=str(weights) if weights else None,
        )
    if as_json:
        print_json(_result_json(run_id, result))
        return
    table = Table(title=f"run {run_id}: {result.status}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label in _METRICS:
        if key in result.metrics:
            table.add_row(label, _fmt(result.metrics[key]))
    table.add_row("wall seconds", _fmt(result.wall_seconds, 1))
    table.add_row("seconds / epoch", _fmt(result.seconds_per_epoch, 2))
    table.add_row("peak host MB", _fmt(result.peak_host_mb, 0))
    if result.peak_gpu_mb is not None:
        table.add_row("peak GPU MB", _fmt(result.peak_gpu_mb, 0))
    console.print(table)
    console.print(f"run id: [bold]{run_id}[/]")
    console.print(f"artifacts: {result.artifact_dir}")


def register(app: typer.Typer) -> None:
    """Add `mlsel train` to the root app."""
    app.command("train")(train_command)
