"""DeviceBatchLoader / training_loader: batches equal to MONAI's DataLoader on real hippocampus slices."""

import pytest
import torch
from monai.data import DataLoader, Dataset, DistributedSampler
from monai.transforms import Compose, RandFlipd

from weakseg.data import DeviceBatchLoader, training_loader

from ..conftest import CONFIGS


@pytest.fixture(scope="module")
def slices(hippo_dir):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(hippo_dir), "download": False, "max_train_volumes": 3})
    items = parser.get_parsed_content("train#dataset").data  # what the bundle trains on (metadata stripped)
    return [dict(it, idx=i, name=f"slice{i}") for i, it in enumerate(items)]


def test_same_batches_as_the_monai_dataloader(slices):
    order = torch.randperm(len(slices), generator=torch.Generator().manual_seed(3)).tolist()
    for drop_last in (False, True):
        ref = DataLoader(Dataset(slices), batch_size=16, sampler=order, drop_last=drop_last)
        ours = DeviceBatchLoader(slices, batch_size=16, sampler=order, drop_last=drop_last)
        assert len(ours) == len(ref) and len(list(ours)) == len(ref)
        for a, b in zip(ours, ref):
            for k in ("image", "label", "idx"):
                assert torch.equal(a[k], torch.as_tensor(b[k]).as_subclass(torch.Tensor)), k
            assert a["name"] == list(b["name"])
            assert a["image"].dtype == b["image"].dtype and a["image"].shape[0] <= 16


def test_shuffle_is_a_permutation_per_epoch_and_follows_the_global_seed(slices):
    loader = DeviceBatchLoader(slices, batch_size=10, shuffle=True)
    torch.manual_seed(0)
    e1 = torch.cat([b["idx"] for b in loader])
    e2 = torch.cat([b["idx"] for b in loader])
    assert sorted(e1.tolist()) == list(range(len(slices))) and sorted(e2.tolist()) == list(range(len(slices)))
    assert not torch.equal(e1, e2)
    torch.manual_seed(0)
    assert torch.equal(torch.cat([b["idx"] for b in loader]), e1)


def test_distributed_sampler_splits_the_items(slices):
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(Dataset(slices), even_divisible=True, num_replicas=2, rank=rank, shuffle=True)
        sampler.set_epoch(4)
        loader = DeviceBatchLoader(slices, batch_size=8, sampler=sampler)
        assert len(loader) == -(-len(sampler) // 8)
        seen += torch.cat([b["idx"] for b in loader]).tolist()
    assert set(seen) == set(range(len(slices)))


def test_training_loader_picks_the_loader(slices):
    plain = training_loader(Dataset(slices), batch_size=8, shuffle=True)
    assert isinstance(plain, DeviceBatchLoader)
    empty = training_loader(Dataset(slices, transform=Compose([])), batch_size=8)
    assert isinstance(empty, DeviceBatchLoader)
    aug = training_loader(Dataset(slices, transform=RandFlipd(["image", "label"], prob=0.5)), batch_size=8)
    assert isinstance(aug, DataLoader)
    big = training_loader(Dataset(slices), batch_size=8, max_device_bytes=1000)
    assert isinstance(big, DataLoader)
    assert isinstance(training_loader(Dataset(slices), batch_size=8, on_device=False), DataLoader)


def test_bad_items_are_clear_errors(slices):
    bad = [dict(s) for s in slices[:4]]
    bad[2]["image"] = bad[2]["image"][:, :10]
    with pytest.raises(ValueError, match=r"'image' of item 2 has shape \(1, 10, 32\), item 0 has \(1, 48, 32\)"):
        DeviceBatchLoader(bad, 2)
    bad = [dict(s) for s in slices[:4]]
    del bad[3]["label"]
    with pytest.raises(ValueError, match=r"item 3 has no \['label'\]"):
        DeviceBatchLoader(bad, 2)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DeviceBatchLoader(slices, 2, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="no training items"):
        DeviceBatchLoader([], 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_live_on_the_gpu(slices):
    loader = DeviceBatchLoader(slices, batch_size=16, shuffle=True, device="cuda")
    b = next(iter(loader))
    assert b["image"].is_cuda and b["label"].is_cuda
