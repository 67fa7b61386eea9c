"""EDPCNN synthetic-gradient training, contour inferers and mm distance metrics (real Sunnybrook slices)."""

import math

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator
from monai.handlers import MeanDice, from_engine
from monai.networks.nets import UNet

from weakseg.data import load_sunnybrook_datalist, lv_slices
from weakseg.engines import (
    CentreBatch,
    CentreComponentInferer,
    DPContourInferer,
    EDPCNNTrainer,
    RandFlipBatch,
    jitter_centres,
    sample_centres_inside,
)
from weakseg.metrics import SpacedDistance, contour_scores
from weakseg.networks import DPApproximator, StarPattern, dp_contour
from weakseg.transforms import mask_centroid


@pytest.fixture(scope="module")
def slices(sunnybrook_dir):
    items = load_sunnybrook_datalist(sunnybrook_dir)
    return lv_slices(items[::8], (96, 96))  # 10 slices of 4 patients, cropped small for speed


def small_net():
    return UNet(2, 1, 1, channels=(4, 8, 16), strides=(2, 2), num_res_units=1)


def make_trainer(data, iterations=2, num_samples=2, seed=0, lr=1e-3):
    torch.manual_seed(seed)
    net = small_net()
    approx = DPApproximator(base_channels=4)
    star = StarPattern(num_rays=24, num_points=32, radius=40.0)
    loader = DataLoader([{"image": d["image"], "label": d["label"]} for d in data], batch_size=5, shuffle=False)
    tr = EDPCNNTrainer(device="cpu", max_epochs=1, train_data_loader=loader, network=net,
                       optimizer=torch.optim.Adam(net.parameters(), lr), approximator=approx,
                       approximator_optimizer=torch.optim.Adam(approx.parameters(), 1e-3), star_pattern=star,
                       delta=2, sigma=1.0, num_samples=num_samples, seed=seed, epoch_length=iterations,
                       prepare_batch=RandFlipBatch(transpose=True, seed=seed), decollate=False)
    return tr, net, approx, star


def test_approximator_loss_decreases_on_fixed_inputs(slices):
    tr, net, approx, star = make_trainer(slices)
    x = torch.stack([d["image"] for d in slices[:4]])
    c = torch.stack([d["centre"] for d in slices[:4]])
    with torch.no_grad():
        g = star.warp(net(x), c)
    noisy = g[None] + torch.randn((3,) + tuple(g.shape), generator=torch.Generator().manual_seed(0))
    target = dp_contour(noisy.flatten(0, 1), 2).view(3, 4, -1)
    losses = [float(tr.train_approximator(noisy, target)) for _ in range(25)]
    assert losses[-1] < 0.7 * losses[0], losses


def test_network_gets_the_synthetic_gradient_through_F(slices):
    tr, net, approx, star = make_trainer(slices)
    x = torch.stack([d["image"] for d in slices[:4]])
    y = torch.stack([d["label"] for d in slices[:4]])
    c = mask_centroid(y)
    target = star.label_indices(y, c)
    g = star.warp(net(x), c)
    loss, grad = tr.synthetic_gradient(g, target)
    net.zero_grad()
    g.backward(grad)
    grads = [p.grad for p in net.parameters()]
    assert all(gr is not None for gr in grads) and sum(float(gr.abs().sum()) for gr in grads) > 0
    assert all(p.grad is None for p in approx.parameters())  # F is frozen for this step
    assert all(p.requires_grad for p in approx.parameters())  # and unfrozen afterwards
    # the same gradient as back-propagating CE(F(g), t) by plain autograd
    net.zero_grad()
    g2 = star.warp(net(x), c)
    for p in approx.parameters():
        p.requires_grad_(False)
    approx.eval()
    ref = torch.nn.functional.cross_entropy(approx(g2).transpose(1, 2), target)
    ref.backward()
    for p in approx.parameters():
        p.requires_grad_(True)
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    for p, gr in zip(net.parameters(), grads):
        torch.testing.assert_close(p.grad, gr, rtol=1e-4, atol=1e-7)


def test_training_iterations_on_real_slices(slices):
    tr, net, approx, star = make_trainer(slices, iterations=2, num_samples=2)
    before = [p.detach().clone() for p in net.parameters()]
    f_before = [p.detach().clone() for p in approx.parameters()]
    seen = []
    tr.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(
        (float(e.state.output["loss"]), float(e.state.output["approx_loss"]))))
    tr.run()
    assert len(seen) == 2 and all(math.isfinite(a) and math.isfinite(b) for a, b in seen)
    assert seen[0][0] == pytest.approx(math.log(32), rel=0.5)  # CE over M = 32 positions starts near log M
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(f_before, approx.parameters()))
    # evaluation with the DP inferer through a MONAI evaluator, Dice and mm distances per epoch
    val = [{"image": d["image"], "label": d["label"], "centre": d["centre"], "spacing": d["spacing"]}
           for d in slices[:4]]
    ev = SupervisedEvaluator(
        device="cpu", val_data_loader=DataLoader(val, batch_size=2), network=net,
        inferer=DPContourInferer(star, delta=2, smoothing_window=5), prepare_batch=CentreBatch(),
        key_val_metric={"val_mean_dice": MeanDice(include_background=True,
                                                  output_transform=from_engine(["pred", "label"]))},
        additional_metrics={"val_hd": SpacedDistance("hd", output_transform=from_engine(["pred", "label"])),
                            "val_assd": SpacedDistance("assd", output_transform=from_engine(["pred", "label"]))})
    ev.run()
    m = ev.state.metrics
    net.eval()
    with torch.no_grad():
        x = torch.stack([v["image"] for v in val])
        pred = DPContourInferer(star, 2, 5).from_map(net(x), torch.stack([v["centre"] for v in val]))
    ref = contour_scores(pred, torch.stack([v["label"] for v in val]), torch.stack([v["spacing"] for v in val]))
    assert m["val_mean_dice"] == pytest.approx(ref["dice"].mean(), abs=1e-5)
    assert m["val_hd"] == pytest.approx(ref["hd"].mean(), rel=1e-5)
    assert m["val_assd"] == pytest.approx(ref["assd"].mean(), rel=1e-5)
    assert pred.shape == (4, 1, 96, 96) and (pred.flatten(1).sum(1) > 0).all()


def test_contour_scores_by_hand():
    y = torch.zeros(1, 1, 20, 20)
    y[0, 0, 5:11, 5:9] = 1  # 6 x 4
    p = torch.zeros_like(y)
    p[0, 0, 7:13, 5:9] = 1  # shifted by 2 rows
    sc = contour_scores(p, y, [1.5, 1.0])
    assert sc["dice"][0] == pytest.approx(2 * 16 / 48)
    assert sc["hd"][0] == pytest.approx(3.0)  # 2 rows x 1.5 mm
    assert 0 < sc["assd"][0] <= 3.0
    same = contour_scores(y, y, [1.5, 1.0])
    assert same["dice"][0] == 1 and same["hd"][0] == 0 and same["assd"][0] == 0
    empty = contour_scores(torch.zeros_like(y), y, None)
    assert empty["dice"][0] == 0 and np.isnan(empty["hd"][0])


def test_centre_component_inferer_keeps_the_component_at_the_centre():
    logits = -torch.ones(2, 1, 16, 16)
    logits[:, :, 1:4, 1:4] = 1  # small blob
    logits[:, :, 8:15, 8:15] = 1  # large blob
    inf = CentreComponentInferer()
    out = inf.from_map(logits, torch.tensor([[2.0, 2.0], [0.0, 15.0]]))
    assert out[0, 0].sum() == 9 and out[0, 0, 2, 2] == 1  # centre in the small blob
    assert out[1, 0].sum() == 49  # centre on background -> largest


def test_centre_sampling_and_jitter(slices):
    y = torch.stack([d["label"] for d in slices[:6]])
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        c = sample_centres_inside(y, 1.0, g).long()
        assert (y[torch.arange(6), 0, c[:, 0], c[:, 1]] == 1).all()
    cen = mask_centroid(y)
    r_eq = torch.sqrt(y.flatten(1).sum(1) / math.pi)
    j = jitter_centres(y, 0.3, g, cen)
    torch.testing.assert_close((j - cen).norm(dim=1), 0.3 * r_eq, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="centre"):
        DPContourInferer(StarPattern(8, 32, 20.0))(torch.zeros(1, 1, 64, 64), small_net())


def test_centre_sampling_is_uniform_over_the_allowed_pixels():
    lab = torch.zeros(1, 1, 12, 12)
    lab[0, 0, 2:7, 3:9] = 1  # 5 × 6 box, centroid (4, 5.5), equivalent radius sqrt(30/π) ≈ 3.09
    n = 6000
    c = sample_centres_inside(lab.expand(n, 1, 12, 12), 0.5, torch.Generator().manual_seed(0)).long()
    counts = torch.zeros(12, 12).index_put_((c[:, 0], c[:, 1]), torch.ones(n), accumulate=True)
    rr, cc = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    allowed = (lab[0, 0] > 0) & ((rr - 4) ** 2 + (cc - 5.5) ** 2 <= (0.5 * math.sqrt(30 / math.pi)) ** 2)
    k = int(allowed.sum())
    # within 1.55 px of (4, 5.5): rows 3-5 × cols 5-6 (d² ≤ 1.25) and (4, 4), (4, 7) (d² = 2.25)
    assert k == 8 and counts[~allowed].sum() == 0
    expected = n / k
    assert (counts[allowed] - expected).abs().max() < 5 * math.sqrt(expected)


def test_channels_last_approximator_trains_like_contiguous(slices):
    def run(channels_last):
        torch.manual_seed(0)
        net, approx = small_net(), DPApproximator(base_channels=4)
        opt_f = torch.optim.SGD(approx.parameters(), 0.1)  # SGD: Adam would amplify float noise to ±lr steps
        loader = DataLoader([{"image": d["image"], "label": d["label"]} for d in slices], batch_size=5)
        tr = EDPCNNTrainer(device="cpu", max_epochs=1, train_data_loader=loader, network=net,
                           optimizer=torch.optim.SGD(net.parameters(), 0.1), approximator=approx,
                           approximator_optimizer=opt_f, star_pattern=StarPattern(24, 32, 40.0), num_samples=3,
                           seed=0, epoch_length=1, decollate=False, approximator_channels_last=channels_last)
        weights = [p for p in approx.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1]
        assert len(weights) > 5
        assert all(p.is_contiguous(memory_format=torch.channels_last) == channels_last != p.is_contiguous()
                   for p in weights)
        out = []
        tr.add_event_handler(Events.ITERATION_COMPLETED, lambda e: out.append(
            (float(e.state.output["loss"]), float(e.state.output["approx_loss"]))))
        tr.run()
        return out, [p.detach().clone() for p in list(net.parameters()) + list(approx.parameters())]

    (ref, p_ref), (cl, p_cl) = run(False), run(True)
    np.testing.assert_allclose(np.array(cl), np.array(ref), rtol=1e-4)
    for a, b in zip(p_ref, p_cl):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    changed = sum(not torch.equal(a, b) for a, b in zip(p_ref, list(small_net().parameters())
                                                        + list(DPApproximator(base_channels=4).parameters())))
    assert changed > 0  # the runs trained both networks (the optimizers still hold the converted parameters)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_training_equals_eager(slices):
    def run(graph):
        torch.manual_seed(0)
        net = small_net().cuda()
        approx = DPApproximator(base_channels=4).cuda()
        star = StarPattern(num_rays=24, num_points=32, radius=40.0)
        loader = DataLoader([{"image": d["image"], "label": d["label"]} for d in slices], batch_size=5)
        # SGD for the network: Adam would turn noise-level gradients (conv biases before instance norm) into
        # ±lr steps, so graph and eager runs would differ by float noise amplified to lr
        tr = EDPCNNTrainer(device="cuda", max_epochs=1, train_data_loader=loader, network=net,
                           optimizer=torch.optim.SGD(net.parameters(), 0.1), approximator=approx,
                           approximator_optimizer=torch.optim.Adam(approx.parameters(), 1e-3, capturable=True),
                           star_pattern=star, num_samples=5, seed=0, epoch_length=2, cuda_graph=graph,
                           decollate=False)
        out = []
        tr.add_event_handler(Events.ITERATION_COMPLETED, lambda e: out.append(
            (float(e.state.output["loss"]), float(e.state.output["approx_loss"]))))
        tr.run()
        return out, [p.detach().cpu() for p in net.parameters()]

    (eager, p_eager), (graph, p_graph) = run(False), run(True)
    np.testing.assert_allclose(np.array(graph), np.array(eager), rtol=1e-3, atol=1e-4)
    for a, b in zip(p_eager, p_graph):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
