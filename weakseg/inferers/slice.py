"""A 2D network on a case that is a 3D volume or a 2D image."""

from __future__ import annotations

from typing import Any, Callable

import torch
from monai.inferers import SliceInferer, SlidingWindowInferer

__all__ = ["SliceOrImageInferer"]


class SliceOrImageInferer(SliceInferer):
    """MONAI's :class:`~monai.inferers.SliceInferer` for volumes ``(B, C, X, Y, Z)`` (slice by slice along
    ``spatial_dim``, each slice by sliding windows of ``roi_size``), and the same sliding-window inference on
    2D images ``(B, C, H, W)``, so one evaluation config scores folders of volumes and of images.
    The arguments are those of :class:`~monai.inferers.SliceInferer`; the output has the input's spatial shape.
    """

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if inputs.ndim == 4:
            return SlidingWindowInferer.__call__(self, inputs, network, *args, **kwargs)
        return super().__call__(inputs, network, *args, **kwargs)
