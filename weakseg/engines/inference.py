"""Slice-by-slice inference of a 2D network on a 3D volume, returning a label volume of the input's shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.transforms import ResizeWithPadOrCrop

from weakseg.handlers.visual import default_predict

__all__ = ["predict_volume"]


@torch.no_grad()
def predict_volume(
    network: torch.nn.Module,
    image: torch.Tensor,
    axis: int = 0,
    spatial_size: Sequence[int] = (48, 32),
    batch_size: int = 256,
    predict: Callable[[torch.Tensor], torch.Tensor] = default_predict,
) -> torch.Tensor:
    """
    Run ``network`` on every slice of a channel-first volume ``image`` ``(1, X, Y, Z)`` along spatial ``axis``:
    each slice is centre padded/cropped to ``spatial_size`` (as in training), predicted, and padded/cropped
    back, so the result ``(1, X, Y, Z)`` (uint8 labels) is aligned voxel for voxel with ``image``.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"predict_volume expects a (1, X, Y, Z) volume, got {tuple(image.shape)}")
    vol = torch.movedim(torch.as_tensor(image)[0], axis, 0)  # (S, a, b): slices as channels
    plane = tuple(vol.shape[1:])
    fitted = ResizeWithPadOrCrop(spatial_size)(vol)
    fitted = torch.as_tensor(fitted).float()
    dev = next(network.parameters()).device
    was_training = network.training
    network.eval()
    out = []
    for i in range(0, fitted.shape[0], batch_size):
        out.append(predict(network(fitted[i : i + batch_size, None].to(dev)))[:, 0].cpu())
    network.train(was_training)
    pred = torch.as_tensor(ResizeWithPadOrCrop(plane)(torch.cat(out)))
    return torch.movedim(pred, 0, axis)[None].to(torch.uint8)
