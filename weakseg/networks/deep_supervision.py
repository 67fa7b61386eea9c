"""Deep-supervision heads on the decoder levels of a U-Net (Reiß et al., CVPR 2021).

:class:`DeepSupervisionHeads` wraps a network, records the outputs of chosen decoder modules with forward hooks
and maps each with a 1×1 convolution head to ``out_channels`` logits. In training mode it returns
``[final, head_1(level_1), ..., head_L(level_L)]`` (finest to coarsest), in eval mode only ``final`` (so
inferers, metrics and exports see a plain network); ``always_list=True`` returns the list in both modes.
:func:`unet_decoder_levels` finds the decoder modules of MONAI's ``UNet``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from monai.networks.layers import Conv
from monai.networks.layers.simplelayers import SkipConnection
from monai.networks.nets import UNet

__all__ = ["DeepSupervisionHeads", "unet_decoder_levels"]


def unet_decoder_levels(unet: UNet) -> list[tuple[torch.nn.Module, int]]:
    """``(module, channels)`` of the decoder ("up") blocks of a MONAI ``UNet`` below the output block, finest
    first: the block at 1/2 resolution outputs ``channels[0]``, the next ``channels[1]`` and so on."""
    if not isinstance(unet, UNet):
        raise TypeError(f"unet_decoder_levels expects a monai.networks.nets.UNet, got {type(unet).__name__}")
    levels, m = [], unet.model
    while isinstance(m, torch.nn.Sequential) and len(m) == 3 and isinstance(m[1], SkipConnection):
        levels.append(m[2])
        m = m[1].submodule
    # levels[0] is the output block; level k (k >= 1) outputs channels[k - 1]
    return [(mod, int(unet.channels[k - 1])) for k, mod in enumerate(levels) if k >= 1]


class DeepSupervisionHeads(torch.nn.Module):
    """Args:
        network: the segmentation network (its output is the finest level).
        levels: ``(module, channels)`` per supervised decoder level (e.g. :func:`unet_decoder_levels`), or None
            for a MONAI ``UNet``.
        out_channels: channels of every head (default: read from the network's ``out_channels``).
        spatial_dims: 2 or 3 (default: the network's ``dimensions``/``spatial_dims``).
        always_list: return the list of levels in eval mode too.
    """

    def __init__(self, network: torch.nn.Module, levels: Sequence[tuple[torch.nn.Module, int]] | None = None,
                 out_channels: int | None = None, spatial_dims: int | None = None, always_list: bool = False) -> None:
        super().__init__()
        self.network = network
        levels = unet_decoder_levels(network) if levels is None else list(levels)
        if not levels:
            raise ValueError("DeepSupervisionHeads: no decoder levels to supervise")
        out_channels = int(out_channels if out_channels is not None else getattr(network, "out_channels"))
        nd = int(spatial_dims or getattr(network, "dimensions", None) or getattr(network, "spatial_dims"))
        self.heads = torch.nn.ModuleList(Conv[Conv.CONV, nd](c, out_channels, kernel_size=1) for _, c in levels)
        self.always_list = always_list
        self._features: list[torch.Tensor | None] = [None] * len(levels)
        for i, (mod, _) in enumerate(levels):
            mod.register_forward_hook(self._hook(i))

    def _hook(self, i: int):
        def fn(_module, _inp, out):
            self._features[i] = out

        return fn

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """TorchScript (``torch.jit.script``, MONAI ``ckpt_export``) gets the eval-mode network: a copy of the
        wrapped network without the recording hooks; the heads are for training only."""
        net = copy.deepcopy(self.network)
        for m in net.modules():
            m._forward_hooks.clear()
        return net

    def forward(self, x: torch.Tensor):
        self._features = [None] * len(self.heads)
        out = self.network(x)
        if not (self.training or self.always_list):
            return out
        if any(f is None for f in self._features):
            raise RuntimeError("DeepSupervisionHeads: a decoder level did not run")
        feats, self._features = self._features, [None] * len(self.heads)
        return [out] + [h(f) for h, f in zip(self.heads, feats)]
