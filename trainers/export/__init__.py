"""Export a trained run: ONNX with its preprocessing inside, ready code, a parity check.

``export_model(run_dir, out)`` writes a folder that runs without mlsel and without torch
(``predict.py`` needs onnxruntime, numpy and Pillow), after checking that it predicts what
the trained model predicts. :mod:`._onnx` builds the graph, :mod:`._files` writes the
text files, :mod:`._parity` compares; :mod:`._ultralytics` exports Ultralytics
classifiers through Ultralytics' own exporter (detection runs are refused with an
ExportError). ``predict_template.py`` is the exported ``predict.py`` before
the decoder (:mod:`mlsel.kernel._decode`) is copied into it. Importing this package does
not import torch.
"""

from __future__ import annotations

from mlsel.trainers.export._export import ExportReport, export_model
from mlsel.trainers.export._parity import PARITY_LIMIT, PARITY_TOLERANCE, Parity

__all__ = ["PARITY_LIMIT", "PARITY_TOLERANCE", "ExportReport", "Parity", "export_model"]
