"""CSV manifest layout: a file with ``path,label`` rows (optional ``split`` column)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mlsel.kernel.errors import DatasetError
from mlsel.profilers._files import is_image_name
from mlsel.profilers._raw import SPLIT_ALIASES, RawDataset, RawItem

__all__ = ["find_manifest", "read_csv_manifest"]

_PATH_COLUMNS = ("path", "file", "filename", "image", "image_path", "filepath")
_LABEL_COLUMNS = ("label", "class", "category", "target", "class_name")


_HEADER_BYTES = 65536  # enough for any header line


def _header_columns(path: Path) -> list[str]:
    """The lower-cased header of a CSV, read leniently (any bytes): to find manifests."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
    except OSError:
        return []
    first_line = head.decode("utf-8-sig", errors="replace").splitlines()[:1]
    first = next(csv.reader(first_line), [])
    return [c.strip().lower() for c in first]


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _not_text(manifest: Path, what: str) -> DatasetError:
    return DatasetError(
        f"The CSV manifest {manifest} is not a text file ({what}). Save it as a UTF-8 CSV "
        "with a 'path,label' header line."
    )


def _decode(manifest: Path, data: bytes) -> tuple[str, str]:
    """The text of a manifest, and a warning when it is not UTF-8 ('' when it is).

    UTF-8 (with or without a byte-order mark) is read first; a file that is not UTF-8 is
    read as Latin-1 (Windows cp1252), as spreadsheets on Windows save it.

    Raises:
        DatasetError: the file is not text (a NUL byte, or bytes neither decodes).
    """
    if b"\x00" in data:
        raise _not_text(manifest, f"a NUL byte at line {_line_of(data, data.index(0))}")
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        line = _line_of(exc.object, exc.start)
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{exc.object[exc.start]:02x} at line {_line_of(exc.object, exc.start)}"
        raise _not_text(manifest, f"{where} is neither UTF-8 nor Latin-1") from None
    return text, (
        f"{manifest.name} is not UTF-8 (line {line}); it was read as Latin-1 (cp1252). Check "
        "its labels and save it as UTF-8."
    )


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


def _read_bytes(manifest: Path) -> bytes:
    try:
        return manifest.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"Cannot read the CSV manifest {manifest}: {exc.strerror or exc}. Check the file "
            "and its permissions."
        ) from None


def read_csv_manifest(manifest: Path) -> RawDataset:
    """Read a manifest; paths are relative to the manifest's folder (or absolute).

    A header is required: a path column (``path``, ``file``, ``image``...) and a label
    column (``label``, ``class``...); a ``split`` column is optional. Rows with a missing
    label, a missing file or a non-image file are skipped and named in a warning.

    The file is read as UTF-8, or as Latin-1 (cp1252) with a warning when it is not UTF-8.

    Raises:
        DatasetError: the file cannot be read, is not text or not CSV, or its header
            names no path or no label column.
    """
    base = manifest.parent
    text, encoding_warning = _decode(manifest, _read_bytes(manifest))
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        columns = [c.strip().lower() for c in next(rows, [])]
        body = list(enumerate(rows, start=2))
    except csv.Error as exc:
        raise DatasetError(
            f"The CSV manifest {manifest} cannot be parsed at line {rows.line_num}: {exc}. "
            "Fix that line."
        ) from None
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
    for lineno, row in body:
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
    warnings = [encoding_warning] if encoding_warning else []
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
