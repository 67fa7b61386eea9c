"""
Residual Attention U-Net: a U-Net whose encoder/decoder blocks are MONAI residual units (He et al. 2016, as in
MONAI's ``UNet(num_res_units=…)``) and whose skip connections pass through additive attention gates
(Oktay et al., "Attention U-Net: learning where to look for the pancreas", MIDL 2018, eqs. 1–2):

    q   = ReLU(W_x^T x_l + W_g^T g + b_g)          1×1 convs of the skip x_l (strided onto the gating grid)
                                                 and of the gating signal g (the coarser decoder features)
    α_l = σ(ψ^T q + b_ψ)                          attention coefficients in [0, 1], on the gating grid
    x̂_l = x_l · resample(α_l)                     (bi/tri)linear upsampling of α_l to the skip's grid

MONAI's ``AttentionUnet`` gates with the already upsampled decoder features and uses plain conv blocks; this
network keeps MONAI's argument conventions (``spatial_dims``, ``in/out_channels``, ``channels``, ``strides``,
``num_res_units``, ``dropout``…) so it swaps with ``monai.networks.nets.UNet`` in a config, and it is
TorchScript-able. Spatial sizes must be divisible by the product of ``strides``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.layers.factories import Act, Norm

__all__ = ["AttentionGate", "ResAttUNet", "thesis_network", "NETWORKS"]


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018, eqs. 1–2).

    Args:
        spatial_dims: 2 or 3.
        skip_channels: channels of the skip features x (fine grid).
        gating_channels: channels of the gating signal g (coarse grid).
        inter_channels: channels of q (default skip_channels // 2, at least 1).
        stride: ratio between the skip grid and the gating grid.
    forward(x (B, C_x, *S), g (B, C_g, *S/stride)) → (B, C_x, *S), the gated skip features.
    ``self.psi`` ends in the sigmoid, so a forward hook on it sees α on the gating grid.
    """

    def __init__(
        self, spatial_dims: int, skip_channels: int, gating_channels: int, inter_channels: int | None = None, stride=2
    ) -> None:
        super().__init__()
        inter = inter_channels or max(skip_channels // 2, 1)
        self.theta_x = Convolution(
            spatial_dims, skip_channels, inter, strides=stride, kernel_size=1, padding=0, conv_only=True, bias=False
        )
        self.phi_g = Convolution(spatial_dims, gating_channels, inter, kernel_size=1, padding=0, conv_only=True)
        self.psi = nn.Sequential(
            Convolution(spatial_dims, inter, 1, kernel_size=1, padding=0, conv_only=True), nn.Sigmoid()
        )
        self.mode = "bilinear" if spatial_dims == 2 else "trilinear"

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        theta = self.theta_x(x)
        phi = self.phi_g(g)
        if phi.shape[2:] != theta.shape[2:]:
            phi = F.interpolate(phi, size=theta.shape[2:], mode=self.mode, align_corners=False)
        alpha = self.psi(F.relu(theta + phi))
        alpha = F.interpolate(alpha, size=x.shape[2:], mode=self.mode, align_corners=False)
        return x * alpha


class _Level(nn.Module):
    """One encoder/decoder level: down(x) → deeper → up-conv, gate the skip x with the deeper features, merge."""

    def __init__(self, spatial_dims, c_in, c_out, stride, deeper: nn.Module, make_unit, up_kernel_size) -> None:
        super().__init__()
        self.down = make_unit(c_in, c_out, stride)
        self.deeper = deeper
        self.up = Convolution(
            spatial_dims,
            c_out,
            c_in,
            strides=stride,
            kernel_size=up_kernel_size,
            act=Act.PRELU,
            norm=Norm.INSTANCE,
            is_transposed=True,
        )
        self.gate = AttentionGate(spatial_dims, c_in, c_out, stride=stride)
        self.merge = make_unit(2 * c_in, c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.deeper(self.down(x))
        up = self.up(low)
        skip = self.gate(x, low)
        return self.merge(torch.cat([skip, up], dim=1))


class ResAttUNet(nn.Module):
    """Residual Attention U-Net (module docstring).

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: input channels and output classes (logits are returned).
        channels: feature channels per level, top first (at least 2), e.g. (32, 64, 128, 256).
        strides: downsampling stride between levels, ``len(channels) - 1`` of them.
        kernel_size, up_kernel_size: conv and transposed-conv kernel sizes.
        num_res_units: convolutions per residual unit (≥ 1; 2 as in the thesis and MONAI's UNet examples).
        act, norm, dropout: as MONAI ``UNet`` (default PReLU, instance norm, no dropout).
    Input (B, in_channels, *S) → output (B, out_channels, *S).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        strides: Sequence[int],
        kernel_size: int = 3,
        up_kernel_size: int = 3,
        num_res_units: int = 2,
        act=Act.PRELU,
        norm=Norm.INSTANCE,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"ResAttUNet: spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(channels) < 2:
            raise ValueError(f"ResAttUNet: channels needs at least 2 levels, got {list(channels)}")
        if len(strides) != len(channels) - 1:
            raise ValueError(
                f"ResAttUNet: len(strides) must be len(channels) - 1 = {len(channels) - 1}, got {list(strides)}"
            )
        if num_res_units < 1:
            raise ValueError(f"ResAttUNet: num_res_units must be ≥ 1, got {num_res_units}")
        self.dimensions, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.channels, self.strides = tuple(channels), tuple(strides)

        def make_unit(c_in: int, c_out: int, stride) -> nn.Module:
            return ResidualUnit(
                spatial_dims,
                c_in,
                c_out,
                strides=stride,
                kernel_size=kernel_size,
                subunits=num_res_units,
                act=act,
                norm=norm,
                dropout=dropout,
            )

        block: nn.Module = nn.Identity()
        for i in range(len(channels) - 2, -1, -1):
            if i == len(channels) - 2:  # the bottom: one residual unit at the coarsest level
                deeper: nn.Module = make_unit(channels[-1], channels[-1], 1)
            else:
                deeper = block
            block = _Level(spatial_dims, channels[i], channels[i + 1], strides[i], deeper, make_unit, up_kernel_size)
        self.head = make_unit(in_channels, channels[0], 1)
        self.body = block
        self.out = Convolution(spatial_dims, channels[0], out_channels, kernel_size=1, padding=0, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.head(x)))


NETWORKS = ("unet", "attention_unet", "res_attention_unet")


def thesis_network(
    name: str,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int],
    strides: Sequence[int],
    num_res_units: int = 2,
    dropout: float = 0.0,
) -> nn.Module:
    """One of the thesis's three networks, by name, with shared arguments (so a config switches them with one
    override, ``--network_name attention_unet``):

    - ``"unet"``: MONAI ``UNet`` with ``num_res_units`` residual units;
    - ``"attention_unet"``: MONAI ``AttentionUnet`` (plain conv blocks; ``num_res_units`` unused);
    - ``"res_attention_unet"``: :class:`ResAttUNet`.
    """
    from monai.networks.nets import AttentionUnet, UNet

    if name == "unet":
        return UNet(spatial_dims, in_channels, out_channels, channels, strides, num_res_units=num_res_units, dropout=dropout)
    if name == "attention_unet":
        return AttentionUnet(spatial_dims, in_channels, out_channels, channels, strides, dropout=dropout)
    if name == "res_attention_unet":
        return ResAttUNet(spatial_dims, in_channels, out_channels, channels, strides, num_res_units=num_res_units, dropout=dropout)
    raise ValueError(f"unknown network name {name!r}; expected one of {', '.join(NETWORKS)}")
