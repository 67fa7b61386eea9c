"""The mask centroid as a transform pair (the kernels are in :mod:`weakseg.kernels.polygon`)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from weakseg.kernels.polygon import mask_centroid

__all__ = ["MaskCentroid", "MaskCentroidd", "MaskCentroidD", "MaskCentroidDict"]


class MaskCentroid(Transform):
    """Array transform: ``(1, H, W)`` mask → its centre ``(row, col)`` as a float32 tensor (see :func:`mask_centroid`)."""

    def __init__(self, inside: bool = True) -> None:
        self.inside = inside

    def __call__(self, mask: Any) -> torch.Tensor:
        m = torch.as_tensor(mask)
        if m.ndim == 3:
            if m.shape[0] != 1:
                raise ValueError(f"MaskCentroid expects a (1, H, W) mask, got {tuple(m.shape)}")
            m = m[0]
        return mask_centroid(m, self.inside)


class MaskCentroidd(MapTransform):
    """Dictionary version of :class:`MaskCentroid`: writes the centre of ``keys`` to ``output_key`` (``"centre"``)."""

    backend = MaskCentroid.backend

    def __init__(self, keys: KeysCollection, output_key: str = "centre", inside: bool = True,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_key = output_key
        self.op = MaskCentroid(inside)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.op(d[key])
        return d


MaskCentroidD = MaskCentroidDict = MaskCentroidd
