"""Object size g(y) (Baručić & Kybic, ITAT 2022, eqs. 3–5) of a mask as a transform pair; the kernels are in
:mod:`weakseg.kernels.size`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from weakseg.kernels.size import object_size
from weakseg.transforms.slicing import source_name

__all__ = ["SizeFromMask", "SizeFromMaskd", "SizeFromMaskD", "SizeFromMaskDict"]

class SizeFromMask(Transform):
    """
    Object size g(y) (eqs. 3–5) of a channel-first mask ``(1, H, W)`` -> float tensor ``(1,)``.

    Args:
        border_is_background: see :func:`object_size`.
        allow_empty: when False (default) a mask without foreground raises ``ValueError`` naming the source:
            a size target of 0 is almost always a data error for size supervision.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, border_is_background: bool = True, allow_empty: bool = False) -> None:
        self.border_is_background = border_is_background
        self.allow_empty = allow_empty

    def __call__(self, mask: NdarrayOrTensor) -> torch.Tensor:
        if mask.ndim != 3 or mask.shape[0] != 1:
            raise ValueError(f"SizeFromMask: expected a (1, H, W) mask, got shape {tuple(mask.shape)}.")
        t = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask)
        if not self.allow_empty and not bool((t > 0).any()):
            raise ValueError(
                f"SizeFromMask: mask {source_name(mask, '<array>')} has no foreground; expected an object "
                "(set allow_empty=True to accept size 0)."
            )
        return object_size(t[0], self.border_is_background).reshape(1).float()


class SizeFromMaskd(MapTransform):
    """
    Dictionary version of :py:class:`SizeFromMask`: writes the size of ``keys`` to ``output_key`` (default
    ``"size"``), and with ``drop_mask=True`` removes the mask so a weakly supervised trainer cannot see it.
    """

    backend = SizeFromMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_key: str = "size",
        border_is_background: bool = True,
        allow_empty: bool = False,
        drop_mask: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError("SizeFromMaskd: give exactly one mask key.")
        self.output_key = output_key
        self.drop_mask = drop_mask
        self.sizer = SizeFromMask(border_is_background, allow_empty)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = self.sizer(d[key])
            if self.drop_mask:
                del d[key]
        return d


SizeFromMaskD = SizeFromMaskDict = SizeFromMaskd
