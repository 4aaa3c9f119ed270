"""An Ultralytics classification run as ONNX: Ultralytics' own exporter, behind mlsel's input.

Ultralytics exports the classifier (float32 NCHW RGB in [0, 1], softmax probabilities
out: its ``Classify`` head applies the softmax in export mode). :func:`export_yolo_classifier`
puts a preamble in front of that graph, so ``model.onnx`` has the interface of every mlsel
export: uint8 NHWC ``images`` in, ``probabilities`` out. The preprocessing before the graph
(resize of the shortest edge, centre crop) is read from the predictor Ultralytics really
uses, and ``predict.decode_ultralytics`` repeats it with Pillow. Detection runs are refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlsel.kernel.errors import ExportError

__all__ = [
    "TRANSFORM",
    "classify_preprocessing",
    "export_yolo_classifier",
    "prepare_classifier",
    "ultralytics_task",
]

#: ``preprocessing.json``'s ``transform`` for an Ultralytics classifier.
TRANSFORM = "ultralytics-classify"

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")  # what predict.decode_ultralytics has


def ultralytics_task(run_dir: Path) -> str:
    """``"classify"`` or ``"detect"``, from the run's ``config.json`` (its architecture)."""
    config = run_dir / "config.json"
    arch = str(json.loads(config.read_text()).get("arch", "")) if config.is_file() else ""
    if not arch:
        raise ExportError(
            f"{run_dir} is an Ultralytics run without config.json, so its task is unknown. "
            "Export a run trained by mlsel."
        )
    return "classify" if arch.endswith("-cls") else "detect"


def classify_preprocessing(predictor: Any, probe: Any) -> dict[str, Any]:
    """What Ultralytics does to an image before its classifier, read from its predictor.

    ``predictor`` is a :class:`mlsel.trainers.ultralytics_backend.YoloPredictor`; it
    predicts ``probe`` (one image) once, so that Ultralytics sets its transforms up as it
    does for every prediction (the checkpoint's own, else ``classify_transforms(imgsz)``).

    Raises:
        ExportError: the transforms are not Resize(shortest edge), CenterCrop, ToTensor,
            Normalize, which ``predict.decode_ultralytics`` repeats.
    """
    import torchvision.transforms as T

    predictor.predict_proba([probe])
    transforms = predictor.model_.predictor.transforms
    steps = list(getattr(transforms, "transforms", ()))
    kinds = tuple(type(step) for step in steps)
    if kinds != (T.Resize, T.CenterCrop, T.ToTensor, T.Normalize):
        raise ExportError(
            f"{predictor.folder} preprocesses with {transforms!r}, which the export cannot "
            "repeat (it repeats Resize, CenterCrop, ToTensor, Normalize). Use Ultralytics' "
            "own exporter on weights/best.pt."
        )
    resize, crop, _, normalize = steps
    interpolation = resize.interpolation.value
    size = resize.size[0] if isinstance(resize.size, list | tuple) else resize.size
    crop_h, crop_w = crop.size
    if (
        interpolation not in _INTERPOLATIONS
        or resize.max_size is not None
        or not isinstance(size, int)
        or (isinstance(resize.size, list | tuple) and len(resize.size) != 1)
        or crop_h != crop_w
    ):
        raise ExportError(
            f"{predictor.folder} resizes with {resize!r} and crops with {crop!r}; the export "
            "repeats a square crop after a resize of the shortest edge only. Use Ultralytics' "
            "own exporter on weights/best.pt."
        )
    return {
        "image_size": int(crop_h),
        "transform": TRANSFORM,
        "resize": {"shortest_edge": int(size), "interpolation": interpolation},
        "crop": [int(crop_h), int(crop_w)],
        "mode": "RGB",
        "scale": 1 / 255,
        "mean": [float(v) for v in normalize.mean],
        "std": [float(v) for v in normalize.std],
    }


def _preamble(graph: Any, size: int, mean: Any, std: Any, first_input: str) -> list[Any]:
    """Nodes from uint8 NHWC ``images`` to the float NCHW tensor ``first_input``, in
    Ultralytics' order: ``/ 255``, ``(x - mean) / std``, channels first."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    constants = {
        "mlsel_pre/255": np.array(255.0, dtype=np.float32),
        "mlsel_pre/mean": np.asarray(mean, dtype=np.float32).reshape(1, 1, 1, -1),
        "mlsel_pre/std": np.asarray(std, dtype=np.float32).reshape(1, 1, 1, -1),
    }
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in constants.items())
    return [
        helper.make_node("Cast", ["images"], ["mlsel_pre/float"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["mlsel_pre/float", "mlsel_pre/255"], ["mlsel_pre/unit"]),
        helper.make_node("Sub", ["mlsel_pre/unit", "mlsel_pre/mean"], ["mlsel_pre/centred"]),
        helper.make_node("Div", ["mlsel_pre/centred", "mlsel_pre/std"], ["mlsel_pre/nhwc"]),
        helper.make_node("Transpose", ["mlsel_pre/nhwc"], [first_input], perm=[0, 3, 1, 2]),
    ]


def _rename(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def export_yolo_classifier(
    weights: Path, preprocessing: Mapping[str, Any], classes: int, path: Path
) -> None:
    """Export ``weights`` (an Ultralytics classifier's ``best.pt``) to ``path``.

    Ultralytics exports a copy in a temporary folder (it writes beside the weights; the
    run folder is never written), ``simplify=False`` (no onnxslim), a dynamic batch.

    Raises:
        ExportError: the exported graph does not end in the softmax of ``classes``
            probabilities.
    """
    import onnx
    from onnx import TensorProto, helper
    from ultralytics import YOLO

    size = int(preprocessing["image_size"])
    with tempfile.TemporaryDirectory(prefix="mlsel-yolo-export-") as folder:
        copy = Path(folder) / "best.pt"
        shutil.copyfile(weights, copy)
        made = YOLO(str(copy)).export(
            format="onnx", simplify=False, dynamic=True, imgsz=size, device="cpu", verbose=False
        )
        model = onnx.load(str(made))
    graph = model.graph
    (given,), (output,) = graph.input, graph.output
    last = next(node for node in graph.node if output.name in node.output)
    width = output.type.tensor_type.shape.dim[-1].dim_value
    if last.op_type != "Softmax" or width != classes:
        raise ExportError(
            f"Ultralytics exported {weights} ending in {last.op_type} of {width} values, not the "
            f"softmax of {classes} class probabilities; nothing was exported. Report this with "
            "the Ultralytics version."
        )
    _rename(graph, given.name, "mlsel_pre/input")
    _rename(graph, output.name, "probabilities")
    nodes = _preamble(graph, size, preprocessing["mean"], preprocessing["std"], "mlsel_pre/input")
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *existing])
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", size, size, 3])
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", classes])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def prepare_classifier(
    run_dir: Path, path: Path, images: Sequence[Any]
) -> tuple[Callable[[list[Any]], Any], list[str], dict[str, Any]]:
    """An Ultralytics classifier's graph at ``path`` (Ultralytics' exporter), then what
    the export is compared with (:meth:`YoloPredictor.predict_proba`), its classes and
    its ``preprocessing.json``; ``images`` are the parity images (the first is a probe)."""
    from mlsel.trainers.export import _files
    from mlsel.trainers.ultralytics_backend import YoloPredictor

    predictor = YoloPredictor(run_dir, "cpu")
    preprocessing = classify_preprocessing(predictor, images[0])
    classes = list(predictor.classes_)
    names = list(predictor.model_.names.values())
    if names != classes:
        # predict.py reads the graph's columns in classes.json order: they must agree
        raise ExportError(
            f"{run_dir}'s weights order their classes {names}, its classes.json "
            f"{classes}; the export would mislabel them. Report this with the run id."
        )
    export_yolo_classifier(run_dir / "weights" / "best.pt", preprocessing, len(classes), path)
    size = int(preprocessing["image_size"])
    resize = preprocessing["resize"]
    preprocessing["decoder"] = (
        "predict.decode_ultralytics, as Ultralytics' classification predictor: upright by "
        "EXIF, 16-bit by its high byte, alpha dropped, "
        f"{resize['interpolation']} resize of the shortest edge to {resize['shortest_edge']}, "
        f"centre crop {size} x {size}"
    )
    preprocessing["input"] = _files.input_format(size)
    return predictor.predict_proba, classes, preprocessing
