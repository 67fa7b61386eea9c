"""Average Hausdorff distance (AHD) and its balanced and modified (percentile) variants.

For ground truth G and prediction S (pixel sets, not only their surfaces), with d(x, A) the Euclidean distance
(in units of ``spacing``) from x to the nearest pixel of A:

    AHD(G, S)  = ½ ( (1/|G|) Σ_{g∈G} d(g, S) + (1/|S|) Σ_{s∈S} d(s, G) )        (Aydin et al. 2021, eq. 1)
    bAHD(G, S) = ½ ( (1/|G|) Σ_{g∈G} d(g, S) + (1/|G|) Σ_{s∈S} d(s, G) )        (balanced: both terms over |G|)
    MAHD(G, S) = ½ ( P_q{d(g, S) : g∈G} + P_q{d(s, G) : s∈S} )                   (modified: q-th percentile, q=95)

Worked values (G = 3×3 square centred in 7×7): one extra false-positive pixel in a corner → AHD = 0.141421,
bAHD = 0.157135; one missing corner pixel → AHD = 0.055556.

Both sets empty → 0 (nothing to miss); exactly one empty → NaN (undefined), which the reduction skips and
``get_not_nans`` counts, as MONAI does for its Hausdorff distance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction, get_surface_distance, ignore_background
from monai.utils import MetricReduction

__all__ = ["VARIANTS", "average_hausdorff_distance", "AverageHausdorffDistanceMetric", "AverageHausdorffDistance"]

VARIANTS = ("ahd", "balanced", "modified")


def _one(pred: np.ndarray, gt: np.ndarray, variant: str, percentile: float, spacing) -> float:
    n_s, n_g = int(pred.sum()), int(gt.sum())
    if n_s == 0 and n_g == 0:
        return 0.0
    if n_s == 0 or n_g == 0:
        return float("nan")
    g_to_s = np.asarray(get_surface_distance(gt, pred, "euclidean", spacing), dtype=np.float64)
    s_to_g = np.asarray(get_surface_distance(pred, gt, "euclidean", spacing), dtype=np.float64)
    if variant == "ahd":
        return 0.5 * (g_to_s.mean() + s_to_g.mean())
    if variant == "balanced":
        return 0.5 * (g_to_s.sum() + s_to_g.sum()) / n_g
    return 0.5 * (np.percentile(g_to_s, percentile) + np.percentile(s_to_g, percentile))


def average_hausdorff_distance(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = False,
    variant: str = "ahd",
    percentile: float = 95.0,
    spacing: float | Sequence[float] | None = None,
) -> torch.Tensor:
    """AHD / bAHD / MAHD of binarised one-hot (B, C, H, W[, D]) tensors → (B, C) float32 (see module)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    y_pred, y = torch.as_tensor(y_pred), torch.as_tensor(y)
    if y_pred.shape != y.shape or y_pred.ndim < 3:
        raise ValueError(f"y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} must both be (B, C, *spatial)")
    for name, t in (("y_pred", y_pred), ("y", y)):
        if not torch.all((t == 0) | (t == 1)):
            raise ValueError(f"average_hausdorff_distance: {name} must be binarised (0/1), e.g. with AsDiscrete")
    if not include_background:
        y_pred, y = ignore_background(y_pred, y)
    p = y_pred.detach().cpu().numpy().astype(bool)
    g = y.detach().cpu().numpy().astype(bool)
    out = np.empty(p.shape[:2], dtype=np.float32)
    for b in range(p.shape[0]):
        for c in range(p.shape[1]):
            out[b, c] = _one(p[b, c], g[b, c], variant, percentile, spacing)
    return torch.as_tensor(out, device=y_pred.device)


class AverageHausdorffDistanceMetric(CumulativeIterationMetric):
    """MONAI-style cumulative metric for AHD, balanced AHD or modified (percentile) AHD.

    Args:
        include_background: whether to include channel 0 (default False, as MONAI's Hausdorff distance).
        variant: ``"ahd"``, ``"balanced"`` or ``"modified"``.
        percentile: q of the modified variant (thesis: 95).
        spacing: pixel spacing, scalar or per spatial axis (default 1).
        reduction, get_not_nans: as MONAI metrics.
    Call with binarised one-hot ``y_pred`` and ``y`` of shape (B, C, H, W[, D]).
    """

    def __init__(
        self,
        include_background: bool = False,
        variant: str = "ahd",
        percentile: float = 95.0,
        spacing: float | Sequence[float] | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.include_background, self.variant, self.percentile = include_background, variant, percentile
        self.spacing, self.reduction, self.get_not_nans = spacing, reduction, get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return average_hausdorff_distance(
            y_pred, y, self.include_background, self.variant, self.percentile, self.spacing
        )

    def aggregate(self, reduction: MetricReduction | str | None = None):
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class AverageHausdorffDistance(IgniteMetricHandler):
    """Ignite handler of :class:`AverageHausdorffDistanceMetric` (e.g. ``val_mahd`` with ``variant="modified"``)."""

    def __init__(
        self,
        include_background: bool = False,
        variant: str = "ahd",
        percentile: float = 95.0,
        spacing: float | Sequence[float] | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = AverageHausdorffDistanceMetric(include_background, variant, percentile, spacing, reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
