"""Closed contours (polygons) to masks, and mask centroids.

Coordinate convention used throughout ``weakseg`` for 2D contours: a point is ``(row, col)`` in pixel units and
pixel ``(r, c)`` has its centre at ``(r, c)``. A pixel belongs to the polygon when its centre lies inside it
(even–odd rule; a centre exactly on an edge follows the usual half-open scanline convention, so two
polygons sharing an edge never both claim a pixel). This is the
rasterisation of ``matplotlib.path.Path.contains_points`` on pixel centres, computed by scanlines for a batch
of polygons on their device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["mask_centroid", "polygon_to_mask"]


def polygon_to_mask(points: torch.Tensor | np.ndarray | Sequence, spatial_size: Sequence[int]) -> torch.Tensor:
    """Fill closed polygons.

    Scanline even–odd fill: for every pixel row the edges that straddle it (half-open rule) give their crossing
    columns; a pixel centre is inside when an odd number of crossings lie strictly to its right. The crossings
    are histogrammed per row and counted with a cumulative sum, so the cost is O(B·H·(K + W)) rather than the
    O(B·H·W·K) of testing every pixel against every edge.

    Args:
        points: ``(K, 2)`` or batched ``(B, K, 2)`` vertices ``(row, col)``; the last vertex joins the first.
        spatial_size: ``(H, W)`` of the output.

    Returns:
        bool tensor ``(H, W)`` or ``(B, H, W)``, on the device of ``points``: pixel centres inside the polygon.

    Raises:
        ValueError: fewer than 3 vertices, non-finite vertices, or a bad ``spatial_size``.
    """
    pts = torch.as_tensor(points, dtype=torch.float64 if not torch.is_tensor(points) else None)
    if not torch.is_floating_point(pts):
        pts = pts.double()
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ValueError(f"polygon points must have shape (K, 2) or (B, K, 2) as (row, col), got {tuple(pts.shape)}")
    if pts.shape[1] < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {pts.shape[1]}")
    if not torch.isfinite(pts).all():
        raise ValueError("polygon vertices must be finite")
    if len(spatial_size) != 2 or min(int(s) for s in spatial_size) < 1:
        raise ValueError(f"spatial_size must be two positive integers (H, W), got {spatial_size}")
    h, w = int(spatial_size[0]), int(spatial_size[1])
    b = pts.shape[0]
    r0, c0 = pts[..., 0], pts[..., 1]  # (B, K)
    r1, c1 = torch.roll(r0, -1, dims=1), torch.roll(c0, -1, dims=1)
    dr = r1 - r0
    safe = torch.where(dr == 0, torch.ones_like(dr), dr)
    slope = (c1 - c0) / safe  # col change per row along each edge
    out = torch.zeros(b, h, w, dtype=torch.bool, device=pts.device)
    # only rows between the lowest and highest vertex can hold a crossing
    lo_r = max(int(math.ceil(float(r0.min()))), 0)
    hi_r = min(int(math.floor(float(r0.max()))), h - 1)
    if hi_r < lo_r:
        return out[0] if single else out
    pr = torch.arange(lo_r, hi_r + 1, device=pts.device, dtype=pts.dtype)[None, :, None]  # (1, R, 1)
    r0, r1, c0, slope = r0[:, None], r1[:, None], c0[:, None], slope[:, None]  # (B, 1, K)
    crosses = (r0 > pr) != (r1 > pr)  # (B, R, K): the edge straddles the horizontal line through the row
    x_at = c0 + (pr - r0) * slope  # column where the edge meets that line
    # an integer column c has the crossing strictly to its right iff c < ceil(x_at): histogram ceil(x_at) (clamped
    # to [0, W]) per row; the crossings right of c are those in bins > c
    bins = torch.ceil(torch.where(crosses, x_at, torch.zeros_like(x_at))).clamp_(0, w).long()
    hist = torch.zeros(b, bins.shape[1], w + 1, dtype=torch.int32, device=pts.device)
    hist.scatter_add_(2, bins, crosses.to(torch.int32))
    right = crosses.sum(-1, dtype=torch.int32)[..., None] - hist[..., :w].cumsum(-1, dtype=torch.int32)
    out[:, lo_r : hi_r + 1] = right % 2 == 1
    return out[0] if single else out


def mask_centroid(mask: torch.Tensor | np.ndarray, inside: bool = True) -> torch.Tensor:
    """Centre ``(row, col)`` of a 2D mask ``(H, W)`` or a batch ``(B, [1,] H, W)`` → ``(2,)`` / ``(B, 2)`` float.

    With ``inside=True`` a centroid that falls outside a (non-convex) object is replaced by the object pixel
    nearest to it, so a star pattern centred there starts inside the object.

    Raises:
        ValueError: an empty mask (no object, no centre).
    """
    m = torch.as_tensor(mask)
    single = m.ndim == 2
    if single:
        m = m[None]
    if m.ndim == 4:
        m = m[:, 0]
    m = m > 0
    b, h, w = m.shape
    counts = m.flatten(1).sum(1)
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"mask_centroid: empty mask (no foreground) at batch index {empty}; cannot place a centre")
    rr = torch.arange(h, device=m.device, dtype=torch.float64)
    cc = torch.arange(w, device=m.device, dtype=torch.float64)
    mf = m.double()
    cen = torch.stack([(mf.sum(2) * rr).sum(1), (mf.sum(1) * cc).sum(1)], 1) / counts[:, None].double()
    if inside:
        ri = cen.round().long()
        ri[:, 0].clamp_(0, h - 1)
        ri[:, 1].clamp_(0, w - 1)
        outside = ~m[torch.arange(b, device=m.device), ri[:, 0], ri[:, 1]]
        # the object pixel nearest to the centroid (first in row-major order on ties), for every image at once
        d2 = (rr[None, :, None] - cen[:, 0, None, None]) ** 2 + (cc[None, None, :] - cen[:, 1, None, None]) ** 2
        near = torch.where(m, d2, torch.inf).flatten(1).argmin(1)
        nearest = torch.stack([(near // w).double(), (near % w).double()], 1)
        cen = torch.where(outside[:, None], nearest, cen)
    cen = cen.float()
    return cen[0] if single else cen
