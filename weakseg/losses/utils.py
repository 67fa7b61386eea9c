"""What the package's losses share."""

from __future__ import annotations

import torch
from monai.utils import LossReduction

__all__ = ["reduce_loss"]


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-item ``loss`` reduced as MONAI's ``LossReduction`` value ``reduction`` says ("mean", "sum", "none")."""
    if reduction == LossReduction.MEAN.value:
        return loss.mean()
    if reduction == LossReduction.SUM.value:
        return loss.sum()
    if reduction == LossReduction.NONE.value:
        return loss
    raise ValueError(f'Unsupported reduction: {reduction}, available options are ["mean", "sum", "none"].')
