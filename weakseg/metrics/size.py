"""Size error E = (g(y) − g(ŷ))² (Baručić & Kybic 2022, eq. 22) as a MONAI metric and ignite handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from weakseg.kernels.size import object_size

__all__ = ["SizeErrorMetric", "SizeError"]


class SizeErrorMetric(CumulativeIterationMetric):
    """
    Squared size error per image, E = (g(y) − g(ŷ))² (eq. 22), g the object size (eqs. 3–5).

    ``y_pred``: binarised predictions ``(B, 1, H, W)``; ``y``: ground-truth masks ``(B, 1, H, W)`` or sizes
    ``(B,)`` / ``(B, 1)``. ``aggregate()`` reduces over all images seen (mean by default).
    """

    def __init__(self, border_is_background: bool = True, reduction: MetricReduction | str = MetricReduction.MEAN,
                 get_not_nans: bool = False) -> None:
        super().__init__()
        self.border_is_background = border_is_background
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if y_pred.ndim != 4 or y_pred.shape[1] != 1:
            raise ValueError(f"SizeErrorMetric: y_pred must be (B, 1, H, W), got {tuple(y_pred.shape)}")
        g_pred = object_size(y_pred[:, 0] > 0.5, self.border_is_background).double()
        if y.ndim == 4:
            g_true = object_size(y[:, 0] > 0.5, self.border_is_background).double()
        else:
            g_true = torch.as_tensor(y, device=y_pred.device).reshape(-1).double()
        return ((g_true - g_pred) ** 2).view(-1, 1)

    def aggregate(self, reduction: MetricReduction | str | None = None) -> Any:
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("SizeErrorMetric: nothing to aggregate")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class SizeError(IgniteMetricHandler):
    """Ignite handler of :py:class:`SizeErrorMetric` (lower is better)."""

    def __init__(
        self,
        border_is_background: bool = True,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(
            metric_fn=SizeErrorMetric(border_is_background=border_is_background),
            output_transform=output_transform,
            save_details=save_details,
        )
