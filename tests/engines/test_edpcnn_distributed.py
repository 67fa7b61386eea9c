"""EDPCNNTrainer under torch.distributed (2 gloo processes on CPU): the approximator is synchronised across
ranks (averaged gradients, rank 0's start), the network through DDP; real Sunnybrook slices."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.data import DataLoader
from monai.networks.nets import UNet
from torch.nn.parallel import DistributedDataParallel

from weakseg.data import load_sunnybrook_datalist, lv_slices
from weakseg.engines import EDPCNNTrainer
from weakseg.networks import DPApproximator, StarPattern


def _worker(rank, world, init_file, data, sync, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(100 + rank)  # different initial weights per rank: the trainer / DDP must align them
        net = DistributedDataParallel(UNet(2, 1, 1, channels=(4, 8, 16), strides=(2, 2), num_res_units=1))
        approx = DPApproximator(base_channels=4)
        shard = data[rank::world]
        loader = DataLoader([{"image": d["image"], "label": d["label"]} for d in shard], batch_size=2)
        tr = EDPCNNTrainer(device="cpu", max_epochs=1, train_data_loader=loader, network=net,
                           optimizer=torch.optim.Adam(net.parameters(), 1e-3), approximator=approx,
                           approximator_optimizer=torch.optim.SGD(approx.parameters(), lr=0.5),
                           star_pattern=StarPattern(num_rays=24, num_points=32, radius=40.0), num_samples=2, seed=0,
                           sync_approximator=sync, epoch_length=2, decollate=False)
        tr.run()
        res = {"approx": {k: v.clone() for k, v in approx.state_dict().items()},
               "net": {k: v.clone() for k, v in net.module.state_dict().items()}, "seed": tr._rank_seed()}
        if sync is not False:  # one more F step by hand: it must equal SGD on the gradient averaged over the ranks
            x = torch.randn(2, 24, 32, generator=torch.Generator().manual_seed(rank))
            t = torch.randint(0, 32, (2, 24), generator=torch.Generator().manual_seed(10 + rank))
            before = [p.detach().clone() for p in approx.parameters()]
            approx.zero_grad()
            torch.nn.functional.cross_entropy(approx(x).transpose(1, 2), t).backward()
            own = [p.grad.clone() for p in approx.parameters()]
            tr._approx_step(x, t)
            res["step"] = (before, own, [p.detach().clone() for p in approx.parameters()])
        torch.save(res, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


def _run(tmp_path, data, sync):
    out = tmp_path / f"res_{sync}"
    mp.spawn(_worker, args=(2, str(tmp_path / f"init_{sync}"), data, sync, str(out)), nprocs=2, join=True)
    return [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]


def test_approximator_and_network_stay_identical_across_ranks(tmp_path, sunnybrook_dir):
    items = load_sunnybrook_datalist(sunnybrook_dir)[::10][:8]
    data = lv_slices(items, (128, 128))
    r0, r1 = _run(tmp_path, data, sync=None)
    assert r0["seed"] == 0 and r1["seed"] == 7919  # each rank draws its own jitter and noise
    for k in r0["approx"]:
        assert torch.equal(r0["approx"][k], r1["approx"][k]), k
    for k in r0["net"]:
        assert torch.allclose(r0["net"][k], r1["net"][k], atol=1e-6), k
    # the synchronised SGD step = p - lr * mean over ranks of each rank's own gradient
    (b0, g0, a0), (b1, g1, a1) = r0["step"], r1["step"]
    for p0, p1, q0, q1, n0, n1 in zip(b0, b1, g0, g1, a0, a1):
        assert torch.equal(p0, p1)
        expected = p0 - 0.5 * (q0 + q1) / 2
        assert torch.allclose(n0, expected, atol=1e-6) and torch.equal(n0, n1)
    assert any(not torch.allclose(q0, q1) for q0, q1 in zip(g0, g1))  # the ranks' own gradients differed

    # without synchronisation each rank keeps its own approximator
    u0, u1 = _run(tmp_path, data, sync=False)
    assert any(not torch.equal(u0["approx"][k], u1["approx"][k]) for k in u0["approx"])
