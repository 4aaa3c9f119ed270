"""``mlsel feedback import``: labelled files of an export folder into a new dataset version.

The new version ``$MLSEL_HOME/datasets/NAME/vN/`` (``N`` = the last + 1) holds::

    manifest.csv    path,label,split,origin,image_hash: every item of the base (absolute
                    paths, their split and origin kept), then the new files (relative)
    files/<label>/  copies of the new files
    lineage.json    the base, the batch, the model, the counts, the held-out images

The base is the latest version of ``NAME``'s datasets, or before the first import the data
the model was trained on. Each image of the export's class folders is matched by content:

* an image new to the base is added; ``holdout`` of them (stratified by label, seeded by
  ``seed`` and the images' hashes) go to ``val``, held out for evaluation and never
  trained on, the rest to ``train``; the base's ``val`` stays ``val``;
* an image of a label-issues export relabels that training item when put in another
  class's folder (and confirms its label when put back in its own); it keeps its split;
* an image already in the base is skipped, so importing the same folder twice makes one
  version: the second import is a no-op that says so (files labelled since are imported).

Files left in ``unsure/`` are not imported. The version is written into a temporary
sibling folder, read back with ``read_dataset`` (so it is a dataset every command reads,
with the fingerprint it records) and renamed into place; a failure leaves nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ConfigError, DatasetError, StoreError, invalid_parameter
from mlsel.kernel.home import Home
from mlsel.metalearn.feedback import (
    UNSURE,
    Base,
    FeedbackModel,
    ImportReport,
    base_dataset,
    file_hash,
    read_export_manifest,
    resolve_feedback_model,
)

if TYPE_CHECKING:
    from mlsel.experiment_store import Store

__all__ = ["Plan", "holdout_split", "import_feedback", "plan_import"]

logger = logging.getLogger(__name__)

VERSION_COLUMNS = ("path", "label", "split", "origin", "image_hash")


@dataclass(frozen=True)
class Labelled:
    """One image in a class folder of the export."""

    path: Path
    label: str
    image_hash: str


@dataclass
class Plan:
    """What importing an export folder would change in its base."""

    new: list[Labelled] = field(default_factory=list)
    relabels: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (from, to)
    known_files: list[Path] = field(default_factory=list)  # in the base already
    left_in_unsure: int = 0
    ignored: int = 0  # not image files
    new_classes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.new) + len(self.relabels)


def plan_import(
    folder: Path,
    rows: Sequence[Mapping[str, str]],
    model: FeedbackModel,
    base: Base,
    *,
    allow_new_classes: bool = False,
) -> Plan:
    """Match the images of ``folder``'s class folders against ``base``.

    Raises:
        ConfigError: a folder that is not a class of the model holds images (without
            ``allow_new_classes``), or one image is in two class folders.
    """
    from mlsel.profilers import IMAGE_EXTENSIONS

    known = set(model.classes) | set(base.dataset.classes)
    issues = {row["image_hash"]: row for row in rows if row.get("given_label")}
    by_hash: dict[str, list[Any]] = defaultdict(list)
    for item in base.dataset.items:
        by_hash[item.digest].append(item)
    plan = Plan()
    seen: dict[str, Labelled] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        plan.ignored += len(files) - len(images)
        if sub.name == UNSURE:
            plan.left_in_unsure = len(images)
            continue
        if images and sub.name not in known:
            if not allow_new_classes:
                raise ConfigError(
                    f"{sub} is not a class of {model.ref} ({', '.join(sorted(known))}): move its "
                    "files into a class folder, or add --allow-new-classes to add the class."
                )
            plan.new_classes.append(sub.name)
        for path in images:
            labelled = Labelled(path, sub.name, file_hash(path))
            twin = seen.get(labelled.image_hash)
            if twin is not None:
                if twin.label != labelled.label:
                    raise ConfigError(
                        f"{twin.path} and {path} are the same image in two class folders "
                        f"({twin.label}, {labelled.label}): keep one of them."
                    )
                continue
            seen[labelled.image_hash] = labelled
            _match(plan, labelled, by_hash.get(labelled.image_hash, []), issues)
    return plan


def _match(
    plan: Plan, labelled: Labelled, items: list[Any], issues: Mapping[str, Mapping[str, str]]
) -> None:
    if not items:
        plan.new.append(labelled)
        return
    plan.known_files.append(labelled.path)
    row = issues.get(labelled.image_hash)
    if row is None:
        if all(item.label != labelled.label for item in items):
            logger.info(
                "%s is in the dataset as %s already: skipped", labelled.path, items[0].label
            )
        return
    targets = [item for item in items if item.path == row.get("original")]
    for item in targets or [item for item in items if item.split == "train"]:
        if item.label != labelled.label:
            plan.relabels[item.path] = (item.label, labelled.label)


def _order_key(seed: int, image_hash: str) -> str:
    return hashlib.blake2b(f"{seed}:{image_hash}".encode(), digest_size=8).hexdigest()


def holdout_split(entries: Sequence[tuple[str, str]], fraction: float, seed: int) -> set[str]:
    """The hashes of ``(image hash, label)`` entries held out: ``round(fraction * N)`` in
    all, shared out between the labels in proportion (largest remainders first), keeping
    one image of each label in ``train`` where it can. Depends only on the seed and the
    images, not on their order."""
    groups: dict[str, list[str]] = defaultdict(list)
    for image_hash, label in entries:
        groups[label].append(image_hash)
    total = round(fraction * len(entries))
    quota = {label: math.floor(fraction * len(members)) for label, members in groups.items()}
    rest = sorted(
        groups,
        key=lambda c: (-(fraction * len(groups[c]) - quota[c]), _order_key(seed, c)),
    )
    for keep_one in (True, False):
        for label in rest:
            if sum(quota.values()) >= total:
                break
            if quota[label] < len(groups[label]) - (1 if keep_one else 0):
                quota[label] += 1
    held: set[str] = set()
    for label, members in groups.items():
        ordered = sorted(members, key=lambda h: _order_key(seed, h))
        held.update(ordered[: quota[label]])
    return held


def import_feedback(
    spec: str,
    folder: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str] | None = None,
    holdout: float = 0.2,
    seed: int = 0,
    allow_new_classes: bool = False,
    base: str | None = None,
) -> ImportReport:
    """Merge the labelled files of export folder ``folder`` into a new dataset version.

    Args:
        spec: ``NAME`` (its champion) or ``NAME@alias``: whose datasets, and whose classes.
        holdout: the share of the new images held out (``val``).
        seed: seed of that choice.
        allow_new_classes: accept a folder that is not a class of the model as a new class.
        base: a dataset path to build on instead of the latest version.

    Raises:
        ConfigError: a bad option, not an export folder, no labelled file, or a folder
            that is not a class.
        DatasetError: the base cannot be read or changed, or a new file is not an image.
        StoreError: another import made the same version meanwhile.
    """
    from mlsel.experiment_store import Store

    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 1:
        raise invalid_parameter("holdout", "feedback import", "a float in [0, 1)", holdout)
    where = Home.resolve(home)
    store = Store.open(where.root)
    model = resolve_feedback_model(store, spec)
    out = Path(folder).expanduser().absolute()
    rows = read_export_manifest(out) if out.is_dir() else None
    if rows is None:
        raise ConfigError(
            f"{out} is not a feedback export (no manifest.csv of `mlsel feedback export`): "
            f"export first with `mlsel feedback export {model.name} {out}`."
        )
    names = {row["model"].partition("@")[0] for row in rows}
    if names and names != {model.name}:
        raise ConfigError(
            f"{out} is an export of model {', '.join(sorted(names))}, not {model.name}."
        )
    batch = next((row["batch"] for row in rows if row.get("batch")), uuid.uuid4().hex[:12])
    found = base_dataset(store, model, base)
    plan = plan_import(out, rows, model, found, allow_new_classes=allow_new_classes)
    notes = _notes(plan)
    if not plan.changes:
        return _nothing_new(store, model, out, plan, found, batch, notes)
    held = holdout_split([(x.image_hash, x.label) for x in plan.new], float(holdout), seed)
    number = _next_version(store, where, model.name)
    final = where.dataset_version(model.name, number)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".v{number}.{os.getpid()}.{uuid.uuid4().hex[:6]}.partial")
    try:
        items = _write_version(tmp, found, plan, held, batch)
        lineage = _lineage(model, rows, found, plan, held, items, batch, number, holdout, seed)
        (tmp / "lineage.json").write_text(
            json.dumps(lineage, indent=2, default=str), encoding="utf-8"
        )
        fingerprint = _read_back(tmp, len(items))
        try:
            os.rename(tmp, final)
        except OSError as exc:
            raise StoreError(
                f"{final} exists already ({exc.strerror}): another import made it meanwhile. "
                "Run the import again."
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        store.registry.save_dataset_version(
            model.name,
            number,
            fingerprint,
            str(final),
            parent=found.dataset.fingerprint,
            lineage=lineage,
        )
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return ImportReport(
        name=model.name,
        version=number,
        path=str(final),
        fingerprint=fingerprint,
        batch=batch,
        new=dict(sorted(Counter(x.label for x in plan.new).items())),
        held_out=len(held),
        relabelled=len(plan.relabels),
        total=dict(sorted(Counter(label for _, label, _, _, _ in items).items())),
        base=found.ref,
        notes=tuple(notes),
    )


def _notes(plan: Plan) -> list[str]:
    notes = []
    if plan.left_in_unsure:
        notes.append(f"{plan.left_in_unsure} file(s) left in {UNSURE}/ were not imported")
    if plan.known_files and plan.new:
        notes.append(
            f"{len(plan.known_files)} labelled file(s) are in the dataset already: skipped"
        )
    if plan.ignored:
        notes.append(f"{plan.ignored} file(s) that are not images were ignored")
    if plan.new_classes:
        notes.append(f"new class(es): {', '.join(plan.new_classes)}")
    return notes


def _nothing_new(
    store: Store,
    model: FeedbackModel,
    out: Path,
    plan: Plan,
    base: Base,
    batch: str,
    notes: list[str],
) -> ImportReport:
    """The report of an import that adds nothing, or the error of a folder with no label."""
    if not plan.known_files:
        raise ConfigError(
            f"No labelled image in {out}: move each file from {UNSURE}/ into its class folder "
            f"({', '.join(model.classes)}), then import."
        )
    done = [
        v.ref
        for v in store.registry.dataset_versions(model.name)
        if v.lineage.get("batch") == batch
    ]
    what = (
        f"batch {batch} was imported already ({', '.join(done)})"
        if done
        else (f"every labelled image is in {base.ref} already")
    )
    notes.insert(0, f"nothing new to import: {what}")
    return ImportReport(
        name=model.name,
        version=None,
        path=None,
        fingerprint=base.dataset.fingerprint,
        batch=batch,
        new={},
        held_out=0,
        relabelled=0,
        total=dict(sorted(Counter(item.label for item in base.dataset.items).items())),
        base=base.ref,
        notes=tuple(notes),
    )


def _next_version(store: Store, home: Home, name: str) -> int:
    """The last version + 1, past any folder a crashed import left unrecorded."""
    numbers = [v.version for v in store.registry.dataset_versions(name)]
    folder = home.datasets / name
    if folder.is_dir():
        numbers += [
            int(p.name[1:]) for p in folder.iterdir() if p.name[1:].isdigit() and p.name[0] == "v"
        ]
    return max(numbers, default=0) + 1


def _write_version(
    tmp: Path, base: Base, plan: Plan, held: set[str], batch: str
) -> list[tuple[str, str, str, str, str]]:
    """Copy the new files and write ``manifest.csv``; returns its rows."""
    items: list[tuple[str, str, str, str, str]] = []
    for item in base.dataset.items:
        label = plan.relabels.get(item.path, (item.label, item.label))[1]
        items.append(
            (item.path, label, item.split, base.origins.get(item.path, "original"), item.digest)
        )
    for new in sorted(plan.new, key=lambda x: (x.label, x.path.name)):
        target_dir = tmp / "files" / new.label
        target_dir.mkdir(parents=True, exist_ok=True)
        name = new.path.name
        if (target_dir / name).exists():
            name = f"{new.image_hash}-{name}"
        shutil.copyfile(new.path, target_dir / name)
        split = "val" if new.image_hash in held else "train"
        items.append(
            (f"files/{new.label}/{name}", new.label, split, f"feedback:{batch}", new.image_hash)
        )
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(VERSION_COLUMNS)
    writer.writerows(items)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "manifest.csv").write_text(text.getvalue(), encoding="utf-8")
    return items


def _read_back(folder: Path, expected: int) -> str:
    """The fingerprint of the version in ``folder``, read as every command reads it.

    Raises:
        DatasetError: it does not read back whole (a new file is not a readable image).
    """
    from mlsel.profilers import read_dataset

    dataset = read_dataset(folder)
    if len(dataset.items) != expected or dataset.layout != "csv":
        lost = ", ".join(dataset.skipped[:3]) or f"{expected - len(dataset.items)} file(s)"
        raise DatasetError(
            f"The new dataset version does not read back whole ({len(dataset.items)} of "
            f"{expected} images; unreadable: {lost}): remove or replace those files, then "
            "import again."
        )
    return dataset.fingerprint


def _lineage(
    model: FeedbackModel,
    rows: Sequence[Mapping[str, str]],
    base: Base,
    plan: Plan,
    held: set[str],
    items: list[tuple[str, str, str, str, str]],
    batch: str,
    number: int,
    holdout: float,
    seed: int,
) -> dict[str, Any]:
    first = rows[0] if rows else {}
    return {
        "name": model.name,
        "version": number,
        "batch": batch,
        "model": model.ref,
        "exported_by": first.get("model"),
        "strategy": first.get("strategy"),
        "exported_at": first.get("exported_at"),
        "imported_at": datetime.now(timezone.utc)
        .replace(tzinfo=None)
        .isoformat(timespec="seconds"),
        "base": {
            "ref": base.ref,
            "version": base.version.version if base.version else None,
            "fingerprint": base.dataset.fingerprint,
            "path": base.dataset.root,
        },
        "counts": {
            "new": dict(sorted(Counter(x.label for x in plan.new).items())),
            "train": len(plan.new) - len(held),
            "held_out": len(held),
            "relabelled": len(plan.relabels),
            "already_in": len(plan.known_files) - len(plan.relabels),
            "left_in_unsure": plan.left_in_unsure,
            "total": len(items),
            "val": sum(1 for item in items if item[2] == "val"),
        },
        "holdout": {"fraction": holdout, "seed": seed, "ids": sorted(held)},
        "relabelled": [
            {"path": path, "from": old, "to": new}
            for path, (old, new) in sorted(plan.relabels.items())
        ],
        "new_classes": plan.new_classes,
    }
