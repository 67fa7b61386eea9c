"""Focal Tversky loss (Abraham & Khan, "A novel focal Tversky loss function with improved attention U-Net for
lesion segmentation", ISBI 2019), built on MONAI's :class:`monai.losses.TverskyLoss`.

Tversky index (eq. 3 of the paper)  TI_c = (TP + ε) / (TP + α_AK·FN + β_AK·FP + ε),
focal Tversky loss (eq. 4)          FTL_c = (1 − TI_c)^(1/γ).

Naming: the paper weighs false **negatives** with α (0.7) and false positives with β (0.3). MONAI's
``TverskyLoss`` (and so this class) names the false-positive weight ``alpha`` and the false-negative weight
``beta``; the defaults here, ``alpha=0.3, beta=0.7, gamma=4/3``, are the paper's. Worked example (ε = 1 as
``smooth_nr = smooth_dr = 1``): y = [1, 1, 0, 0], p = [.9, .4, .2, .1] → TP = 1.3, FN = 0.7, FP = 0.3,
TI = 2.3 / 2.88 = 0.798611, loss = 0.201389^0.75 = 0.300626.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.losses import TverskyLoss
from monai.utils import LossReduction, look_up_option
from torch.nn.modules.loss import _Loss

from weakseg.losses.utils import reduce_loss

__all__ = ["FocalTverskyLoss"]


class FocalTverskyLoss(_Loss):
    """(1 − TI)^(1/γ) per item and channel, then ``reduction``; every other argument is MONAI's ``TverskyLoss``,
    which computes 1 − TI per item and channel (``reduction="none"``).

    Args:
        gamma: focal parameter γ ≥ 1 (paper 4/3); γ = 1 gives MONAI's Tversky loss.
        alpha: weight of false positives (the paper's β), default 0.3.
        beta: weight of false negatives (the paper's α), default 0.7.
        eps: the base 1 − TI is clamped to at least ``eps`` so the gradient stays finite at a perfect score.
    Input (B, C, H, W[, D]) logits or probabilities (see ``sigmoid``/``softmax``), target (B, C or 1, ...).
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 4.0 / 3.0,
        reduction: LossReduction | str = LossReduction.MEAN,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool = False,
        ignore_index: int | None = None,
        eps: float = 1e-7,
    ) -> None:
        if not gamma > 0:
            raise ValueError(f"FocalTverskyLoss: gamma must be > 0 (paper: 4/3), got {gamma}")
        for name, v in (("alpha", alpha), ("beta", beta)):
            if v < 0:
                raise ValueError(f"FocalTverskyLoss: {name} must be ≥ 0, got {v}")
        super().__init__(reduction=look_up_option(reduction, LossReduction).value)
        self.tversky = TverskyLoss(
            include_background=include_background,
            to_onehot_y=to_onehot_y,
            sigmoid=sigmoid,
            softmax=softmax,
            other_act=other_act,
            alpha=alpha,
            beta=beta,
            reduction=LossReduction.NONE,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            soft_label=soft_label,
            ignore_index=ignore_index,
        )
        self.gamma = float(gamma)
        self.eps = float(eps)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """input (B, C, H, W[, D]), target (B, C or 1, ...); returns a scalar, or (B, C) / (C,) with "none"."""
        score = self.tversky(input, target)  # 1 − TI, (B, C) or (C,) with batch=True
        return reduce_loss(score.clamp_min(self.eps) ** (1.0 / self.gamma), self.reduction)
