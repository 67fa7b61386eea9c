"""EDPCNN's synthetic-gradient approximator network (the star pattern and the DP are in :mod:`weakseg.kernels.contour`).

Nguyen & Ray, "End-to-end learning of convolutional neural net and dynamic programming for left ventricle
segmentation", MIDL 2020.

Pipeline (paper Fig. 1): the network's output map ``f`` (B, 1, H, W) is sampled on a **star pattern** of N rays
around the object centre, M + 1 points per ray; the difference of neighbouring samples along each ray is the
directional derivative ``g`` (B, N, M), the "warped map" (paper eq. 1). The **DP** (Algorithm 1) picks one
index ``v_n`` per ray so that the closed contour minimises

    Σ_{n=0}^{N-1} E(n, v_n, v_{n+1 mod N}),   E(n, i, j) = (g[n, i] + g[n+1, j]) / 2  if |i − j| ≤ δ, else ∞   (eq. 2)

i.e. it follows the steepest inside→outside descent of ``f`` while moving at most δ indices between
neighbouring rays. Index ``i`` on ray ``n`` is the boundary between samples ``i`` and ``i + 1``, at radius
``(i + ½)·R/M`` from the centre. Because the DP is not differentiable, a small network ``F`` (the
:class:`DPApproximator`) learns to predict its output from noisy warped maps, and its gradient trains the U-Net
(synthetic gradient, Algorithm 2; see :class:`weakseg.engines.EDPCNNTrainer`).

Coordinates are ``(row, col)`` in pixels with pixel centres at integers; ray ``n`` points along
``(sin θ_n, cos θ_n)`` with ``θ_n = rotation + 2πn/N``.
"""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet

from weakseg.kernels.contour import StarPattern, dp_contour, smooth_indices

__all__ = ["StarPattern", "dp_contour", "smooth_indices", "DPApproximator"]


class DPApproximator(torch.nn.Module):
    """``F``: warped map (B, N, M) → per-ray index logits (B, N, M), trained with cross-entropy to the DP's
    indices so that its gradient can stand in for the DP's (synthetic gradient, paper Sec. 2.2).

    A MONAI :class:`~monai.networks.nets.BasicUNet` with features ``(b, b, 2b, 4b, 8b, b)`` (paper: b = 8),
    applied to the warped map as a one-channel image; rays are padded circularly (``ray_padding`` on each
    side) because ray 0 neighbours ray N − 1.
    """

    def __init__(self, base_channels: int = 8, ray_padding: int = 4, norm: str | tuple = "instance") -> None:
        super().__init__()
        b = int(base_channels)
        if b < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        self.ray_padding = int(ray_padding)
        self.net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=(b, b, 2 * b, 4 * b, 8 * b, b),
                             norm=norm)

    def forward(self, warped: torch.Tensor) -> torch.Tensor:
        if warped.ndim != 3:
            raise ValueError(f"DPApproximator expects (B, N, M) warped maps, got {tuple(warped.shape)}")
        p = self.ray_padding
        if ((warped.shape[1] + 2 * p) // 16) * (warped.shape[2] // 16) < 2:
            raise ValueError(f"DPApproximator: warped map (N={warped.shape[1]}, M={warped.shape[2]}) too small for 4 "
                             "poolings; need (N + 2*ray_padding)//16 * (M//16) >= 2, e.g. M >= 32")
        x = warped[:, None]
        if p:
            x = torch.cat([x[:, :, -p:], x, x[:, :, :p]], 2)
        y = self.net(x)[:, 0]
        return y[:, p : y.shape[1] - p] if p else y
