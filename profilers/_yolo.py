"""Ultralytics/YOLO detection layout: ``data.yaml``, ``images/``, ``labels/``.

Accepted shapes: a ``data.yaml`` (keys ``path``, ``train``, ``val``, ``test``, ``names``;
each split a folder of images or a ``.txt`` list of image paths); or, without YAML,
``images/`` + ``labels/`` (flat or with split sub-folders) or ``<split>/images`` +
``<split>/labels`` (the Roboflow export). A label file sits where the image does with
``images`` replaced by ``labels`` and the extension by ``.txt``; each line is
``class cx cy w h`` normalised to [0, 1] (polygons are turned into their bounding box).

Labels are checked, not guessed at: a line with the wrong number of fields, a field that
is not a finite number, a class that is not an index into the names, a width or height
that is not positive, or a box reaching outside the image raises one ``DatasetError``
naming the file and line (and how many more bad lines there are). A box past an edge by
at most ``_SLACK`` (a thousandth of the side, e.g. ``1.0000001`` from float rounding) is
clipped to the edge silently.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from mlsel.kernel.dataset import Box
from mlsel.kernel.errors import DatasetError
from mlsel.profilers._checks import name_some
from mlsel.profilers._files import list_images
from mlsel.profilers._raw import SPLIT_ALIASES, RawDataset, RawItem

__all__ = ["find_data_yaml", "looks_like_yolo", "read_yolo"]

# How far (a share of the image side) a box may reach past an edge and still be clipped
# to it without a word: the rounding of coordinates written with 3 to 6 decimals, and under
# one pixel up to 1000 px. A box reaching further is an error, not a guess.
_SLACK = 1e-3


def find_data_yaml(root: Path) -> Path | None:
    """``root`` itself when it is a YAML file, else the YAML in it that has ``names``.

    Raises:
        DatasetError: ``data.yaml`` (or ``data.yml``) is there but is not valid YAML;
            other YAML files that cannot be read are passed over.
    """
    if root.is_file():
        return root if root.suffix.lower() in (".yaml", ".yml") else None
    candidates = [root / "data.yaml", root / "data.yml", *sorted(root.glob("*.y*ml"))]
    for candidate in candidates:
        quiet = candidate.stem.lower() != "data"  # another YAML may be any config file
        if candidate.is_file() and "names" in _load_yaml(candidate, quiet=quiet):
            return candidate
    return None


def _yaml_problem(exc: Exception) -> str:
    """``"<problem> at line L, column C"`` of a YAML error, on one line."""
    import yaml

    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return " ".join(str(exc).split())
    mark = exc.problem_mark
    text = f"{exc.problem or 'invalid YAML'} at line {mark.line + 1}, column {mark.column + 1}"
    if exc.context and exc.context_mark is not None and exc.context_mark.line != mark.line:
        text += f" ({exc.context} opened at line {exc.context_mark.line + 1})"
    return text


def _load_yaml(path: Path, *, quiet: bool = False) -> dict[str, Any]:
    """The mapping in a YAML file (``{}`` when it holds none).

    Raises:
        DatasetError: the file cannot be read or is not valid YAML (unless ``quiet``).
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        if quiet:
            return {}
        raise DatasetError(
            f"Cannot read the YOLO data file {path}: {exc.strerror or exc}. Check the file "
            "and its permissions."
        ) from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        if quiet:
            return {}
        problem = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else None
        raise DatasetError(
            f"The YOLO data file {path} is not valid YAML: {problem or _yaml_problem(exc)}. "
            "Fix the YAML there, or remove the file to read images/ and labels/ without it."
        ) from None
    return data if isinstance(data, dict) else {}


def _split_dirs(root: Path) -> dict[str, Path]:
    """Image folders per split (``None`` key for a flat ``images/``)."""
    images = root / "images"
    if images.is_dir():
        subs: dict[str, Path] = {}
        for child in sorted(images.iterdir()):
            split = SPLIT_ALIASES.get(child.name.lower())
            if child.is_dir() and split and split not in subs:
                subs[split] = child
        return subs or {"": images}
    found = {}
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        split = SPLIT_ALIASES.get(child.name.lower())
        if split and (child / "images").is_dir() and split not in found:
            found[split] = child / "images"
    return found


def looks_like_yolo(root: Path) -> bool:
    """A data YAML with ``names``, or image folders with ``labels`` next to them."""
    if find_data_yaml(root) is not None:
        return True
    dirs = _split_dirs(root)
    return bool(dirs) and any(_label_dir(d).is_dir() for d in dirs.values())


def _label_dir(image_dir: Path) -> Path:
    parts = list(image_dir.parts)
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = "labels"
    return Path(*parts)


def label_path(image: str) -> str:
    """Where Ultralytics looks for the label file of ``image``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def _names(data: dict[str, Any]) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    return []


def _images_of(entry: str, base: Path) -> list[Path]:
    target = Path(entry) if Path(entry).is_absolute() else base / entry
    if target.is_dir():
        return list_images(target)[0]
    if target.is_file() and target.suffix == ".txt":
        lines = target.read_text(encoding="utf-8").split()
        return [
            (base / line).resolve() if not Path(line).is_absolute() else Path(line)
            for line in lines
        ]
    raise DatasetError(
        f"The YOLO split entry {entry!r} points at {target}, which is neither a folder of "
        "images nor a .txt list of images. Fix the path in the data YAML."
    )


def _numbers(fields: list[str]) -> list[float] | str:
    """The fields as finite numbers, or what is wrong with the first that is not one."""
    values = []
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            return f"{field!r} is not a number"
        if not math.isfinite(value):
            return f"{field!r} is not a finite number"
        values.append(value)
    return values


def _parse_line(fields: list[str], n_classes: int) -> Box | str:
    """One label line as a box, or what is wrong with it (see ``_SLACK`` for the edges)."""
    numbers = _numbers(fields)
    if isinstance(numbers, str):
        return numbers
    if len(numbers) != 5 and (len(numbers) < 7 or len(numbers) % 2 == 0):
        return f"{len(fields)} fields, expected 5 (class cx cy w h) or a polygon"
    cls, values = numbers[0], numbers[1:]
    if cls != int(cls):
        return f"class {fields[0]!r} is not a whole number"
    if cls < 0 or (n_classes and cls >= n_classes):
        known = f"0..{n_classes - 1}, {n_classes} names" if n_classes else "0 or more"
        return f"class {int(cls)} is not a class index ({known})"
    if len(values) == 4:
        cx, cy, w, h = values
        if w <= 0 or h <= 0:
            return f"width {fields[3]} and height {fields[4]} must both be positive"
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        where = f"box x {x1:.4g}..{x2:.4g}, y {y1:.4g}..{y2:.4g}"
    else:  # a segmentation polygon: its bounding box
        xs, ys = values[0::2], values[1::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        where = f"polygon x {x1:.4g}..{x2:.4g}, y {y1:.4g}..{y2:.4g}"
    if min(x1, y1) < -_SLACK or max(x2, y2) > 1 + _SLACK:
        return f"{where} reaches outside the image (coordinates are normalised to [0, 1])"
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, 1.0), min(y2, 1.0)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return f"{where} has no area inside the image"
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    return (int(cls), round(cx, 6), round(cy, 6), round(w, 6), round(h, 6))


def _parse_labels(text: str, n_classes: int) -> tuple[list[Box], list[tuple[int, str]]]:
    """The boxes of a label file, and ``(line number, problem)`` for each bad line.

    ``n_classes`` 0 (no names known) checks only that classes are not negative.
    """
    boxes: list[Box] = []
    bad: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        parsed = _parse_line(fields, n_classes)
        if isinstance(parsed, str):
            bad.append((lineno, parsed))
        else:
            boxes.append(parsed)
    return boxes, bad


def _bad_labels_error(bad: list[tuple[str, int, str]]) -> DatasetError:
    """One line naming the first bad label line, and how many more there are."""
    path, lineno, problem = bad[0]
    more = ""
    if len(bad) > 1:
        files = len({p for p, _, _ in bad})
        more = f" (and {len(bad) - 1} more: {len(bad)} bad lines in {files} file(s))"
    return DatasetError(
        f"Bad YOLO label in {path}, line {lineno}: {problem}{more}. Fix the label file(s): "
        "each line is 'class cx cy w h' (or a polygon) with a class index into the names "
        "and the box inside the image."
    )


def read_yolo(root: Path) -> RawDataset:
    """Read a YOLO detection dataset (see the module docstring for the shapes).

    Raises:
        DatasetError: a label line is bad (named by file and line; see the module
            docstring), or the data YAML or a split entry in it is unusable.
    """
    yaml_path = find_data_yaml(root)
    folder = root.parent if root.is_file() else root
    per_split: dict[str | None, list[Path]] = {}
    names: list[str] = []
    if yaml_path is not None:
        data = _load_yaml(yaml_path)
        names = _names(data)
        base = Path(data.get("path") or yaml_path.parent)
        base = base if base.is_absolute() else (yaml_path.parent / base).resolve()
        if not base.is_dir():  # the YAML was written on another machine
            base = yaml_path.parent
        for key in ("train", "val", "test"):
            entries = data.get(key) or []
            for entry in [entries] if isinstance(entries, str) else entries:
                per_split.setdefault(key, []).extend(_images_of(str(entry), base))
    if not per_split:
        for split_name, image_dir in _split_dirs(folder).items():
            per_split[split_name or None] = list_images(image_dir)[0]
    if not names:
        classes_txt = next(
            (p for p in (folder / "classes.txt", folder / "labels" / "classes.txt") if p.is_file()),
            None,
        )
        if classes_txt is not None:
            names = [n.strip() for n in classes_txt.read_text().splitlines() if n.strip()]
    items: list[RawItem] = []
    bad_lines: list[tuple[str, int, str]] = []
    used_labels: set[str] = set()
    for split, images in per_split.items():
        for image in dict.fromkeys(images):
            lp = label_path(str(image))
            boxes: list[Box] = []
            if os.path.isfile(lp):
                used_labels.add(os.path.abspath(lp))
                with open(lp, encoding="utf-8", errors="replace") as handle:
                    boxes, bad = _parse_labels(handle.read(), len(names))
                bad_lines.extend((lp, lineno, problem) for lineno, problem in bad)
            items.append(RawItem(str(image), "", split, tuple(boxes)))
    if bad_lines:
        raise _bad_labels_error(bad_lines)
    if not names:
        top = max((b[0] for i in items for b in i.boxes), default=-1)
        names = [str(i) for i in range(top + 1)]
    warnings: list[str] = []
    orphans = _orphan_labels(per_split, used_labels)
    if orphans:
        warnings.append(f"{len(orphans)} label file(s) have no image: {name_some(orphans, 3)}.")
    return RawDataset(
        layout="yolo",
        task="detect",
        base=str(folder),
        classes=names,
        items=items,
        warnings=warnings,
        data_yaml=str(yaml_path) if yaml_path else None,
    )


def _orphan_labels(per_split: dict[str | None, list[Path]], used: set[str]) -> list[str]:
    dirs = {
        _label_dir(img.parent)
        for imgs in per_split.values()
        for img in imgs
        if "images" in img.parent.parts
    }
    orphans = []
    for label_dir in sorted(dirs):
        if label_dir.is_dir():
            for txt in sorted(label_dir.glob("*.txt")):
                if txt.name != "classes.txt" and os.path.abspath(txt) not in used:
                    orphans.append(txt.name)
    return orphans
