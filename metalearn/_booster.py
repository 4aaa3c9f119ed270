"""Predict with a saved LightGBM model through its C library, without importing lightgbm.

``import lightgbm`` imports scikit-learn and SciPy (seconds); ``mlsel suggest`` only
needs predictions and feature contributions of a saved model, which LightGBM's C API
gives directly. :class:`SavedBooster` offers the two ``lightgbm.Booster`` methods the
ranker uses (``predict`` with ``pred_contrib``, ``feature_name``) with the same results.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mlsel.experiment_store.errors import RankerError

__all__ = ["SavedBooster", "load_booster"]

logger = logging.getLogger(__name__)
_FLOAT64, _ROW_MAJOR, _NORMAL, _CONTRIB = 1, 1, 0, 3


@lru_cache(maxsize=1)
def _library() -> Any:
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or spec.origin is None:
        return None
    base = Path(spec.origin).parent
    for name in ("lib_lightgbm.so", "lib_lightgbm.dylib", "lib_lightgbm.dll"):
        for path in (base / "lib" / name, base / name):
            if path.is_file():
                lib = ctypes.cdll.LoadLibrary(str(path))
                lib.LGBM_GetLastError.restype = ctypes.c_char_p
                return lib
    return None


class SavedBooster:
    """A LightGBM model file opened through the C API."""

    def __init__(self, model_file: Path) -> None:
        self._lib = _library()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        self._call(
            "LGBM_BoosterCreateFromModelfile",
            str(model_file).encode(),
            ctypes.byref(iterations),
            ctypes.byref(self._handle),
        )
        self._names: list[str] = []
        with open(model_file, encoding="utf-8") as text:
            for line in text:
                if line.startswith("feature_names="):
                    self._names = line.strip().split("=", 1)[1].split(" ")
                    break
                if line.startswith("Tree="):
                    break

    def _call(self, name: str, *args: Any) -> None:
        if getattr(self._lib, name)(*args) != 0:
            error = self._lib.LGBM_GetLastError().decode()
            raise RankerError(f"LightGBM could not {name}: {error}")

    def feature_name(self) -> list[str]:
        """Feature names stored in the model file."""
        return list(self._names)

    def predict(self, X: np.ndarray, pred_contrib: bool = False) -> np.ndarray:
        """Raw scores, or per-feature contributions (+ bias column) with ``pred_contrib``."""
        data = np.ascontiguousarray(X, dtype=np.float64)
        rows, cols = data.shape
        width = cols + 1 if pred_contrib else 1
        out = np.empty(rows * width, dtype=np.float64)
        written = ctypes.c_int64()
        self._call(
            "LGBM_BoosterPredictForMat",
            self._handle,
            data.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int(_FLOAT64),
            ctypes.c_int32(rows),
            ctypes.c_int32(cols),
            ctypes.c_int(_ROW_MAJOR),
            ctypes.c_int(_CONTRIB if pred_contrib else _NORMAL),
            ctypes.c_int(0),
            ctypes.c_int(-1),
            b"",
            ctypes.byref(written),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        return out.reshape(rows, width) if pred_contrib else out

    def __del__(self) -> None:
        if getattr(self, "_handle", None) and self._lib is not None:
            self._lib.LGBM_BoosterFree(self._handle)


def load_booster(model_file: Path) -> Any:
    """A :class:`SavedBooster`, or ``lightgbm.Booster`` when the C library is not found."""
    if _library() is not None:
        return SavedBooster(model_file)
    import lightgbm as lgb

    logger.debug("lib_lightgbm not found beside the package; importing lightgbm")
    return lgb.Booster(model_file=str(model_file))
