"""Topology metrics: hard clDice (Shit et al., CVPR 2021) and Betti-number errors.

clDice of binary masks P (prediction) and G (ground truth) with skeletons S_P, S_G (scikit-image
``skeletonize``, 2D and 3D):

    Tprec = |S_P ∩ G| / |S_P|,   Tsens = |S_G ∩ P| / |S_G|,   clDice = 2 Tprec Tsens / (Tprec + Tsens)   (eqs. 1–2)

Both masks empty → 1; exactly one of the skeletons empty → 0.

Betti numbers of a binary mask (foreground 8-connected in 2D / 26-connected in 3D, background 4- / 6-connected,
the dual pair that makes the counts consistent):

- β₀: connected components of the foreground;
- β₁: in 2D the holes (background components that do not touch the image border); in 3D the tunnels, from
  the Euler characteristic χ = β₀ − β₁ + β₂ (``skimage.measure.euler_number``), with β₂ the cavities;

and the Betti errors are ``|β_k(P) − β_k(G)|``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

__all__ = ["skeleton", "cl_dice", "betti_numbers", "ClDiceMetric", "BettiErrorMetric", "ClDice", "BettiError"]


def _np_mask(x) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D mask, got shape {a.shape}")
    return a > 0.5 if a.dtype != bool else a


def skeleton(mask) -> np.ndarray:
    """Skeleton of a 2D or 3D binary mask (``skimage.morphology.skeletonize``, which handles 3D since 0.26)."""
    from skimage.morphology import skeletonize

    m = _np_mask(mask)
    return skeletonize(m).astype(bool)


def cl_dice(pred, target) -> float:
    """Hard clDice of two binary masks (2D or 3D), eqs. 1–2 of Shit et al. (see the module docstring)."""
    p, g = _np_mask(pred), _np_mask(target)
    if p.shape != g.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {g.shape}")
    if not p.any() and not g.any():
        return 1.0
    sp, sg = skeleton(p), skeleton(g)
    if not sp.any() or not sg.any():
        return 0.0
    tprec = (sp & g).sum() / sp.sum()
    tsens = (sg & p).sum() / sg.sum()
    return float(0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens))


def betti_numbers(mask) -> tuple[int, int]:
    """(β₀, β₁) of a 2D or 3D binary mask (see the module docstring for the connectivities)."""
    from scipy import ndimage

    m = _np_mask(mask)
    nd = m.ndim
    fg = ndimage.generate_binary_structure(nd, nd)  # 8 / 26
    bg = ndimage.generate_binary_structure(nd, 1)  # 4 / 6
    b0 = int(ndimage.label(m, structure=fg)[1])
    padded = np.pad(~m, 1, constant_values=True)  # the outside is one background component
    n_bg = int(ndimage.label(padded, structure=bg)[1])
    enclosed = n_bg - 1  # 2D: holes; 3D: cavities (β₂)
    if nd == 2:
        return b0, enclosed
    from skimage.measure import euler_number

    chi = int(euler_number(m, connectivity=3))
    return b0, b0 + enclosed - chi


def _per_sample(fn, y_pred: torch.Tensor, y: torch.Tensor, include_background: bool, width: int) -> torch.Tensor:
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred and y shapes differ: {tuple(y_pred.shape)} vs {tuple(y.shape)}")
    if y_pred.ndim not in (4, 5):
        raise ValueError(f"expected (B, C, H, W[, D]) one-hot masks, got shape {tuple(y_pred.shape)}")
    c0 = 0 if include_background or y_pred.shape[1] == 1 else 1
    out = torch.zeros(y_pred.shape[0], y_pred.shape[1] - c0, width, dtype=torch.float32)
    for b in range(y_pred.shape[0]):
        for c in range(c0, y_pred.shape[1]):
            out[b, c - c0] = torch.as_tensor(fn(y_pred[b, c], y[b, c]), dtype=torch.float32)
    return out


class ClDiceMetric(CumulativeIterationMetric):
    """MONAI-style cumulative hard clDice of binarised one-hot (B, C, H, W[, D]) tensors → (B, C)."""

    def __init__(self, include_background: bool = True, reduction: MetricReduction | str = MetricReduction.MEAN,
                 get_not_nans: bool = False) -> None:
        super().__init__()
        self.include_background, self.reduction, self.get_not_nans = include_background, reduction, get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _per_sample(lambda p, t: [cl_dice(p, t)], y_pred, y, self.include_background, 1)[..., 0]

    def aggregate(self, reduction: MetricReduction | str | None = None):
        f, not_nans = do_metric_reduction(self.get_buffer(), reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class BettiErrorMetric(CumulativeIterationMetric):
    """MONAI-style cumulative Betti-number error ``|β_k(pred) − β_k(target)|`` for ``betti`` k ∈ {0, 1} of
    binarised one-hot (B, C, H, W[, D]) tensors → (B, C)."""

    def __init__(self, betti: int = 0, include_background: bool = True,
                 reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__()
        if betti not in (0, 1):
            raise ValueError(f"betti must be 0 (components) or 1 (holes / loops), got {betti}")
        self.betti, self.include_background = betti, include_background
        self.reduction, self.get_not_nans = reduction, get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        def err(p, t):
            return [abs(betti_numbers(p)[self.betti] - betti_numbers(t)[self.betti])]

        return _per_sample(err, y_pred, y, self.include_background, 1)[..., 0]

    def aggregate(self, reduction: MetricReduction | str | None = None):
        f, not_nans = do_metric_reduction(self.get_buffer(), reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class ClDice(IgniteMetricHandler):
    """Ignite handler of :class:`ClDiceMetric` (e.g. ``val_cldice``)."""

    def __init__(self, include_background: bool = True, reduction: MetricReduction | str = MetricReduction.MEAN,
                 output_transform: Callable = lambda x: x, save_details: bool = True) -> None:
        super().__init__(metric_fn=ClDiceMetric(include_background, reduction), output_transform=output_transform,
                         save_details=save_details)


class BettiError(IgniteMetricHandler):
    """Ignite handler of :class:`BettiErrorMetric` (e.g. ``val_betti0_error`` with ``betti=0``)."""

    def __init__(self, betti: int = 0, include_background: bool = True,
                 reduction: MetricReduction | str = MetricReduction.MEAN, output_transform: Callable = lambda x: x,
                 save_details: bool = True) -> None:
        super().__init__(metric_fn=BettiErrorMetric(betti, include_background, reduction),
                         output_transform=output_transform, save_details=save_details)
