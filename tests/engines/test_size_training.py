"""The weak (size-only) stage moves predicted sizes toward the targets on real hippocampus slices."""

import pytest
import torch
from monai.bundle import ConfigParser
from monai.engines import SupervisedTrainer
from monai.networks.nets import UNet

import weakseg
from weakseg.engines import PrepareBatchKeys, load_pretrained
from weakseg.losses import SizeLoss
from weakseg.transforms import SizeFromMaskd, object_size

from ..conftest import CONFIGS


def size_error(net, imgs, sizes):
    net.eval()
    with torch.no_grad():
        g = object_size(net(imgs)[:, 0] > 0).double()
    net.train()
    return float(((g - sizes.double()) ** 2).mean())


def test_size_stage_reduces_size_error_on_real_slices(hippo_dir):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser["dataset_dir"] = str(hippo_dir)
    parser["download"] = False
    splits = parser.get_parsed_content("splits")
    slices = weakseg.data.volumes_to_slices(splits["train"][:6], parser.get_parsed_content("volume_transforms"))
    sized = [SizeFromMaskd(keys="label", drop_mask=True)(dict(s)) for s in slices]
    imgs = torch.stack([torch.as_tensor(s["image"]) for s in sized]).float()
    sizes = torch.cat([s["size"] for s in sized])
    assert len(sized) >= 100 and bool((sizes >= 2).all())

    torch.manual_seed(0)
    net = UNet(2, 1, 1, channels=(8, 16, 32), strides=(2, 2), num_res_units=1)
    # pre-train with BCE on masks dilated by 2 pixels: a network whose objects are systematically too large
    masks = torch.stack([torch.as_tensor(s["label"]) for s in slices]).float()
    dilated = torch.nn.functional.max_pool2d(masks, 5, 1, 2)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(40):
        idx = torch.randperm(len(imgs))[:32]
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(imgs[idx]), dilated[idx]).backward()
        opt.step()
    e_before = size_error(net, imgs, sizes)

    data = [{"image": imgs[i], "size": sizes[i : i + 1]} for i in range(len(imgs))]
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=12, train_data_loader=loader, network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3), loss_function=SizeLoss(num_samples=2),
        prepare_batch=PrepareBatchKeys("image", "size"),
    )
    trainer.run()
    e_after = size_error(net, imgs, sizes)
    print(f"\nsize error E on {len(imgs)} real slices: {e_before:.2f} -> {e_after:.2f}")
    assert e_after < 0.6 * e_before


def test_load_pretrained_errors(tmp_path):
    net = UNet(2, 1, 1, channels=(8, 16), strides=(2,), num_res_units=1)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_pretrained(net, tmp_path / "nope.pt")
    other = UNet(2, 1, 1, channels=(8, 32), strides=(2,), num_res_units=1)
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt.*does not match.*other shapes"):
        load_pretrained(net, str(tmp_path / "other.pt"))
    torch.save({"model": net.state_dict()}, tmp_path / "same.pt")
    assert load_pretrained(UNet(2, 1, 1, channels=(8, 16), strides=(2,), num_res_units=1), str(tmp_path / "same.pt"))
    wrapped = torch.nn.DataParallel(UNet(2, 1, 1, channels=(8, 16), strides=(2,), num_res_units=1))
    assert load_pretrained(wrapped, str(tmp_path / "same.pt")) is wrapped  # loaded through the module
    for k, v in net.state_dict().items():
        assert torch.equal(wrapped.module.state_dict()[k], v)


def test_prepare_batch_missing_size():
    with pytest.raises(KeyError, match="'size'"):
        PrepareBatchKeys("image", "size")({"image": torch.zeros(1)})
