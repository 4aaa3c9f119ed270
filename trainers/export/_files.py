"""The text files of an export: predict.py, the JSON files, requirements, README, model card."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlsel.kernel.records import DatasetProfile, RunRecord

__all__ = [
    "MARKER",
    "PREDICT_REQUIREMENTS",
    "input_format",
    "predict_source",
    "write_json",
    "write_model_card",
    "write_readme",
    "write_requirements",
]

#: The template's import of the decoder, replaced by the decoder's source.
MARKER = (
    "from mlsel.kernel._decode import (  # mlsel-export: decoder\n"
    "    ImageError,\n"
    "    apply_pixel_cap,\n"
    "    check_size,\n"
    "    decode,\n"
    "    describe,\n"
    "    load_pixels,\n"
    "    open_image,\n"
    "    quiet,\n"
    ")"
)

#: What ``predict.py`` imports outside the standard library: (import name, distribution).
PREDICT_REQUIREMENTS = (("onnxruntime", "onnxruntime"), ("numpy", "numpy"), ("PIL", "Pillow"))


def predict_source() -> str:
    """``predict.py``: the template with the kernel's decoder copied in, verbatim."""
    from mlsel.kernel import _decode

    here = Path(__file__).resolve().parent
    template = (here / "predict_template.py").read_text(encoding="utf-8")
    decoder = Path(_decode.__file__).read_text(encoding="utf-8")
    if MARKER not in template:  # a broken install, not a user error
        raise RuntimeError(f"{here / 'predict_template.py'} lost its decoder marker")
    body = decoder.replace("from __future__ import annotations\n", "", 1)
    block = (
        "# ---- the decoder of training: mlsel/kernel/_decode.py, copied verbatim ----\n"
        f"{body.rstrip()}\n"
        "# ---- end of the decoder ----\n"
    )
    return template.replace(MARKER, block, 1)


def _installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def mlsel_version() -> str:
    """The installed mlsel's version (``0+unknown`` in an uninstalled source tree)."""
    return _installed("mlsel") or "0+unknown"


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def input_format(size: int) -> dict[str, Any]:
    """What ``model.onnx`` takes and gives, as ``preprocessing.json`` and the metadata say."""
    return {
        "name": "images",
        "dtype": "uint8",
        "shape": ["N", size, size, 3],
        "layout": "NHWC, RGB, decoded and resized by predict.decode",
        "output": {"name": "probabilities", "dtype": "float32", "shape": ["N", "classes"]},
        "in_graph": "x / 255, (x - mean) / std per channel, NHWC -> NCHW, model, softmax",
    }


def write_requirements(folder: Path) -> None:
    """``requirements.txt``: what predict.py imports, at least the versions installed here."""
    lines = []
    for _, distribution in PREDICT_REQUIREMENTS:
        installed = _installed(distribution)
        lines.append(f"{distribution}>={installed}" if installed else distribution)
    (folder / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_readme(
    folder: Path,
    metadata: Mapping[str, Any],
    parity: Mapping[str, Any],
    transform: str | None = None,
) -> None:
    """``README.md`` with the exact commands to install and predict; ``transform`` is
    ``preprocessing.json``'s (``"ultralytics-classify"``: an Ultralytics classifier)."""
    size = metadata["input"]["shape"][1]
    classes = metadata["classes"]
    if transform == "ultralytics-classify":
        decoding = (
            "`predict.decode_ultralytics` prepares images as Ultralytics' classification\n"
            "predictor does (resize of the shortest edge, centre crop), in Pillow."
        )
        reference = "ONNX Runtime against Ultralytics' predictions with the .pt model"
    else:
        decoding = (
            "`predict.decode` is mlsel's training decoder, copied verbatim: "
            "images are read here as\nthey were in training."
        )
        reference = "ONNX Runtime against the PyTorch model"
    text = f"""# {metadata["model_id"]}: an image classifier exported by mlsel

{len(classes)} classes ({", ".join(classes[:12])}{", ..." if len(classes) > 12 else ""}),
trained on `{metadata["dataset"]["name"] or metadata["dataset"]["fingerprint"]}`,
{size} x {size} px. Needs Python 3.10+, onnxruntime, numpy and Pillow only.

```
pip install -r requirements.txt
python predict.py IMAGE_OR_FOLDER ... --top-k 3
python predict.py IMAGE_OR_FOLDER ... --json
```

As a library (with this folder on `sys.path`):

```python
from predict import Model

model = Model()  # or Model("path/to/this/folder")
model.predict(["image.jpg"], top_k=3)  # [[{{"label": ..., "probability": ...}}, ...]]
model.predict_proba(["image.jpg"])     # (N, {len(classes)}) numpy array
```

Files: `model.onnx` (input `images`, uint8 `(N, {size}, {size}, 3)` RGB; output
`probabilities`, `(N, {len(classes)})`; the scaling and normalisation are in the graph),
`classes.json`, `preprocessing.json`, `metadata.json`, `MODEL_CARD.md`, `predict.py`.
{decoding}

Parity checked at export: {parity["images"]} {parity["source"]}, top-1 agreement
{parity["top1_agreement"]:.4f}, largest probability difference {parity["max_abs_diff"]:.2e}
({reference}).
"""
    (folder / "README.md").write_text(text, encoding="utf-8")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_model_card(
    folder: Path,
    metadata: Mapping[str, Any],
    *,
    record: RunRecord | None,
    profile: DatasetProfile | None,
    confusion: Sequence[Sequence[int]] | None,
    parity: Mapping[str, Any],
    export_seconds: float,
) -> None:
    """``MODEL_CARD.md``: the dataset's profile, the config, metrics, confusion, hardware."""
    dataset = metadata["dataset"]
    lines = [
        f"# Model card: {metadata['model_id']}",
        "",
        f"- **Task**: image classification, {len(metadata['classes'])} classes",
        f"- **Dataset**: {dataset['name'] or '-'} (fingerprint `{dataset['fingerprint']}`)",
        f"- **Input**: {metadata['input']['shape'][1]} px square RGB",
        f"- **Exported**: {metadata['created']} by mlsel {metadata['mlsel_version']} "
        f"in {export_seconds:.1f} s",
        f"- **Parity**: {parity['images']} {parity['source']}, top-1 agreement "
        f"{parity['top1_agreement']:.4f}, max probability difference {parity['max_abs_diff']:.2e}",
        "",
        "## Dataset profile",
        "",
    ]
    if profile is not None and profile.features:
        lines += _table(
            ("feature", "value"),
            [(name, _number(float(v))) for name, v in sorted(profile.features.items())],
        )
        if profile.warnings:
            lines += ["", "Warnings: " + "; ".join(profile.warnings)]
    else:
        lines.append("No profile of this dataset in the store (run `mlsel profile` on it).")
    lines += ["", "## Configuration", ""]
    lines += _table(("parameter", "value"), sorted(metadata["config"].items()))
    lines += ["", "## Validation metrics", ""]
    final = metadata.get("final_fit")
    if final:
        lines += [
            f"Measured on val for the fit on train alone; the exported model is that config "
            f"refitted on {final['splits']} ({final['images']} images) once the search had "
            "chosen it.",
            "",
        ]
    lines += _table(("metric", "value"), [(k, _number(v)) for k, v in metadata["metrics"].items()])
    if confusion:
        lines += ["", "## Confusion matrix (rows: true class, columns: predicted)", ""]
        classes = metadata["classes"]
        lines += _table(
            ("", *classes), [(c, *row) for c, row in zip(classes, confusion, strict=False)]
        )
    lines += ["", "## Hardware and time", ""]
    timing: list[tuple[str, Any]] = []
    if record is not None:
        result = record.result
        timing += [
            ("wall seconds", _number(result.wall_seconds)),
            ("seconds per epoch", _number(result.seconds_per_epoch)),
            ("peak host MB", _number(result.peak_host_mb)),
            ("peak GPU MB", _number(result.peak_gpu_mb)),
        ]
        timing += sorted(result.hardware.items())
        timing += [(f"version {k}", v) for k, v in sorted(result.versions.items())]
        timing += [("started", record.started_at), ("finished", record.finished_at)]
    else:
        timing.append(("training", "not in the store: no record of hardware and time"))
    timing.append(
        (
            "exported on",
            f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})",
        )
    )
    lines += _table(("", ""), timing)
    (folder / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
