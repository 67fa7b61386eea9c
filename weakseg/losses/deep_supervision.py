"""Multi-label deep supervision (Reiß et al., "Every Annotation Counts", CVPR 2021) and the mean-teacher
consistency loss (Tarvainen & Valpola 2017).

Targets per level: the one-hot label (B, C, H, W[, D]) **max-pooled** (``adaptive_max_pool``) to the level's size,
so a low-resolution cell is positive for every class present under it (multi-label). Example (4×4 → 2×2, classes
0/1/2 of ``[[0,0,1,1],[0,2,1,1],[0,0,0,0],[2,0,0,0]]``): class 0 ``[[1,0],[1,1]]``, class 1 ``[[0,1],[0,0]]``,
class 2 ``[[1,0],[1,0]]``. MONAI's ``DeepSupervisionLoss`` resizes targets with nearest interpolation instead
(single label per cell); ``target_mode="nearest"`` reproduces that for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

__all__ = ["multilabel_targets", "MultiLabelDeepSupervisionLoss", "ConsistencyLoss"]


TARGET_MODES = ("max", "nearest")


def _check_target_mode(mode: str, name: str) -> str:
    if mode not in TARGET_MODES:
        raise ValueError(f"{name} must be one of {TARGET_MODES}, got {mode!r}")
    return mode


def _pool(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return (F.adaptive_max_pool2d if x.ndim == 4 else F.adaptive_max_pool3d)(x, tuple(size))


def multilabel_targets(target: torch.Tensor, sizes: Sequence[Sequence[int]], num_classes: int,
                       ignore_value: float | None = -1, mode: str = "max") -> list[torch.Tensor]:
    """One-hot ``target`` (B, 1, *spatial) class ids (values ``ignore_value`` are all-zero) resized to each
    of ``sizes`` → list of float (B, num_classes, *size): ``mode="max"`` max-pools (multi-label cells),
    ``"nearest"`` samples the nearest pixel (``nearest-exact``, as MONAI's ``DeepSupervisionLoss`` does: one class
    per cell)."""
    _check_target_mode(mode, "mode")
    if target.ndim not in (4, 5) or target.shape[1] != 1:
        raise ValueError(f"target must be a (B, 1, H, W[, D]) label map, got shape {tuple(target.shape)}")
    lab = target.round().long()
    valid = lab >= 0 if ignore_value is not None else torch.ones_like(lab, dtype=torch.bool)
    if (lab[valid] >= num_classes).any():
        raise ValueError(f"target has class ids >= num_classes ({num_classes})")
    onehot = torch.zeros((lab.shape[0], num_classes) + tuple(lab.shape[2:]), device=target.device)
    onehot.scatter_(1, lab.clamp(min=0), valid.float())
    if mode == "nearest":
        return [onehot if tuple(s) == tuple(onehot.shape[2:])
                else F.interpolate(onehot, size=tuple(s), mode="nearest-exact") for s in sizes]
    return [_pool(onehot, s) for s in sizes]


class MultiLabelDeepSupervisionLoss(_Loss):
    """BCE of every level's logits against the max-pooled multi-label targets, combined over levels.

    Args:
        num_classes: C (background included: class 0 is a channel too, as in the reference).
        weights: per-level weights (default 1 each), in the order of the inputs.
        level_reduction: ``"mean"`` (weighted mean over levels, the default) or ``"sum"``.
        ignore_value: label value of pixels without annotation.
        consistency_weight: weight of the mean-teacher consistency term (when the target dict has ``teacher``).
        box_min_level: box samples supervise only the levels whose resolution rank (0 = finest) is at least
            this. 0 (the default, as in the paper): boxes supervise every level like masks. 1 (the default of
            ``bundle/configs/train_mlds.json``): not the full-resolution output, where a filled box is furthest
            from a thin, curved object (the hippocampus body: see ``benchmarks/RESULTS.md``), while max-pooled
            to coarse levels box and mask targets nearly coincide.
        target_mode: how the one-hot target reaches each level's size: ``"max"`` (the default, the paper's
            multi-label max-pooling) or ``"nearest"`` (MONAI's ``DeepSupervisionLoss``; for comparison).

    ``forward(input, target, annotation=None, image_labels=None)``:
        input: list of logits (B, C, *spatial_k), one per level (any order; the smallest is the coarsest), or one
            tensor.
        target: (B, 1, H, W[, D]) class ids (boxes are given as label maps too and supervise like masks).
        annotation: (B,) codes 0 mask / 1 box / 2 image-level; image-level samples supervise only the coarsest
            level, whose logits are max-pooled to one cell and compared with ``image_labels`` (B, C) (or, when
            not given, the classes present in ``target``).

    ``target`` may also be a dict with ``label``, ``annotation``, ``image_labels`` and optionally ``teacher``
    (the mean teacher's logits of the finest level; adds ``consistency_weight`` × :class:`ConsistencyLoss`),
    as produced by :class:`weakseg.engines.WeakLabelBatch` for MONAI's ``SupervisedTrainer``.
    """

    def __init__(self, num_classes: int, weights: Sequence[float] | None = None, level_reduction: str = "mean",
                 ignore_value: float = -1, consistency_weight: float = 1.0, box_min_level: int = 0,
                 target_mode: str = "max") -> None:
        super().__init__()
        self.target_mode = _check_target_mode(target_mode, "target_mode")
        if int(box_min_level) != box_min_level or box_min_level < 0:
            raise ValueError(f"box_min_level must be an integer >= 0, got {box_min_level!r}")
        self.box_min_level = int(box_min_level)
        self.consistency = ConsistencyLoss()
        self.consistency_weight = float(consistency_weight)
        if level_reduction not in ("mean", "sum"):
            raise ValueError(f"level_reduction must be 'mean' or 'sum', got {level_reduction!r}")
        self.num_classes, self.weights, self.level_reduction = int(num_classes), weights, level_reduction
        self.ignore_value = ignore_value

    def forward(self, input, target, annotation: torch.Tensor | None = None,
                image_labels: torch.Tensor | None = None) -> torch.Tensor:
        teacher = None
        if isinstance(target, dict):  # from weakseg.engines.WeakLabelBatch: label, annotation, image_labels, teacher
            annotation = target.get("annotation", annotation)
            image_labels = target.get("image_labels", image_labels)
            teacher = target.get("teacher")
            target = target["label"]
        levels = list(input) if isinstance(input, (list, tuple)) else [input]
        if any(x.shape[1] != self.num_classes for x in levels):
            raise ValueError(f"every level needs {self.num_classes} channels, got {[tuple(x.shape) for x in levels]}")
        w = [1.0] * len(levels) if self.weights is None else [float(v) for v in self.weights]
        if len(w) != len(levels):
            raise ValueError(f"{len(w)} level weights for {len(levels)} levels")
        b = target.shape[0]
        ann = (torch.zeros(b, dtype=torch.long, device=target.device) if annotation is None
               else torch.as_tensor(annotation, device=target.device).long().reshape(b))
        if ((ann < 0) | (ann > 2)).any():
            raise ValueError(f"annotation codes must be 0 (mask), 1 (box) or 2 (image), got {ann.tolist()}")
        dense = ann != 2
        if self.box_min_level > len(levels) - 1:
            raise ValueError(f"box_min_level {self.box_min_level} leaves no level for boxes ({len(levels)} levels)")
        # resolution rank of each level: 0 = the finest (most voxels)
        order = sorted(range(len(levels)), key=lambda i: -levels[i][0, 0].numel())
        rank = {lvl: r for r, lvl in enumerate(order)}
        targets = multilabel_targets(target, [x.shape[2:] for x in levels], self.num_classes, self.ignore_value,
                                     mode=self.target_mode)
        coarsest = min(range(len(levels)), key=lambda i: levels[i][0, 0].numel())
        if image_labels is None:
            image_labels = multilabel_targets(target, [(1,) * (target.ndim - 2)], self.num_classes,
                                              self.ignore_value)[0].flatten(1)
        total = 0.0
        for i, (x, t) in enumerate(zip(levels, targets)):
            per = F.binary_cross_entropy_with_logits(x.float(), t, reduction="none").flatten(1).mean(1)  # (B,)
            if i == coarsest:
                glob = _pool(x.float(), (1,) * (x.ndim - 2)).flatten(1)
                img = F.binary_cross_entropy_with_logits(glob, image_labels.float().to(x.device),
                                                         reduction="none").mean(1)
                per = torch.where(dense, per, img)
                denom = float(b)  # every sample: dense ones by their pooled target, image-level ones globally
            else:
                sup = dense & ((ann != 1) | (rank[i] >= self.box_min_level))  # samples supervised at this level
                per = per * sup.float()
                denom = sup.float().sum().clamp(min=1)
            total = total + w[i] * per.sum() / denom
        total = total / (sum(w) if self.level_reduction == "mean" else 1.0)
        if teacher is not None:  # mean teacher: consistency of the finest level with the teacher's prediction
            total = total + self.consistency_weight * self.consistency(levels[0], teacher)
        return total


class ConsistencyLoss(_Loss):
    """Mean-teacher consistency: mean squared difference of the student's and the (detached) teacher's
    probabilities (``sigmoid`` for multi-label / binary, ``softmax`` over channels otherwise), (B, C, *spatial)."""

    def __init__(self, activation: str = "sigmoid") -> None:
        super().__init__()
        if activation not in ("sigmoid", "softmax"):
            raise ValueError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")
        self.activation = activation

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        act = torch.sigmoid if self.activation == "sigmoid" else (lambda z: torch.softmax(z, 1))
        return F.mse_loss(act(input.float()), act(target.detach().float()))
