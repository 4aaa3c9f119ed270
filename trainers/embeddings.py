"""Pooled embeddings of frozen backbones, computed once per image and kept.

A frozen backbone (finetune ``linear`` or ``head``) maps an image to the same vector in
every epoch, every trial and every later run. :class:`EmbeddingCache` computes each
image's embedding once and keeps it in memory and on disk under the machine cache
(``<machine cache>/embeddings/``), so the trials of a search and later searches reuse it.

An embedding is keyed by the image's content digest and by an :class:`EmbeddingSpec`:
the backbone and the identity of its weights file, the image size, the preprocessing
(decoder, resize, normalisation) and the view. View 0 is the image itself; views
``1..n`` of an augmented config are random augmentations of it (the config's preset),
each drawn once and then reused. Derived datasets that share images share embeddings.

On disk each spec is a folder of shards (``<uuid>.npz``: digests and a float32 matrix),
written atomically; several processes may add shards to one folder at once. A cache
folder that cannot be written is not an error: embeddings then live in memory only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.kernel.catalogue import CONCAT
from mlsel.kernel.errors import DatasetError
from mlsel.kernel.home import machine_cache_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mlsel.kernel.dataset import DatasetItem
    from mlsel.trainers.zoo import Network

__all__ = [
    "AUGMENTED_VIEWS",
    "EmbeddingCache",
    "EmbeddingSpec",
    "image_digest",
    "weights_identity",
]

logger = logging.getLogger(__name__)

# Augmented views kept per image for an augmented frozen config (plus the plain view):
# each costs one backbone pass per training image, once.
AUGMENTED_VIEWS = 3
# Changes when the decoder, the resize or the way a view is drawn changes.
PREPROCESSING_VERSION = "decode-v1/bilinear-square"
_BATCH = 32


def image_digest(item: DatasetItem) -> str:
    """The item's content digest (BLAKE2 of its bytes), from the reader or computed here.

    Raises:
        DatasetError: the file cannot be read.
    """
    if item.digest:
        return item.digest
    try:
        data = Path(item.path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"Cannot read {item.path}: {exc.strerror or exc}.") from None
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_identity(path: str | None) -> str:
    """What identifies a weights file: its name and a digest of its bytes, so a file that
    is replaced gets a new identity (its embeddings are computed again) and the same file
    on another machine keeps its own."""
    if not path:
        return "random-init"
    try:
        stat = os.stat(path)
        digest = _file_digest(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return str(path)
    return f"{os.path.basename(path)}:{digest}"


@dataclass(frozen=True)
class EmbeddingSpec:
    """Everything an embedding depends on besides the image.

    Attributes:
        arch: one backbone (not a concatenation).
        weights: :func:`weights_identity` of the weights loaded.
        image_size: the square side images are resized to.
        mean, std: the normalisation.
        augment: ``none`` for view 0, else the preset of views ``1..``.
        view: 0 is the image itself.
    """

    arch: str
    weights: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"
    view: int = 0
    preprocessing: str = PREPROCESSING_VERSION

    def __post_init__(self) -> None:
        if CONCAT in self.arch:
            raise ValueError(f"an embedding spec is of one backbone, not {self.arch!r}")

    def key(self) -> str:
        """Stable folder name: the arch, then a hash of every field."""
        canon = json.dumps(asdict(self), sort_keys=True)
        return f"{self.arch}-{self.image_size}-{hashlib.sha1(canon.encode()).hexdigest()[:16]}"

    def with_view(self, view: int, augment: str) -> EmbeddingSpec:
        from dataclasses import replace

        return replace(self, view=view, augment="none" if view == 0 else augment)


class _Entries:
    """The embeddings of one spec: digest -> vector, loaded from and added to disk."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.vectors: dict[str, np.ndarray] = {}
        self._loaded: set[str] = set()

    def refresh(self) -> None:
        """Read shards that other processes (or earlier runs) wrote since the last look."""
        import numpy as np

        if self.folder is None or not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("*.npz")):
            if shard.name in self._loaded:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    digests, matrix = data["digests"], data["embeddings"]
                self.vectors.update(zip(digests.tolist(), matrix, strict=True))
            except (OSError, ValueError, KeyError) as exc:  # a torn or foreign file
                logger.debug("ignoring embedding shard %s: %s", shard, exc)
            self._loaded.add(shard.name)

    def add(self, digests: Sequence[str], matrix: np.ndarray, spec: EmbeddingSpec) -> None:
        import numpy as np

        self.vectors.update(zip(digests, matrix, strict=True))
        if self.folder is None:
            return
        name = f"{uuid.uuid4().hex}.npz"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            about = self.folder / "spec.json"
            if not about.exists():
                about.write_text(json.dumps(asdict(spec), indent=2))
            tmp = self.folder / f".{name}.tmp"
            with open(tmp, "wb") as fh:
                np.savez(fh, digests=np.asarray(digests), embeddings=matrix)
            os.replace(tmp, self.folder / name)
            self._loaded.add(name)
        except OSError as exc:
            logger.debug("embeddings kept in memory only (%s): %s", self.folder, exc)


class EmbeddingCache:
    """Embeddings of frozen backbones by (spec, image digest), in memory and on disk.

    Args:
        folder: where shards are kept; default ``<machine cache>/embeddings``; ``None``
            keeps them in memory only.

    Attributes:
        passes_: images pushed through a backbone so far (a cached embedding costs none).
    """

    def __init__(self, folder: str | os.PathLike[str] | None | bool = True) -> None:
        if folder is True:
            self.folder: Path | None = machine_cache_dir() / "embeddings"
        elif folder is False or folder is None:
            self.folder = None
        else:
            self.folder = Path(folder)
        self._specs: dict[str, _Entries] = {}
        self.passes_ = 0

    def _entries(self, spec: EmbeddingSpec) -> _Entries:
        key = spec.key()
        if key not in self._specs:
            self._specs[key] = _Entries(self.folder / key if self.folder else None)
        entries = self._specs[key]
        entries.refresh()
        return entries

    def missing(self, spec: EmbeddingSpec, digests: Sequence[str]) -> list[int]:
        """Indices of ``digests`` with no embedding yet for ``spec``."""
        vectors = self._entries(spec).vectors
        return [i for i, d in enumerate(digests) if d not in vectors]

    def get(
        self,
        spec: EmbeddingSpec,
        items: Sequence[DatasetItem],
        backbone: Callable[[], Network],
        device: torch.device,
    ) -> torch.Tensor:
        """The ``(N, D)`` float32 embeddings of ``items`` for ``spec``.

        Only images not cached yet are decoded and pushed through the backbone of the
        :class:`~mlsel.trainers.zoo.Network` that ``backbone()`` returns (called only on a
        miss; its normalisation must be ``spec``'s).

        Raises:
            DatasetError: an image cannot be decoded.
        """
        import numpy as np
        import torch

        digests = [image_digest(item) for item in items]
        entries = self._entries(spec)
        todo: dict[str, str] = {}  # digest -> path, each image once
        for digest, item in zip(digests, items, strict=True):
            if digest not in entries.vectors:
                todo.setdefault(digest, item.path)
        if todo:
            matrix = _embed(backbone(), list(todo.values()), spec, device)
            self.passes_ += len(todo)
            entries.add(list(todo), matrix, spec)
            logger.debug("embedded %d images with %s (%s)", len(todo), spec.arch, spec.key())
        return torch.from_numpy(np.stack([entries.vectors[d] for d in digests]))


def _embed(net: Network, paths: Sequence[str], spec: EmbeddingSpec, device: torch.device):  # noqa: ANN202
    """Decode ``paths`` at the spec's size, draw its view, and run the backbone (through
    ONNX Runtime on CPU unless ``MLSEL_EMBED_ENGINE=torch``)."""
    import numpy as np
    import torch

    from mlsel.trainers.augment import augment_batch, normalise
    from mlsel.trainers.cache import decode_images

    backbone = net.backbone.to(device).eval()
    runner = None
    if device.type == "cpu" and os.environ.get("MLSEL_EMBED_ENGINE", "onnx") != "torch":
        from mlsel.trainers.onnx_backbone import cpu_runner

        runner = cpu_runner(backbone, spec.arch, spec.weights, spec.image_size)
    amp = device.type == "cuda"
    generator = torch.Generator(device="cpu").manual_seed(1000 + spec.view)
    out = []
    for lo in range(0, len(paths), _BATCH):
        images = decode_images(paths[lo : lo + _BATCH], spec.image_size)
        x = images.to(device).float().div_(255.0)
        if spec.view and spec.augment != "none":
            x = augment_batch(x, spec.augment, generator)
        x = normalise(x, spec.mean, spec.std)
        if runner is not None:
            out.append(runner(x.numpy()))
            continue
        with torch.no_grad(), torch.autocast(device.type, enabled=amp):
            out.append(backbone(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)
