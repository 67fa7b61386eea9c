"""Dice, average symmetric surface distance (ASSD) and Hausdorff distance in millimetres, per slice.

MONAI's ``HausdorffDistanceMetric`` and ``SurfaceDistanceMetric`` take the pixel spacing at call time, while
its ignite handlers only pass ``(y_pred, y)``. :class:`SpacedDistance` is the handler that also passes the
per-sample ``spacing`` found in the batch (e.g. the ``spacing`` key written by
:class:`weakseg.data.LoadLVSliced`), so metrics are in mm even when slices have different pixel sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.metrics import (
    HausdorffDistanceMetric,
    SurfaceDistanceMetric,
    compute_average_surface_distance,
    compute_dice,
    compute_hausdorff_distance,
)

__all__ = ["contour_scores", "SpacedDistance"]


def contour_scores(pred: torch.Tensor, label: torch.Tensor, spacing: Sequence | torch.Tensor | None = None
                   ) -> dict[str, np.ndarray]:
    """Per-image Dice, ASSD (symmetric, mm) and Hausdorff distance (mm) of binary masks (B, 1, H, W).

    ``spacing``: (2,) shared or (B, 2) per image, in mm (None: pixels). Distances are NaN when the prediction
    is empty (MONAI returns inf/nan there); Dice is then 0.
    """
    p = (torch.as_tensor(pred) > 0.5).float().cpu()
    y = (torch.as_tensor(label) > 0.5).float().cpu()
    b = p.shape[0]
    sp = None
    if spacing is not None:
        s = torch.as_tensor(spacing, dtype=torch.float64).cpu()
        sp = [s.tolist()] * b if s.ndim == 1 else [row.tolist() for row in s]
    dice = compute_dice(p, y, include_background=True, ignore_empty=False)[:, 0].numpy()
    empty = p.flatten(1).sum(1) == 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assd = compute_average_surface_distance(p, y, include_background=True, symmetric=True, spacing=sp)[:, 0]
        hd = compute_hausdorff_distance(p, y, include_background=True, spacing=sp)[:, 0]
    assd = assd.double().numpy()
    hd = hd.double().numpy()
    assd[empty.numpy()] = np.nan
    hd[empty.numpy()] = np.nan
    return {"dice": dice.astype(np.float64), "assd": assd, "hd": hd}


class SpacedDistance(IgniteMetricHandler):
    """Ignite handler of MONAI's Hausdorff (``metric="hd"``, optional ``percentile``) or average symmetric
    surface distance (``metric="assd"``) with each sample's pixel spacing taken from the batch's
    ``spacing_key`` ((B, 2) collated, or per item after decollation); without that key, from each label's
    header (``MetaTensor.pixdim``: mm for NIfTI, 1 for PNG/JPEG, whose files hold no spacing); else pixel units.

    Args:
        metric: ``"hd"`` or ``"assd"``.
        include_background, percentile, reduction: as in MONAI's metrics.
        spacing_key: batch key holding the pixel spacing.
        output_transform: engine output → ``(y_pred, y)``, as for MONAI's handlers.
        unit_suffix: store the result as ``<name>_mm`` when every case had a physical spacing (the batch's
            ``spacing_key``, or a header that holds one: NIfTI ``pixdim``, ITK ``spacing``) and ``<name>_px`` when
            none had (PNG/JPEG labels, in-memory tensors), e.g. ``hd95_mm``; cases of both kinds in one run raise a
            ``ValueError``. ``False`` (default): ``<name>``.
    """

    def __init__(self, metric: str = "hd", include_background: bool = True, percentile: float | None = None,
                 spacing_key: str = "spacing", reduction: str = "mean",
                 output_transform: Callable = lambda x: x, save_details: bool = True,
                 unit_suffix: bool = False) -> None:
        if metric == "hd":
            fn = HausdorffDistanceMetric(include_background=include_background, percentile=percentile,
                                         reduction=reduction)
        elif metric == "assd":
            fn = SurfaceDistanceMetric(include_background=include_background, symmetric=True, reduction=reduction)
        else:
            raise ValueError(f"metric must be 'hd' or 'assd', got {metric!r}")
        self.spacing_key = spacing_key
        self.unit_suffix = unit_suffix
        self.units: set[str] = set()
        super().__init__(metric_fn=fn, output_transform=output_transform, save_details=save_details)

    def _spacing(self, engine) -> list | None:
        batch = engine.state.batch
        if isinstance(batch, dict):
            s = batch.get(self.spacing_key)
            return None if s is None else [list(map(float, r)) for r in torch.as_tensor(s).reshape(-1, 2)]
        if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], dict) and self.spacing_key in batch[0]:
            return [list(map(float, torch.as_tensor(it[self.spacing_key]).reshape(-1))) for it in batch]
        return None

    def iteration_completed(self, engine) -> None:  # type: ignore[override]
        y_pred, y = self._output_transform(engine.state.output)
        spacing = self._spacing(engine)
        if spacing is not None:
            self.units.add("mm")
        elif isinstance(y, (list, tuple)) and y and all(isinstance(t, MetaTensor) for t in y):
            spacing = [[float(s) for s in torch.as_tensor(t.pixdim).reshape(-1)[: t.ndim - 1]] for t in y]
            self.units.update("mm" if ("pixdim" in t.meta or "spacing" in t.meta) else "px" for t in y)
        else:
            self.units.add("px")
        if spacing is not None and len(spacing) != len(y_pred):
            raise ValueError(f"SpacedDistance: {len(spacing)} spacings for {len(y_pred)} predictions")
        if isinstance(y_pred, (list, tuple)):  # decollated: one call per sample, each with its own spacing
            for i, (p, t) in enumerate(zip(y_pred, y)):
                self.metric_fn(p[None], t[None], spacing=None if spacing is None else [spacing[i]])
        else:
            self.metric_fn(y_pred, y, spacing=spacing)

    def reset(self) -> None:
        super().reset()
        self.units = set()

    def completed(self, engine, name: str) -> None:  # type: ignore[override]
        super().completed(engine, name)
        if not self.unit_suffix or not self.units:
            return
        if len(self.units) > 1:
            raise ValueError(f"{name}: some cases have a physical spacing (mm) and others not (pixels); evaluate them "
                             "separately or pass a spacing for every case.")
        new = f"{name}_{next(iter(self.units))}"
        engine.state.metrics[new] = engine.state.metrics.pop(name)
        details = getattr(engine.state, "metric_details", None)
        if isinstance(details, dict) and name in details:
            details[new] = details.pop(name)
