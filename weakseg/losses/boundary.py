"""Boundary loss with a precomputed (or batched, on-device) signed distance map.

MONAI's :class:`monai.losses.BoundaryLoss` (Kervadec et al. 2019, eq. 5: L_B = (1/|Ω|) Σ_p φ_G(p) s_θ(p))
recomputes φ_G with a Python loop over items and channels at every step. :class:`DistanceMapBoundaryLoss` is
the same loss (same arguments, same value) that

- takes φ_G from the target when the data pipeline already computed it with
  :class:`weakseg.transforms.SignedDistanceMapd` and appended it as extra label channels, i.e. a target of
  (B, 2N, ...) = [one-hot label (N), φ (N)] for an input of (B, N, ...); and otherwise
- computes φ_G for the whole batch at once on the target's device with
  :func:`weakseg.transforms.signed_distance_map` (exact; optional clamp ``bound`` and ``rescale``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.losses import BoundaryLoss
from monai.utils import LossReduction

from weakseg.losses.utils import reduce_loss
from weakseg.transforms.distance import signed_distance_map

__all__ = ["DistanceMapBoundaryLoss"]


class DistanceMapBoundaryLoss(BoundaryLoss):
    """MONAI ``BoundaryLoss`` that accepts φ_G as extra label channels (see module docstring).

    Args:
        bound, rescale: clamp/rescale of φ_G when it is computed here (thesis: 128, 128); a precomputed map is
            used as given.
        Other arguments: as :class:`monai.losses.BoundaryLoss`.
    Shapes: input (B, N, H, W[, D]); target (B, N, ...) one-hot label, (B, 1, ...) class indices with
    ``to_onehot_y``, or (B, 2N, ...) label + precomputed map.
    """

    uses_distance_map = True  # CombinedLoss hands this loss the extra map channels

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
        batch: bool = False,
        bound: float | None = None,
        rescale: float | None = None,
    ) -> None:
        super().__init__(include_background, to_onehot_y, sigmoid, softmax, other_act, reduction, batch)
        self.bound, self.rescale = bound, rescale

    @torch.no_grad()
    def compute_distance_map(self, target: torch.Tensor) -> torch.Tensor:
        """φ_G of a one-hot ``target`` (B, N, ...) for the whole batch at once, on its device."""
        if target.dim() not in (4, 5):
            raise ValueError("Only 2D (BNHW) and 3D (BNHWD) supported")
        return signed_distance_map(target, target.dim() - 2, self.bound, self.rescale)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = input.shape[1]
        if target.shape[1] == 2 * n and target.shape[2:] == input.shape[2:] and not (n == 1 and self.to_onehot_y):
            return self._with_map(input, target[:, n:].float())
        return super().forward(input, target)

    def _with_map(self, input: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """Eq. 5 with the given map φ (B, N, ...): what ``BoundaryLoss.forward`` computes after its own φ."""
        if input.dim() not in (4, 5):
            raise ValueError("Only 2D (BNHW) and 3D (BNHWD) supported")
        if self.sigmoid:
            input = torch.sigmoid(input)
        if self.softmax and input.shape[1] > 1:
            input = torch.softmax(input, dim=1)
        if self.other_act is not None:
            input = self.other_act(input)
        if not self.include_background and input.shape[1] > 1:
            input, phi = input[:, 1:], phi[:, 1:]
        loss = (input * phi).flatten(2).mean(2)  # Σ_p φ s / |Ω|, (B, N)
        return reduce_loss(loss.mean(dim=0) if self.batch else loss, self.reduction)
