"""A network that needs inputs divisible by its total stride, applied to any input size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DivisiblePadNet"]


class DivisiblePadNet(nn.Module):
    """Pads (B, C, *spatial) symmetrically up to a multiple of ``k`` per spatial dimension, runs ``network``, and
    crops its output back to the input's spatial size (so output pixel i is input pixel i).

    An encoder–decoder such as MONAI's ``FlexibleUNet`` with a ResNet backbone halves the resolution five times and
    needs sizes divisible by 32; the hippocampus slices are 48×32. ``mode``/``value`` as ``torch.nn.functional.pad``
    (default zero padding, which is the background of a z-scored slice's border region after cropping).
    """

    def __init__(self, network: nn.Module, k: int | Sequence[int] = 32, mode: str = "constant", value: float = 0.0) -> None:
        super().__init__()
        self.network, self.k, self.mode, self.value = network, k, mode, float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        ks = [self.k] * len(spatial) if isinstance(self.k, int) else list(self.k)
        if len(ks) != len(spatial):
            raise ValueError(f"DivisiblePadNet: k has {len(ks)} values for {len(spatial)} spatial dimensions")
        before = [(-s % k) // 2 for s, k in zip(spatial, ks)]
        after = [(-s % k) - b for s, k, b in zip(spatial, ks, before)]
        pad = [p for b, a in zip(reversed(before), reversed(after)) for p in (b, a)]
        y = self.network(F.pad(x, pad, mode=self.mode, value=self.value) if any(pad) else x)
        crop = tuple(slice(b, b + s) for b, s in zip(before, spatial))
        return y[(slice(None), slice(None), *crop)]
