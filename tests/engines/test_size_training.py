"""The weak (size-only) stage moves predicted sizes toward the targets on real hippocampus slices."""

import pytest
import torch
from monai.bundle import ConfigParser
from monai.engines import SupervisedTrainer
from monai.networks.nets import UNet

import weakseg
from weakseg.engines import PrepareBatchKeys, load_pretrained
from weakseg.losses import SizeLoss
from weakseg.metrics import slice_overlap_scores
from weakseg.transforms import SizeFromMaskd, object_size

from ..conftest import CONFIGS


def size_error(net, imgs, sizes):
    net.eval()
    with torch.no_grad():
        g = object_size(net(imgs)[:, 0] > 0).double()
    net.train()
    return float(((g - sizes.double()) ** 2).mean())


def oversegmenting_setup(hippo_dir):
    """Real training slices of 6 hippocampus volumes: images, masks, sizes (``SizeFromMaskd``), a small UNet
    pre-trained with BCE on masks dilated by 2 pixels (its objects are systematically too large) and a loader of
    ``{"image", "size"}`` items."""
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
    masks = torch.stack([torch.as_tensor(s["label"]) for s in slices]).float()
    dilated = torch.nn.functional.max_pool2d(masks, 5, 1, 2)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(40):
        idx = torch.randperm(len(imgs))[:32]
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(imgs[idx]), dilated[idx]).backward()
        opt.step()
    data = [{"image": imgs[i], "size": sizes[i : i + 1]} for i in range(len(imgs))]
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    return imgs, masks, sizes, net, loader


def test_size_stage_reduces_size_error_on_real_slices(hippo_dir):
    imgs, _, sizes, net, loader = oversegmenting_setup(hippo_dir)
    e_before = size_error(net, imgs, sizes)
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


def mean_iou(net, imgs, masks):
    net.eval()
    with torch.no_grad():
        p = net(imgs) > 0
    net.train()
    return slice_overlap_scores(p, masks)["mean_slice_iou"]


@pytest.mark.parametrize("only_changed", [False, True])
def test_size_matched_stage_improves_overlap_on_real_slices(hippo_dir, only_changed):
    """Fine-tuning with size-matched masks of a per-epoch snapshot, sizes only, from a network pre-trained to
    over-segment: E falls and the overlap with the (unseen) true masks rises, with and without the loss on the
    slices whose prediction already has the matched size."""
    from weakseg.engines import MeanTeacherHandler, TeacherBatch
    from weakseg.losses import SizeMatchedMaskLoss

    imgs, masks, sizes, net, loader = oversegmenting_setup(hippo_dir)
    e_before, iou_before = size_error(net, imgs, sizes), mean_iou(net, imgs, masks)
    snapshot = MeanTeacherHandler(net, alpha=0.0, event="epoch")
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=8, train_data_loader=loader, network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        loss_function=SizeMatchedMaskLoss(only_changed=only_changed),
        prepare_batch=TeacherBatch(snapshot.teacher, target_key="size", flip={"prob": 0.5, "seed": 0}),
        train_handlers=[snapshot],
    )
    trainer.run()
    e_after, iou_after = size_error(net, imgs, sizes), mean_iou(net, imgs, masks)
    print(f"\nsize-matched masks (only_changed={only_changed}) on {len(imgs)} real slices: "
          f"E {e_before:.2f} -> {e_after:.2f}, IoU {iou_before:.3f} -> {iou_after:.3f}")
    assert e_after < 0.7 * e_before
    assert iou_after > iou_before + 0.03


def test_teacher_batch():
    from weakseg.engines import TeacherBatch

    torch.manual_seed(0)
    teacher = torch.nn.Conv2d(1, 1, 3, padding=1).train()
    img = torch.randn(3, 1, 5, 4)
    sizes = torch.tensor([[2.0], [4.0], [0.0]])
    image, (target, logits) = TeacherBatch(teacher, flip={"prob": 1.0, "spatial_axes": [1]})({"image": img, "size": sizes})
    assert torch.equal(image, img.flip(-1)) and torch.equal(target, sizes)
    torch.testing.assert_close(logits, teacher(img.flip(-1)).detach())
    assert not logits.requires_grad and teacher.training  # no graph, mode restored
    image, (_, logits) = TeacherBatch(teacher)({"image": img, "size": sizes})
    assert torch.equal(image, img)
    with pytest.raises(KeyError, match="'size'"):
        TeacherBatch(teacher)({"image": img})
