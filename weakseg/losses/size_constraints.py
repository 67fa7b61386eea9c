"""Two baselines for learning from object sizes by plain back-propagation, against the sampled-gradient estimator.

Object size (Baručić & Kybic 2022, eqs. 3–5): g(y) = 2 · max_i d_i, with d_i the Chebyshev distance of a
foreground pixel i to the background (outside the image is background by default).

**Soft size** (:func:`soft_object_size`, :class:`SoftSizeLoss`). A pixel survives k 3×3 erosions iff d_i > k, so the
number of erosions after which a binary mask vanishes is max_i d_i, and

    g(y) = 2 · Σ_{k ≥ 0} max_i (ε^k y)_i,                                                         (1)

with ε the 3×3 erosion. On probabilities p, ε is the soft erosion of clDice's soft skeleton (Shit et al., CVPR 2021):
a 3×3 min-pooling, ``-max_pool(-p)``; (1) with the soft erosion is exact on binary inputs and differentiable (almost
everywhere) on probabilities, so a network can be trained towards given sizes with plain backprop:
``SoftSizeLoss = (g_soft(σ(x)) − s)²``.

**Size bounds** (:class:`SizeBoundsLoss`). Kervadec et al., "Constrained-CNN losses for weakly supervised
segmentation", MedIA 54 (2019), eq. 5: a quadratic penalty on the soft area V = Σ_i p_i outside [a, b],

    f(V) = (V − a)²  if V < a;   (V − b)²  if V > b;   0 otherwise.                               (2)

Here the bounds come from the size g, as stated by :func:`size_bounds`: an object with size g contains a
(g − 1) × (g − 1) square (the square of Chebyshev radius d − 1 around a pixel at distance d), so a = (g − 1)² is a
true lower bound (the tempting g² is not: a single pixel has g = 2 and area 1); the upper bound is b = ρ · g², with ρ
the largest area / g² ratio of masks one has (e.g. the validation masks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import LossReduction, look_up_option
from torch.nn.modules.loss import _Loss

from weakseg.losses.utils import reduce_loss
from weakseg.kernels.size import object_size

__all__ = ["SizeBoundsLoss", "SoftSizeLoss", "max_area_ratio", "size_bounds", "soft_object_size"]


def soft_object_size(probs: torch.Tensor, border_is_background: bool = True,
                     max_iterations: int | None = None) -> torch.Tensor:
    """Eq. (1) with the soft erosion (3×3 min-pooling): ``probs`` (..., H, W) in [0, 1] -> sizes (...).

    Equal to :func:`weakseg.transforms.object_size` on binary masks (a test compares them), differentiable in
    ``probs``. ``border_is_background``: outside the image counts as background (pads with 0), as ``object_size``'s
    default; ``False`` pads with 1. ``max_iterations`` (default ⌈min(H, W) / 2⌉, enough for any binary mask).
    """
    shape = probs.shape
    if probs.ndim < 2:
        raise ValueError(f"soft_object_size: expected (..., H, W), got shape {tuple(shape)}")
    h, w = shape[-2:]
    e = probs.reshape(-1, 1, h, w)
    n = max_iterations if max_iterations is not None else (min(h, w) + 1) // 2
    pad = 0.0 if border_is_background else 1.0
    total = e.new_zeros(e.shape[0])
    for _ in range(n):
        total = total + e.amax(dim=(1, 2, 3))
        e = -F.max_pool2d(-F.pad(e, (1, 1, 1, 1), value=pad), 3, stride=1)
    return (2.0 * total).reshape(shape[:-2])


def size_bounds(sizes: torch.Tensor, upper_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Area bounds (a, b) = ((g − 1)², max(ρ g², a)) of eq. (2) from object sizes g (any shape); g = 0 gives (0, 0).
    ``upper_ratio`` ρ > 0, e.g. the largest area / g² of the validation masks."""
    if not upper_ratio > 0:
        raise ValueError(f"size_bounds: upper_ratio must be > 0, got {upper_ratio}")
    g = torch.as_tensor(sizes, dtype=torch.float32)
    lower = (g - 1).clamp(min=0) ** 2
    return lower, torch.maximum(upper_ratio * g**2, lower)


def max_area_ratio(masks) -> float:
    """ρ of :func:`size_bounds`: the largest area / g² over binary ``masks`` (an iterable of (…, H, W) arrays or
    tensors, e.g. the validation slices' labels); empty masks are skipped. Raises if none has foreground."""
    best = None
    for m in masks:
        t = torch.as_tensor(m)
        t = t.reshape(-1, *t.shape[-2:]) > 0
        g = object_size(t).float()
        area = t.flatten(1).sum(1).float()
        keep = g > 0
        if keep.any():
            r = float((area[keep] / g[keep] ** 2).max())
            best = r if best is None else max(best, r)
    if best is None:
        raise ValueError("max_area_ratio: no mask with foreground to estimate the area / g² ratio from")
    return best


def _prepare(input: torch.Tensor, sigmoid: bool) -> torch.Tensor:
    if input.ndim != 4 or input.shape[1] != 1:
        raise ValueError(f"expected input (B, 1, H, W), got shape {tuple(input.shape)}")
    return torch.sigmoid(input) if sigmoid else input


class SoftSizeLoss(_Loss):
    """``(g_soft(p) − s)²`` per image (eq. 1), then ``reduction``.

    ``forward(input, target)``: ``input`` (B, 1, H, W) logits (``sigmoid=True``, default) or probabilities,
    ``target`` sizes (B,) or (B, 1). ``scale`` divides the size difference (e.g. the typical size) so that the loss
    is O(1).
    """

    def __init__(self, sigmoid: bool = True, border_is_background: bool = True, scale: float = 1.0,
                 reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=look_up_option(reduction, LossReduction).value)
        if scale <= 0:
            raise ValueError(f"SoftSizeLoss: scale must be > 0, got {scale}")
        self.sigmoid, self.border_is_background, self.scale = sigmoid, border_is_background, float(scale)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = _prepare(input, self.sigmoid)
        g = soft_object_size(p[:, 0], self.border_is_background)
        s = torch.as_tensor(target, dtype=g.dtype, device=g.device).reshape(-1)
        if s.numel() != g.numel():
            raise ValueError(f"SoftSizeLoss: {s.numel()} target sizes for {g.numel()} images")
        return reduce_loss(((g - s) / self.scale) ** 2, self.reduction)


class SizeBoundsLoss(_Loss):
    """Kervadec et al.'s size penalty, eq. (2), on the soft area of each image, then ``reduction``.

    ``forward(input, target)``: ``input`` (B, 1, H, W) logits (``sigmoid=True``) or probabilities; ``target`` the
    bounds (B, 2) as (a, b) per image, e.g. ``torch.stack(size_bounds(g, ρ), 1)``; or, with ``upper_ratio`` set,
    the sizes g (B,) / (B, 1) from which the bounds are derived. ``normalize`` divides by (H·W)², so that the
    penalty does not grow with the image.
    """

    def __init__(self, sigmoid: bool = True, upper_ratio: float | None = None, normalize: bool = False,
                 reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=look_up_option(reduction, LossReduction).value)
        self.sigmoid, self.upper_ratio, self.normalize = sigmoid, upper_ratio, normalize

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = _prepare(input, self.sigmoid)
        v = p.sum(dim=(1, 2, 3))
        t = torch.as_tensor(target, dtype=v.dtype, device=v.device)
        if self.upper_ratio is not None:
            a, b = size_bounds(t.reshape(-1), self.upper_ratio)
            a, b = a.to(v), b.to(v)
        else:
            if t.shape != (v.numel(), 2):
                raise ValueError(f"SizeBoundsLoss: target must be bounds (B, 2) = (lower, upper), got shape "
                                 f"{tuple(t.shape)} (or set upper_ratio and pass sizes)")
            a, b = t[:, 0], t[:, 1]
        if a.numel() != v.numel():
            raise ValueError(f"SizeBoundsLoss: {a.numel()} targets for {v.numel()} images")
        loss = torch.where(v < a, (v - a) ** 2, torch.where(v > b, (v - b) ** 2, torch.zeros_like(v)))
        if self.normalize:
            loss = loss / float(p.shape[-1] * p.shape[-2]) ** 2
        return reduce_loss(loss, self.reduction)
