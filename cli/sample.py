"""``mlsel sample``: write an offline sample dataset as image folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlsel.cli._common import console

__all__ = ["register", "sample_command"]

_NAMES = "digits, mnist, fashion-mnist, shapes, shapes-detect"


def sample_command(
    name: Annotated[str, typer.Argument(help=f"Which sample: {_NAMES}.")],
    directory: Annotated[Path, typer.Argument(help="New (or empty) folder to write into.")],
    classes: Annotated[
        int | None, typer.Option("--classes", help="Keep the first N classes.")
    ] = None,
    per_class: Annotated[
        int | None, typer.Option("--per-class", help="Images per class (drawn at random).")
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Side of the written images in pixels.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the selection.")] = 0,
) -> None:
    """Write sample NAME into DIRECTORY (real data that ships offline, or synthetic shapes)."""
    from mlsel.profilers._files import list_images
    from mlsel.profilers.samples import write_sample

    out = write_sample(name, directory, classes=classes, per_class=per_class, size=size, seed=seed)
    images, _ = list_images(out)
    console.print(f"wrote {len(images):,} images of sample [bold]{name}[/] to {out}")


def register(app: typer.Typer) -> None:
    """Add ``mlsel sample`` to the root app."""
    app.command("sample")(sample_command)
