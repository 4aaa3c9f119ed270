"""Open a saved LightGBM model: ``lightgbm.Booster``, or a fast path to its C library.

``import lightgbm`` imports scikit-learn, SciPy and pandas: 2.4 s on the project's
2-core machine (``python -X importtime -c "import lightgbm"``), more than the rest of a
``mlsel suggest`` on a profiled dataset. Prediction needs none of them. So, for the
LightGBM versions in :data:`FAST_PATH_VERSIONS`, :class:`SavedBooster` calls the two C
functions the ranker needs (``LGBM_BoosterCreateFromModelfile`` and
``LGBM_BoosterPredictForMat``) through ``ctypes``; a test checks that it gives exactly
what ``lightgbm.Booster`` gives on the same model. Any other version, or no library
file beside the package, takes the public ``lightgbm.Booster``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mlsel.kernel.errors import RankerError

__all__ = ["FAST_PATH_VERSIONS", "SavedBooster", "fast_path_available", "load_booster"]

logger = logging.getLogger(__name__)
_FLOAT64, _ROW_MAJOR, _NORMAL, _CONTRIB = 1, 1, 0, 3
#: Major versions of LightGBM whose C API the fast path was checked against.
FAST_PATH_VERSIONS: tuple[int, ...] = (4,)


def _major(version: str) -> int | None:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


@lru_cache(maxsize=1)
def _library() -> Any:
    """LightGBM's C library, when the installed version is one the fast path knows."""
    try:
        version = metadata.version("lightgbm")
    except metadata.PackageNotFoundError:
        return None
    if _major(version) not in FAST_PATH_VERSIONS:
        logger.debug("lightgbm %s: predicting through lightgbm.Booster", version)
        return None
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


def fast_path_available() -> bool:
    """Whether :func:`load_booster` opens models without importing lightgbm."""
    return _library() is not None


class SavedBooster:
    """A LightGBM model file opened through the C API: ``predict`` and ``feature_name``,
    as ``lightgbm.Booster`` has them."""

    def __init__(self, model_file: Path) -> None:
        self._lib = _library()
        if self._lib is None:
            raise RankerError(
                "LightGBM's C library is not usable here; open the model with lightgbm.Booster."
            )
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
        if written.value != rows * width:
            raise RankerError(
                f"LightGBM wrote {written.value} predictions for {rows} rows of {cols} features "
                f"(expected {rows * width}). Run `mlsel refit` to retrain the ranker."
            )
        return out.reshape(rows, width) if pred_contrib else out

    def __del__(self) -> None:
        if getattr(self, "_handle", None) and getattr(self, "_lib", None) is not None:
            self._lib.LGBM_BoosterFree(self._handle)


def load_booster(model_file: Path) -> Any:
    """A :class:`SavedBooster` on the fast path, else ``lightgbm.Booster``."""
    if fast_path_available():
        return SavedBooster(model_file)
    import lightgbm as lgb

    return lgb.Booster(model_file=str(model_file))
