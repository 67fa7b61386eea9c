"""Overlap scores over a set of 2D slices, per slice and pooled, as reported for slice-wise segmentation."""

from __future__ import annotations

import torch

__all__ = ["slice_overlap_scores"]


def slice_overlap_scores(pred: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    """
    Binary overlap scores of predictions vs labels for ``N`` slices, tensors ``(N, 1, H, W)`` (or ``(N, H, W)``)
    with values in {0, 1}.

    Returns
        ``mean_slice_iou``: mean over slices of |P∩G| / |P∪G| (a slice with empty P and G counts as 1),
        ``mean_slice_dice``: the same for 2|P∩G| / (|P| + |G|),
        ``pooled_iou`` and ``pooled_dice``: the same ratios with the counts summed over all slices first,
        ``num_slices``.
    """
    if pred.shape != label.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != label shape {tuple(label.shape)}")
    p = (pred > 0.5).reshape(pred.shape[0], -1).double()
    g = (label > 0.5).reshape(label.shape[0], -1).double()
    inter = (p * g).sum(1)
    sp, sg = p.sum(1), g.sum(1)
    union = sp + sg - inter
    empty = union == 0
    iou = torch.where(empty, torch.ones_like(inter), inter / union.clamp_min(1))
    dice = torch.where(empty, torch.ones_like(inter), 2 * inter / (sp + sg).clamp_min(1))
    tot_i, tot_p, tot_g = inter.sum(), sp.sum(), sg.sum()
    return {
        "mean_slice_iou": float(iou.mean()),
        "mean_slice_dice": float(dice.mean()),
        "pooled_iou": float(tot_i / (tot_p + tot_g - tot_i)) if tot_p + tot_g > 0 else 1.0,
        "pooled_dice": float(2 * tot_i / (tot_p + tot_g)) if tot_p + tot_g > 0 else 1.0,
        "num_slices": int(p.shape[0]),
    }
