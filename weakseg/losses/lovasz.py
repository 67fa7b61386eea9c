"""
Lovász losses (Berman, Rannen Triki & Blaschko, "The Lovász-Softmax loss: a tractable surrogate for the
optimization of the intersection-over-union measure in neural networks", CVPR 2018).

The Jaccard loss Δ_J is a submodular set function of the mispredicted pixels; its Lovász extension
Δ̄_J(m) = Σ_i m_(i) g_i(m) (eq. 8–9), with the errors m sorted in decreasing order and g the discrete gradient of
Δ_J along that order (:func:`lovasz_grad`), is its tight convex surrogate.

- Binary ("Lovász hinge", eq. 10): m_i = max(1 − F_i y*_i, 0) with y*_i ∈ {−1, +1} and F the logits.
- Multi-class ("Lovász-Softmax", eq. 12): per class c, m_i(c) = |1[y_i = c] − f_i(c)| with f the softmax
  probabilities; the class losses are averaged (over the present classes by default).

All images of a batch are sorted and scored at once (no Python loop over images or classes). Ignored pixels are
sorted last with zero error and are left out of the Jaccard counts, which gives exactly the loss of the
reference implementation that drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from weakseg.losses.utils import reduce_loss

__all__ = ["lovasz_grad", "LovaszHingeLoss", "LovaszSoftmaxLoss"]


def lovasz_grad(gt_sorted: torch.Tensor, valid_sorted: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. the sorted errors (Berman et al., Alg. 1).

    Args:
        gt_sorted: ground truth (…, P) in {0, 1}, ordered by decreasing error along the last axis.
        valid_sorted: optional (…, P) mask, same order; invalid (ignored) entries count neither as foreground
            nor as background and must come after all valid ones.

    Returns:
        (…, P) float tensor g with g_1 = Δ_J({1}) and g_i = Δ_J({1..i}) − Δ_J({1..i−1}).
        Example: ``lovasz_grad([1, 0, 1, 0]) = [0.5, 1/6, 1/3, 0]``.
    """
    gt = gt_sorted.to(torch.float64 if gt_sorted.dtype == torch.float64 else torch.float32)
    neg = 1.0 - gt
    if valid_sorted is not None:
        gt = gt * valid_sorted
        neg = neg * valid_sorted
    gts = gt.sum(-1, keepdim=True)
    intersection = gts - gt.cumsum(-1)
    union = gts + neg.cumsum(-1)
    jaccard = 1.0 - torch.where(union > 0, intersection / union.clamp_min(1e-12), torch.ones_like(union))
    if gt.shape[-1] > 1:
        jaccard = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)
    return jaccard


def _lovasz_sorted(errors: torch.Tensor, fg: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Σ_i relu(m_(i)) g_i over the last axis of (…, P) errors, foreground indicator and validity mask."""
    if valid is not None:
        errors = torch.where(valid, errors, torch.full_like(errors, float("-inf")))
    errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
    fg_sorted = torch.gather(fg, -1, perm)
    valid_sorted = None if valid is None else torch.gather(valid, -1, perm).to(errors.dtype)
    grad = lovasz_grad(fg_sorted.to(errors.dtype), valid_sorted).to(errors.dtype)
    return (F.relu(errors_sorted) * grad).sum(-1)


class LovaszHingeLoss(_Loss):
    """Binary Lovász hinge loss (Berman et al. 2018, eq. 10) on logits.

    Reference check (bermanmaxim/LovaszSoftmax): logits ``[[2, −1], [0.5, −0.3]]`` with labels
    ``[[1, 0], [0, 1]]`` and ``per_image=False`` give 0.933333, with gradient ``[0, 0, 1/3, −1/3]``.

    Args:
        per_image: compute the loss per image and reduce over the batch (reference default), else one loss over
            all pixels of the batch.
        ignore_index: target value whose pixels are left out (e.g. 255), or None.
        reduction: {``"none"``, ``"mean"``, ``"sum"``}; over images when ``per_image`` (``"none"`` gives (B,)),
            a no-op otherwise.
    """

    def __init__(
        self, per_image: bool = True, ignore_index: int | None = None, reduction: LossReduction | str = LossReduction.MEAN
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        self.per_image = per_image
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits (B, 1, H, W[, D]) (or (B, H, W[, D])).
            target: labels of the same shape in {0, 1} (plus ``ignore_index``).
        """
        if input.shape != target.shape:
            raise ValueError(f"LovaszHingeLoss: input {tuple(input.shape)} and target {tuple(target.shape)} differ")
        if input.ndim >= 4 and input.shape[1] != 1:
            raise ValueError(f"LovaszHingeLoss is binary: expected one channel, got input {tuple(input.shape)}")
        b = input.shape[0]
        logits = input.reshape(b, -1) if self.per_image else input.reshape(1, -1)
        labels = target.reshape(logits.shape)
        valid = None
        if self.ignore_index is not None:
            valid = labels != self.ignore_index
            labels = torch.where(valid, labels, torch.zeros_like(labels))
        bad = ~((labels == 0) | (labels == 1))
        if bad.any():
            raise ValueError(
                f"LovaszHingeLoss: target values must be 0 or 1 (or ignore_index={self.ignore_index}), "
                f"found {torch.unique(labels[bad])[:5].tolist()}"
            )
        signs = 2.0 * labels.to(logits.dtype) - 1.0
        errors = 1.0 - logits * signs
        loss = _lovasz_sorted(errors, labels.to(logits.dtype), valid)
        return reduce_loss(loss, self.reduction) if self.per_image else loss[0]


class LovaszSoftmaxLoss(_Loss):
    """Multi-class Lovász-Softmax loss (Berman et al. 2018, eq. 12).

    Args:
        softmax: apply a softmax over the channels to ``input`` (logits); False if ``input`` already holds
            class probabilities.
        classes: ``"present"`` (average over classes present in the target, reference default), ``"all"``,
            or a list of class indices.
        per_image: compute the loss per image (then reduce over the batch), else over the whole batch at once.
        ignore_index: target value whose pixels are left out, or None.
        include_background: if False, class 0 is left out of the average.
        reduction: {``"none"``, ``"mean"``, ``"sum"``} over images when ``per_image``.
    """

    def __init__(
        self,
        softmax: bool = True,
        classes: str | Sequence[int] = "present",
        per_image: bool = False,
        ignore_index: int | None = None,
        include_background: bool = True,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if isinstance(classes, str) and classes not in ("present", "all"):
            raise ValueError(f"LovaszSoftmaxLoss: classes must be 'present', 'all' or a list of ints, got {classes!r}")
        self.softmax = softmax
        self.classes = classes if isinstance(classes, str) else [int(c) for c in classes]
        self.per_image = per_image
        self.ignore_index = ignore_index
        self.include_background = include_background

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: (B, C, H, W[, D]) logits (``softmax=True``) or probabilities, C ≥ 2.
            target: class indices (B, 1, H, W[, D]) or (B, H, W[, D]), or one-hot (B, C, H, W[, D]).
        """
        if input.ndim < 3 or input.shape[1] < 2:
            raise ValueError(
                f"LovaszSoftmaxLoss needs (B, C≥2, ...) input, got {tuple(input.shape)}; use LovaszHingeLoss for "
                "a single-channel binary output"
            )
        b, c = input.shape[:2]
        if target.ndim == input.ndim - 1:
            target = target.unsqueeze(1)
        if target.shape[1] == c and c > 1 and target.shape == input.shape:
            target = target.argmax(1, keepdim=True)
        if target.shape[1] != 1 or target.shape[2:] != input.shape[2:]:
            raise ValueError(
                f"LovaszSoftmaxLoss: target {tuple(target.shape)} must be class indices (B, 1, ...) or one-hot "
                f"matching input {tuple(input.shape)}"
            )
        probas = input.softmax(1) if self.softmax else input
        labels = target[:, 0].long()
        valid = None
        if self.ignore_index is not None:
            valid = labels != self.ignore_index
            labels = torch.where(valid, labels, torch.zeros_like(labels))
        if ((labels < 0) | (labels >= c)).any():
            raise ValueError(f"LovaszSoftmaxLoss: target classes must lie in [0, {c - 1}]")
        n = b if self.per_image else 1
        probas = probas.movedim(1, -1).reshape(n, -1, c).transpose(1, 2)  # (n, C, P)
        fg = F.one_hot(labels.reshape(n, -1), c).transpose(1, 2).to(probas.dtype)  # (n, C, P)
        if valid is not None:
            valid = valid.reshape(n, 1, -1).expand(-1, c, -1)
            fg = fg * valid
        errors = (fg - probas).abs()
        losses = _lovasz_sorted(errors, fg, valid)  # (n, C)
        if self.classes == "all":
            chosen = torch.ones_like(losses, dtype=torch.bool)
        elif self.classes == "present":
            chosen = fg.sum(-1) > 0
        else:
            if any(k < 0 or k >= c for k in self.classes):
                raise ValueError(f"LovaszSoftmaxLoss: classes {self.classes} outside [0, {c - 1}]")
            chosen = torch.zeros_like(losses, dtype=torch.bool)
            chosen[:, self.classes] = True
        if not self.include_background:
            chosen[:, 0] = False
        count = chosen.sum(1)
        loss = torch.where(chosen, losses, torch.zeros_like(losses)).sum(1) / count.clamp_min(1)
        return reduce_loss(loss, self.reduction) if self.per_image else loss[0]
