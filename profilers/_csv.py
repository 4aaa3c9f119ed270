"""CSV manifest layout: a file with ``path,label`` rows (optional ``split`` column)."""

from __future__ import annotations

import csv
from pathlib import Path

from mlsel.kernel.errors import DatasetError
from mlsel.profilers._files import is_image_name
from mlsel.profilers._raw import SPLIT_ALIASES, RawDataset, RawItem

__all__ = ["find_manifest", "read_csv_manifest"]

_PATH_COLUMNS = ("path", "file", "filename", "image", "image_path", "filepath")
_LABEL_COLUMNS = ("label", "class", "category", "target", "class_name")


def _header_columns(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        first = next(csv.reader(handle), [])
    return [c.strip().lower() for c in first]


def find_manifest(folder: Path) -> Path | None:
    """The one CSV in ``folder`` whose header names a path and a label column."""
    found = [
        p
        for p in sorted(folder.glob("*.csv"))
        if _pick(_header_columns(p), _PATH_COLUMNS) is not None
        and _pick(_header_columns(p), _LABEL_COLUMNS) is not None
    ]
    return found[0] if len(found) == 1 else None


def _pick(columns: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in columns:
            return columns.index(name)
    return None


def read_csv_manifest(manifest: Path) -> RawDataset:
    """Read a manifest; paths are relative to the manifest's folder (or absolute).

    A header is required: a path column (``path``, ``file``, ``image``...) and a label
    column (``label``, ``class``...); a ``split`` column is optional. Rows with a missing
    label, a missing file or a non-image file are skipped and named in a warning.

    Raises:
        DatasetError: the header names no path or no label column.
    """
    base = manifest.parent
    columns = _header_columns(manifest)
    path_col, label_col = _pick(columns, _PATH_COLUMNS), _pick(columns, _LABEL_COLUMNS)
    split_col = _pick(columns, ("split", "subset", "fold"))
    if path_col is None or label_col is None:
        raise DatasetError(
            f"The CSV manifest {manifest} must have a header with a path column "
            f"({', '.join(_PATH_COLUMNS)}) and a label column ({', '.join(_LABEL_COLUMNS)}). "
            f"Got columns {columns} instead. Add a header line such as 'path,label'."
        )
    items: list[RawItem] = []
    bad: list[str] = []
    ignored: list[str] = []
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(path_col, label_col):
                bad.append(f"line {lineno}: {len(row)} field(s)")
                continue
            rel, label = row[path_col].strip(), row[label_col].strip()
            path = (base / rel).resolve() if not Path(rel).is_absolute() else Path(rel)
            if not label:
                bad.append(f"line {lineno}: no label")
            elif not is_image_name(rel):
                ignored.append(str(path))
            elif not path.is_file():
                bad.append(f"line {lineno}: missing file {rel}")
            else:
                split = None
                if split_col is not None and len(row) > split_col:
                    split = SPLIT_ALIASES.get(row[split_col].strip().lower())
                items.append(RawItem(str(path), label, split))
    warnings: list[str] = []
    if bad:
        warnings.append(
            f"{len(bad)} bad row(s) in {manifest.name} were skipped: {'; '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else "")
        )
    return RawDataset(
        layout="csv",
        task="classify",
        base=str(base),
        classes=sorted({i.label for i in items}),
        items=items,
        warnings=warnings,
        ignored_files=ignored,
    )
