"""EDPCNN's approximator F (Nguyen & Ray, MIDL 2020, Sec. 2.2): a small network that learns the DP's output from
noisy warped maps so that its gradient can train the U-Net through the DP (synthetic gradient, Algorithm 2; see
:class:`weakseg.engines.EDPCNNTrainer`). The star pattern, the warped map (eq. 1) and the DP (Algorithm 1, eq. 2)
are in :mod:`weakseg.kernels.contour`.
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
