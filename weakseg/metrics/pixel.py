"""Pixel-level inputs for MONAI's classification metrics (``ROCAUC``, ``AveragePrecision``) on segmentations."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["pixel_scores"]


def pixel_scores(prob_key: str = "prob", label_key: str = "label") -> Callable:
    """An ignite ``output_transform`` turning a decollated batch (list of dicts with (1, H, W[, D]) probabilities
    and labels) into ``(scores (P, 1), labels (P, 1))`` over all P pixels, so that MONAI's ``ROCAUC`` and
    ``AveragePrecision`` handlers compute the pixel-wise ROC-AUC / AP of a binary segmentation."""

    def _transform(output) -> tuple[torch.Tensor, torch.Tensor]:
        items = output if isinstance(output, (list, tuple)) else [output]
        p = torch.cat([torch.as_tensor(o[prob_key]).reshape(-1) for o in items]).float()
        y = torch.cat([torch.as_tensor(o[label_key]).reshape(-1) for o in items]).float()
        if p.shape != y.shape:
            raise ValueError(f"pixel_scores: {prob_key} and {label_key} hold {p.numel()} vs {y.numel()} pixels")
        return p.unsqueeze(1), y.unsqueeze(1)

    return _transform
