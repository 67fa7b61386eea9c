"""Residual Attention U-Net: shapes in 2D/3D, attention coefficients in [0, 1], TorchScript, config factory."""

import pytest
import torch
from monai.networks import eval_mode
from monai.networks.nets import AttentionUnet, UNet

from weakseg.networks import AttentionGate, ResAttUNet, thesis_network


class TestResAttUNet:
    def test_shapes_2d_3d(self):
        for dims, size in ((2, (48, 32)), (3, (16, 16, 8))):
            net = ResAttUNet(dims, 2, 3, channels=(4, 8, 16), strides=(2, 2), dropout=0.1)
            with eval_mode(net):
                out = net(torch.randn(2, 2, *size))
            assert tuple(out.shape) == (2, 3, *size)

    def test_attention_coefficients_in_unit_interval(self):
        net = ResAttUNet(2, 1, 1, channels=(4, 8, 16, 32), strides=(2, 2, 2))
        seen = []
        for m in net.modules():
            if isinstance(m, AttentionGate):
                m.psi.register_forward_hook(lambda mod, i, o: seen.append(o.detach()))
        net(torch.randn(3, 1, 48, 32) * 10)
        assert len(seen) == 3  # one gate per skip connection
        for a in seen:
            assert a.shape[1] == 1
            assert a.min().item() >= 0.0
            assert a.max().item() <= 1.0

    def test_gate_resamples_to_skip_grid_and_gradients_flow(self):
        gate = AttentionGate(2, skip_channels=6, gating_channels=10, stride=2)
        x, g = torch.randn(1, 6, 12, 8, requires_grad=True), torch.randn(1, 10, 6, 4, requires_grad=True)
        out = gate(x, g)
        assert out.shape == x.shape
        out.sum().backward()
        assert g.grad.abs().sum().item() > 0  # the gating signal shapes the output

    def test_torchscript(self):
        net = ResAttUNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2))
        scripted = torch.jit.script(net)
        x = torch.randn(1, 1, 32, 32)
        with eval_mode(net, scripted):
            torch.testing.assert_close(scripted(x), net(x))

    def test_factory(self):
        kw = dict(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8, 16), strides=(2, 2))
        assert isinstance(thesis_network("unet", **kw), UNet)
        assert isinstance(thesis_network("attention_unet", **kw), AttentionUnet)
        assert isinstance(thesis_network("res_attention_unet", **kw), ResAttUNet)
        with pytest.raises(ValueError, match="unknown network name 'vnet'"):
            thesis_network("vnet", **kw)
        with pytest.raises(ValueError, match="len\\(strides\\)"):
            ResAttUNet(2, 1, 1, channels=(4, 8, 16), strides=(2,))
