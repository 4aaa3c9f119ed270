"""``cluster-margin``: hard examples that are not all alike.

With few labels, the images a model is least sure of are often near-copies of one
another (one confusing pair of classes, one kind of background), and labelling fifty of
them teaches little more than five. ``cluster-margin`` (after Citovsky et al., "Batch
Active Learning at Scale", 2021) takes the ``POOL_FACTOR x limit`` lowest-margin images,
clusters their ImageNet embeddings (the model's own backbone when it is a frozen probe,
from the embedding cache) into ``limit`` groups with k-means, and exports the
lowest-margin image of each group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlsel.kernel.records import Config

__all__ = ["POOL_FACTOR", "diverse_hardest"]

POOL_FACTOR = 5


def diverse_hardest(
    paths: Sequence[str], margins: Sequence[float], limit: int, config: Config, seed: int
) -> tuple[list[int], str]:
    """Indices into ``paths`` (hardest first) of at most ``limit`` images, one per
    k-means cluster of their embeddings, and a note saying how they were chosen.

    Raises:
        WeightsUnavailableError: the embedding backbone's weights are not at hand.
        DatasetError: an image cannot be decoded.
    """
    import numpy as np
    import torch
    from sklearn.cluster import KMeans

    from mlsel.kernel.dataset import DatasetItem
    from mlsel.kernel.records import Config as ConfigRecord
    from mlsel.metalearn.drift import embedder_for
    from mlsel.trainers.embeddings import EmbeddingCache
    from mlsel.trainers.frozen import embed_items

    order = np.argsort(np.asarray(margins, dtype=np.float64), kind="stable")
    if len(paths) <= limit:
        return [int(i) for i in order], "fewer candidates than the limit: all are exported"
    arch, size, _ = embedder_for(config)
    probe = ConfigRecord(backend="torchvision", arch=arch, finetune="linear", image_size=size)
    items = [DatasetItem(path=str(p), label="", split="candidate") for p in paths]
    vectors = embed_items(items, probe, EmbeddingCache(), torch.device("cpu")).numpy()
    clusters = KMeans(n_clusters=limit, n_init=1, random_state=seed).fit_predict(vectors)
    first_of: dict[int, int] = {}
    for index in order:  # hardest first: each cluster keeps its hardest image
        first_of.setdefault(int(clusters[index]), int(index))
    chosen = sorted(first_of.values(), key=lambda i: float(margins[i]))
    note = (
        f"cluster-margin: the {len(paths)} lowest-margin images, clustered in {limit} groups "
        f"by their {arch} embeddings at {size} px; the hardest of each group"
    )
    return chosen, note
