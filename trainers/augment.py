"""Batch augmentation on tensors, and normalisation.

Presets (applied to training batches only):

* ``none``: nothing.
* ``light`` (the few-shot study's): horizontal flip (p=0.5), rotation within +-15 degrees, colour
  jitter of brightness, contrast and saturation by up to 20%.
* ``strong``: ``light`` plus a random scale/crop (zoom 0.75-1.25, shift up to 10%),
  rotation within +-25 degrees, jitter up to 40% and random erasing of one patch.

Everything runs on the batch as one tensor (one ``grid_sample`` for the geometry), on
whatever device holds it, with per-sample random parameters drawn from ``generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["PRESETS", "AugmentSpec", "augment_batch", "normalise"]


@dataclass(frozen=True)
class AugmentSpec:
    """Ranges of one augmentation preset."""

    flip: bool = False
    degrees: float = 0.0
    jitter: float = 0.0
    zoom: float = 0.0
    shift: float = 0.0
    erase: bool = False

    @property
    def geometric(self) -> bool:
        return self.degrees > 0 or self.zoom > 0 or self.shift > 0


PRESETS: dict[str, AugmentSpec] = {
    "none": AugmentSpec(),
    "light": AugmentSpec(flip=True, degrees=15.0, jitter=0.2),
    "strong": AugmentSpec(flip=True, degrees=25.0, jitter=0.4, zoom=0.25, shift=0.1, erase=True),
}


def _uniform(
    n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    import torch

    return (
        torch.rand(n, generator=generator, device=generator.device if generator else "cpu").to(
            like.device
        )
        * (high - low)
        + low
    )


def augment_batch(
    images: torch.Tensor, preset: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Augment a float batch ``(N, 3, H, W)`` in [0, 1]; returns a new tensor."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    spec = PRESETS[preset]
    if spec == PRESETS["none"]:
        return images
    n = images.shape[0]
    x = images
    if spec.flip:
        flip = _uniform(n, 0, 1, x, generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if spec.geometric:
        angle = _uniform(n, -spec.degrees, spec.degrees, x, generator) * (math.pi / 180)
        scale = 1.0 / _uniform(n, 1 - spec.zoom, 1 + spec.zoom, x, generator)
        tx = _uniform(n, -spec.shift, spec.shift, x, generator) * 2
        ty = _uniform(n, -spec.shift, spec.shift, x, generator) * 2
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if spec.jitter > 0:
        j = spec.jitter
        bright = _uniform(n, 1 - j, 1 + j, x, generator)[:, None, None, None]
        contrast = _uniform(n, 1 - j, 1 + j, x, generator)[:, None, None, None]
        sat = _uniform(n, 1 - j, 1 + j, x, generator)[:, None, None, None]
        x = x * bright
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean
        gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        x = (x - gray) * sat + gray
        x = x.clamp(0.0, 1.0)
    if spec.erase:
        h, w = x.shape[-2:]
        size = (_uniform(n, 0.1, 0.3, x, generator) * min(h, w)).long()
        cy = (_uniform(n, 0, 1, x, generator) * h).long()
        cx = (_uniform(n, 0, 1, x, generator) * w).long()
        ys = torch.arange(h, device=x.device)[None, :, None]
        xs = torch.arange(w, device=x.device)[None, None, :]
        half = (size // 2)[:, None, None]
        box = ((ys - cy[:, None, None]).abs() <= half) & ((xs - cx[:, None, None]).abs() <= half)
        erase = (_uniform(n, 0, 1, x, generator) < 0.5)[:, None, None] & box
        x = x.masked_fill(erase[:, None], 0.5)
    return x


def normalise(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """``(x - mean) / std`` per channel for a float batch in [0, 1]."""
    import torch

    m = torch.tensor(mean, dtype=images.dtype, device=images.device)[None, :, None, None]
    s = torch.tensor(std, dtype=images.dtype, device=images.device)[None, :, None, None]
    return (images - m) / s
