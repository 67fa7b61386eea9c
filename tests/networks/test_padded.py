"""The paper's network family (a U-Net with a ResNet encoder: MONAI FlexibleUNet, random init) on 48x32 slices."""

import torch
from monai.networks.nets import FlexibleUNet

from weakseg.networks import DivisiblePadNet


def test_resnet_unet_on_48x32_slices():
    torch.manual_seed(0)
    inner = FlexibleUNet(in_channels=1, out_channels=1, backbone="resnet18", pretrained=False, spatial_dims=2)
    net = DivisiblePadNet(inner, k=32).eval()
    x = torch.randn(2, 1, 48, 32, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 1, 48, 32)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():  # the crop is aligned: output pixel i is the inner output at the padded position of i
        padded = torch.nn.functional.pad(x, (0, 0, 8, 8))
        torch.testing.assert_close(net(x), inner(padded)[:, :, 8:56])
        ok = torch.randn(1, 1, 64, 32)  # already divisible: no padding at all
        torch.testing.assert_close(net(ok), inner(ok))


def test_the_network_override_config_composes_with_any_training_config():
    from monai.bundle import ConfigParser

    from ..conftest import CONFIGS

    for base in (["train.json"], ["train.json", "pretrain.json"], ["inference.json", "train.json"]):
        p = ConfigParser()
        p.read_config([str(CONFIGS / c) for c in base] + [str(CONFIGS / "network_resnet_unet.json")])
        net = p.get_parsed_content("network_def")
        assert isinstance(net, DivisiblePadNet) and net(torch.zeros(1, 1, 48, 32)).shape == (1, 1, 48, 32)
