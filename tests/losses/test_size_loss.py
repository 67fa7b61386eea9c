import itertools

import numpy as np
import pytest
import torch

from weakseg.losses import (
    SampledGradientLoss,
    SizeLoss,
    flip_gradient_estimate,
    size_flip_objective,
    size_objective,
)
from weakseg.transforms import object_size, size_flip_candidates


def exact_gradient(p: torch.Tensor, target: float) -> torch.Tensor:
    """dE/dp_i by enumerating all 2^9 masks of a 3x3 image: sum over y_-i of P(y_-i) [l(y_i=1) - l(y_i=0)]."""
    confs = torch.tensor(list(itertools.product([0, 1], repeat=9)), dtype=torch.bool)
    loss = (target - object_size(confs.view(-1, 3, 3)).double()) ** 2
    pp, c = p.double().view(1, 9), confs.double()
    out = torch.zeros(9, dtype=torch.float64)
    for i in range(9):
        rest = [j for j in range(9) if j != i]
        w = torch.prod(torch.where(c[:, rest] > 0, pp[:, rest], 1 - pp[:, rest]), 1)
        out[i] = (w * torch.where(c[:, i] > 0, loss, -loss)).sum()
    return out.view(3, 3)


class TestUnbiased:
    @pytest.mark.parametrize(("seed", "target"), [(0, 4.0), (1, 2.0), (2, 6.0)])
    def test_matches_enumeration(self, seed, target):
        g = torch.Generator().manual_seed(seed)
        p = (torch.rand(3, 3, generator=g) * 0.8 + 0.1).double()
        exact = exact_gradient(p, target)

        def objective(y, idx):
            return size_objective(y, idx, torch.tensor([target], dtype=torch.float64))

        # 60 independent estimates, each the mean of 2000 single-sample estimates (eq. 21)
        est = torch.stack([
            flip_gradient_estimate(p[None], objective, 2000, size_flip_candidates, generator=g)[1][0]
            for _ in range(60)
        ])
        mean, se = est.mean(0), est.std(0) / np.sqrt(est.shape[0])
        # unbiased => |mean - exact| is a few standard errors at most (4.5 SE: p < 1e-4 per pixel, 9 pixels);
        # a biased estimator (e.g. without the sign y_i, or with sigma' on the wrong side) fails by far
        assert torch.all((mean - exact).abs() <= 4.5 * se + 1e-12), (mean, exact, se)
        assert (exact.abs() > 0).any()


class TestFlipModesEqualBruteForce:
    @pytest.mark.parametrize(("border",), [(True,), (False,)])
    def test_exact_equality(self, border):
        # closed form (every flip at once) and pruned (only flips that can change g) == brute force, bit for bit
        rng = np.random.RandomState(3)
        for trial in range(40):
            b, h, w = rng.randint(1, 5), rng.randint(2, 14), rng.randint(2, 14)
            logits = torch.randn(b, 1, h, w, dtype=torch.float64) * rng.uniform(0.5, 4) + rng.uniform(-2, 2)
            sizes = torch.as_tensor(rng.randint(0, 2 * min(h, w), size=b), dtype=torch.float64)
            n = int(rng.choice([1, 2, 4, 8]))
            grads = []
            for flips in ("all", "pruned", "closed_form"):
                x = logits.clone().requires_grad_()
                loss = SizeLoss(num_samples=n, border_is_background=border, flips=flips,
                                generator=torch.Generator().manual_seed(trial))(x, sizes)
                loss.backward()
                grads.append((float(loss), x.grad))
            for other in grads[1:]:
                assert other[0] == grads[0][0]
                assert torch.equal(other[1], grads[0][1])

    def test_unknown_mode(self):
        with pytest.raises(ValueError, match="flips must be"):
            SizeLoss(flips="some")

    def test_gradient_direction(self):
        # mask predicted too small: the estimator must push logits up near the object (descending E)
        x = torch.full((1, 1, 16, 16), -3.0)
        x[..., 6:10, 6:10] = 3.0  # a 4x4 square: size 4
        x.requires_grad_()
        SizeLoss(num_samples=8, generator=torch.Generator().manual_seed(0))(x, torch.tensor([8.0])).backward()
        assert x.grad[..., 5:11, 5:11].sum() < 0  # gradient descent raises these logits


class TestBadInput:
    @pytest.mark.parametrize(("_", "sizes"), [("negative", [-1.0, 2.0]), ("nan", [float("nan"), 2.0]), ("inf", [float("inf"), 2.0])])
    def test_bad_sizes(self, _, sizes):
        with pytest.raises(ValueError, match="finite and >= 0"):
            SizeLoss()(torch.zeros(2, 1, 8, 8), torch.tensor(sizes))

    def test_missing_size(self):
        with pytest.raises(ValueError, match="2 size targets for a batch of 3"):
            SizeLoss()(torch.zeros(3, 1, 8, 8), torch.tensor([2.0, 4.0]))

    def test_bad_shapes_and_args(self):
        with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
            SizeLoss()(torch.zeros(2, 2, 8, 8), torch.tensor([2.0, 4.0]))
        with pytest.raises(ValueError, match="num_samples"):
            SizeLoss(num_samples=0)
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="noise_scale"):
                SizeLoss(noise_scale=bad)


def test_generic_objective_plugs_in():
    # h(y) = number of foreground pixels: E = sum p_i, so dE/dp_i = 1 exactly for every sample
    loss = SampledGradientLoss(lambda y, idx, t: y.flatten(1).sum(1).double(), num_samples=3)
    x = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    loss(x, None).backward()
    p = torch.sigmoid(x.detach())
    torch.testing.assert_close(x.grad, p * (1 - p) / 2)  # sigma'(a) and the batch mean


def test_generic_flip_objective_plugs_in():
    # the same area objective given with every flip at once: h(y↓i) = h(y) ∓ 1
    def area_flips(y, idx, t):
        h0 = y.flatten(1).sum(1).double()
        return h0, h0[:, None, None] + torch.where(y, -1.0, 1.0).double()

    loss = SampledGradientLoss(lambda y, idx, t: None, num_samples=3, flip_objective=area_flips)
    x = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    loss(x, None).backward()
    p = torch.sigmoid(x.detach())
    torch.testing.assert_close(x.grad, p * (1 - p) / 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_closed_form_estimator_never_synchronises_on_gpu():
    # everything between the sampled logits and the gradient stays on the device: no read-back to the host
    logits = torch.randn(64, 1, 48, 32, device="cuda")
    sizes = torch.full((64,), 6.0, dtype=torch.float64, device="cuda")

    def flips(y, index):
        return size_flip_objective(y, index, sizes)

    probs = torch.sigmoid(logits[:, 0])
    flip_gradient_estimate(probs, None, 1, flip_objective=flips)  # warm-up (allocator, kernels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        values, grad = flip_gradient_estimate(probs, None, 1, flip_objective=flips)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert values.shape == (64,) and grad.shape == (64, 48, 32)


@pytest.mark.parametrize(("tau",), [(0.25,), (0.5,), (2.0,)])
def test_noise_scale(tau):
    # area objective: E = sum_i sigma(a_i / tau), so dE/da_i = sigma'(a_i / tau) / tau exactly
    loss = SampledGradientLoss(lambda y, idx, t: y.flatten(1).sum(1).double(), num_samples=2, noise_scale=tau)
    x = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    loss(x, None).backward()
    p = torch.sigmoid(x.detach() / tau)
    torch.testing.assert_close(x.grad, p * (1 - p) / tau / 2)
    # size loss: noise scale tau on logits a is the paper's tau = 1 on a / tau, chained through 1 / tau
    a = torch.randn(3, 1, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * tau
    sizes = torch.tensor([2.0, 4.0, 6.0], dtype=torch.float64)
    xa, xb = a.clone().requires_grad_(), (a / tau).requires_grad_()
    la = SizeLoss(num_samples=4, noise_scale=tau, generator=torch.Generator().manual_seed(5))(xa, sizes)
    lb = SizeLoss(num_samples=4, generator=torch.Generator().manual_seed(5))(xb, sizes)
    la.backward()
    lb.backward()
    assert float(la) == float(lb)
    torch.testing.assert_close(xa.grad, xb.grad / tau)
    assert xa.grad.abs().sum() > 0


class TestSizeAndMaskLoss:
    def _data(self):
        g = torch.Generator().manual_seed(2)
        x = torch.randn(4, 1, 10, 8, generator=g, dtype=torch.float64) * 2
        sizes = torch.tensor([2.0, 4.0, 0.0, 6.0], dtype=torch.float64)
        masks = (torch.rand(4, 1, 10, 8, generator=g) > 0.6).double()
        return x, sizes, masks, torch.tensor([1.0, 0.0, 1.0, 0.0])

    def test_value_and_gradient(self):
        from weakseg.losses import SizeAndMaskLoss

        x, sizes, masks, ann = self._data()
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        mixed = SizeAndMaskLoss(SizeLoss(generator=torch.Generator().manual_seed(9)), supervised_weight=0.7)
        la = mixed(xa, (sizes, masks, ann))
        la.backward()
        # reference: the same size loss plus 0.7 x the mean BCE of images 0 and 2 only
        lb = SizeLoss(generator=torch.Generator().manual_seed(9))(xb, sizes) + 0.7 * torch.stack([
            torch.nn.functional.binary_cross_entropy_with_logits(xb[i], masks[i]) for i in (0, 2)]).mean()
        lb.backward()
        torch.testing.assert_close(la, lb)
        torch.testing.assert_close(xa.grad, xb.grad)
        # placeholder masks of unannotated images never matter
        other = masks.clone()
        other[[1, 3]] = 1 - other[[1, 3]]
        xc = x.clone().requires_grad_()
        SizeAndMaskLoss(SizeLoss(generator=torch.Generator().manual_seed(9)), 0.7)(xc, (sizes, other, ann)).backward()
        torch.testing.assert_close(xc.grad, xa.grad)

    def test_no_annotated_image_and_zero_weight(self):
        from weakseg.losses import SizeAndMaskLoss

        x, sizes, masks, _ = self._data()
        ref = SizeLoss(generator=torch.Generator().manual_seed(1))(x, sizes)
        for w, ann in ((2.0, torch.zeros(4)), (0.0, torch.ones(4))):
            got = SizeAndMaskLoss(SizeLoss(generator=torch.Generator().manual_seed(1)), w)(x, (sizes, masks, ann))
            torch.testing.assert_close(got, ref)

    def test_bad_input(self):
        from weakseg.losses import SizeAndMaskLoss

        x, sizes, masks, ann = self._data()
        loss = SizeAndMaskLoss(SizeLoss(), 1.0)
        with pytest.raises(ValueError, match=r"\(sizes, masks, annotated\)"):
            loss(x, sizes)
        with pytest.raises(ValueError, match="do not match the logits"):
            loss(x, (sizes, masks[:, :, :5], ann))
        with pytest.raises(ValueError, match="3 annotated flags for a batch of 4"):
            loss(x, (sizes, masks, ann[:3]))
        with pytest.raises(ValueError, match="supervised_weight"):
            SizeAndMaskLoss(SizeLoss(), -1.0)


def matched_by_enumeration(a: torch.Tensor, s: float, border_is_background: bool) -> torch.Tensor:
    """Every mask of the k highest logits (k = 0 … H·W, stable rank order), scored by ((s − g)², |k − k0|)."""
    h, w = a.shape
    order = torch.argsort(a.flatten(), descending=True, stable=True)
    k0 = int((a > 0).sum())
    best = None
    for k in range(h * w + 1):
        m = torch.zeros(h * w, dtype=torch.bool)
        m[order[:k]] = True
        g = int(object_size(m.view(h, w), border_is_background))
        g = 10**9 if g < 0 else g  # no background (outside ignored): larger than any size
        key = ((s - g) ** 2, abs(k - k0))
        if best is None or key < best[0]:
            best = (key, m.view(h, w))
    return best[1]


class TestSizeMatchedMask:
    @pytest.mark.parametrize(("border", "ties"), [(True, False), (False, False), (True, True), (False, True)])
    def test_matches_enumeration(self, border, ties):
        from weakseg.losses import size_matched_mask

        g = torch.Generator().manual_seed(int(border) + 2 * int(ties))
        checked = 0
        for _ in range(60):
            h, w = (int(v) for v in torch.randint(1, 9, (2,), generator=g))
            a = torch.randn(5, h, w, generator=g) * 2 + torch.randn(5, 1, 1, generator=g)
            if ties:
                a = a.round()
            s = torch.randint(0, 10, (5,), generator=g).double()
            got = size_matched_mask(a, s, border)
            for i in range(5):
                assert torch.equal(got[i], matched_by_enumeration(a[i], float(s[i]), border)), (a[i], s[i])
                checked += 1
        assert checked == 300

    def test_hand_worked(self):
        from weakseg.losses import size_matched_mask

        # a 7x7 "pyramid": logit = 3 - Chebyshev distance from the centre; a > 0 is the 5x5 square (size 6)
        r = torch.arange(7)
        a = 3.0 - torch.maximum((r[:, None] - 3).abs(), (r[None, :] - 3).abs()).float()
        pred = a > 0
        # target 6: the prediction itself
        m = size_matched_mask(a[None, None], torch.tensor([6.0]))
        assert m.shape == (1, 1, 7, 7) and torch.equal(m[0, 0], pred)
        # target 4: dropping one pixel of the outer ring puts background 2 px from the centre. The ring's logits
        # tie, and the last of them in rank (raster) order goes: (5, 5)
        expected = pred.clone()
        expected[5, 5] = False
        assert torch.equal(size_matched_mask(a[None], torch.tensor([4.0]))[0], expected)
        # target 2: the 3x3 core has size 4, so keep the centre and all of its ring but the last pixel, (4, 4)
        expected = a > 1
        expected[4, 4] = False
        assert torch.equal(size_matched_mask(a[None], torch.tensor([2.0]))[0], expected)
        # target 0: empty; target 8 (7x7 full has size 8 with the border as background): everything
        assert not size_matched_mask(a[None], torch.tensor([0.0])).any()
        assert size_matched_mask(a[None], torch.tensor([8.0])).all()
        # target 5 lies between 4 and 6 (both 1 away): the tie goes to the fewer changed pixels, i.e. ŷ itself
        assert torch.equal(size_matched_mask(a[None], torch.tensor([5.0]))[0], pred)

    def test_bad_input(self):
        from weakseg.losses import size_matched_mask

        a = torch.randn(2, 1, 5, 5)
        with pytest.raises(ValueError, match="got 3 sizes for 2 masks"):
            size_matched_mask(a, torch.tensor([1.0, 2.0, 3.0]))
        with pytest.raises(ValueError, match="finite and >= 0"):
            size_matched_mask(a, torch.tensor([1.0, float("nan")]))
        with pytest.raises(ValueError, match="finite and >= 0"):
            size_matched_mask(a, torch.tensor([-2.0, 2.0]))
        with pytest.raises(ValueError, match=r"\(B, 1, H, W\) or \(B, H, W\)"):
            size_matched_mask(torch.randn(2, 2, 5, 5), torch.tensor([1.0, 2.0]))


class TestSizeMatchedMaskLoss:
    def test_value_and_gradient(self):
        from weakseg.losses import SizeMatchedMaskLoss, size_matched_mask

        g = torch.Generator().manual_seed(3)
        x = (torch.randn(4, 1, 9, 7, generator=g, dtype=torch.float64) * 2).requires_grad_()
        ref = torch.randn(4, 1, 9, 7, generator=g, dtype=torch.float64)
        sizes = torch.tensor([[2.0], [4.0], [0.0], [6.0]], dtype=torch.float64)
        for reference in (None, ref):
            target = sizes if reference is None else (sizes, reference)
            m = size_matched_mask(x.detach() if reference is None else reference, sizes.flatten())
            loss = SizeMatchedMaskLoss()(x, target)
            expected = torch.nn.functional.binary_cross_entropy_with_logits(x, m.double())
            torch.testing.assert_close(loss, expected)
            (gx,) = torch.autograd.grad(loss, x)
            torch.testing.assert_close(gx, (torch.sigmoid(x) - m.double()).detach() / x.numel())
        per = SizeMatchedMaskLoss(reduction="none")(x, (sizes, ref))
        assert per.shape == (4,)
        torch.testing.assert_close(SizeMatchedMaskLoss(reduction="sum")(x, (sizes, ref)), per.sum())

    def test_only_changed(self):
        """Hand-built 7x7 references: a 3x3 foreground square has size 4 (border as background). Image 0 is asked
        for size 4 (already right: zero loss), image 1 for size 2 (one of the square's weakest pixels must go), image 2
        for size 0 (everything goes)."""
        from weakseg.losses import SizeMatchedMaskLoss
        from weakseg.transforms import object_size

        ref = -torch.ones(3, 1, 7, 7, dtype=torch.float64)
        ref[:, :, 2:5, 2:5] = 1.0
        ref[:, :, 3, 3] = 2.0  # the centre is the strongest pixel
        sizes = torch.tensor([4.0, 2.0, 0.0], dtype=torch.float64)
        assert object_size(ref[:, 0] > 0).tolist() == [4, 4, 4]
        x = torch.randn(3, 1, 7, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x.requires_grad_()
        full = SizeMatchedMaskLoss(reduction="none")(x, (sizes, ref))
        only = SizeMatchedMaskLoss(reduction="none", only_changed=True)(x, (sizes, ref))
        assert full[0] > 0 and only[0] == 0  # image 0: the plain loss self-trains on [r > 0], the option does not
        torch.testing.assert_close(only[1:], full[1:])
        # image 1's target: any 1 to 8 of the square's pixels (centre first) have size 2; the fewest changes drop
        # one pixel, the last ring pixel in rank order (ties in raster order): (4, 4). Image 2's: empty.
        square = (ref[1, 0] > 0).double()
        square[4, 4] = 0.0
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        torch.testing.assert_close(only[1], bce(x[1, 0], square))
        torch.testing.assert_close(only[2], bce(x[2, 0], torch.zeros(7, 7, dtype=torch.float64)))
        mean = SizeMatchedMaskLoss(only_changed=True)(x, (sizes, ref))
        torch.testing.assert_close(mean, only.sum() / 3)  # the unchanged image still counts in the mean
        (gx,) = torch.autograd.grad(mean, x)
        assert torch.all(gx[0] == 0) and torch.all(gx[1:].abs().sum((1, 2, 3)) > 0)

    def test_bad_input(self):
        from weakseg.losses import SizeMatchedMaskLoss

        x, loss = torch.randn(2, 1, 6, 6), SizeMatchedMaskLoss()
        with pytest.raises(ValueError, match="got 1 size targets for a batch of 2"):
            loss(x, torch.tensor([2.0]))
        with pytest.raises(ValueError, match="reference logits"):
            loss(x, (torch.tensor([2.0, 2.0]), torch.randn(2, 1, 5, 6)))
        with pytest.raises(ValueError, match=r"sizes or a pair"):
            loss(x, (torch.tensor([2.0, 2.0]), x, x))
        with pytest.raises(ValueError, match="finite and >= 0"):
            loss(x, torch.tensor([2.0, float("inf")]))
        with pytest.raises(ValueError, match=r"logits \(B, 1, H, W\)"):
            loss(torch.randn(2, 2, 6, 6), torch.tensor([2.0, 2.0]))
        with pytest.raises(ValueError, match="reduction"):
            SizeMatchedMaskLoss(reduction="max")
