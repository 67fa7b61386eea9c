"""Lovász hinge / softmax: published reference values, a loop-based port of the reference algorithm, gradcheck."""

import numpy as np
import pytest
import torch

from weakseg.losses import LovaszHingeLoss, LovaszSoftmaxLoss, lovasz_grad


def ref_grad(gt_sorted):
    """Straight port of bermanmaxim/LovaszSoftmax ``lovasz_grad`` on a python list."""
    gts = sum(gt_sorted)
    out, prev = [], 0.0
    inter, union = gts, gts
    for i, g in enumerate(gt_sorted):
        inter -= g
        union += 1 - g
        jac = 1.0 - inter / union if union > 0 else 0.0
        out.append(jac - prev if i else jac)
        prev = jac
    return out


def ref_hinge_flat(logits, labels):
    """Reference ``lovasz_hinge_flat`` with plain python sorting (no ignored pixels: drop them before)."""
    if not labels:
        return 0.0
    errors = [1.0 - lg * (2.0 * lb - 1.0) for lg, lb in zip(logits, labels)]
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    grad = ref_grad([labels[i] for i in order])
    return sum(max(errors[i], 0.0) * g for i, g in zip(order, grad))


def ref_softmax_flat(probas, labels, classes="present"):
    """Reference ``lovasz_softmax_flat``: probas (P, C) list of lists, labels list of ints."""
    c_n = len(probas[0])
    losses = []
    for c in range(c_n) if classes in ("present", "all") else classes:
        fg = [1.0 if lb == c else 0.0 for lb in labels]
        if classes == "present" and sum(fg) == 0:
            continue
        errors = [abs(f - p[c]) for f, p in zip(fg, probas)]
        order = sorted(range(len(errors)), key=lambda i: -errors[i])
        grad = ref_grad([fg[i] for i in order])
        losses.append(sum(errors[i] * g for i, g in zip(order, grad)))
    return float(np.mean(losses)) if losses else 0.0


class TestLovasz:
    def test_lovasz_grad_reference(self):
        g = lovasz_grad(torch.tensor([1.0, 0.0, 1.0, 0.0]))
        np.testing.assert_allclose(g.numpy(), [0.5, 1 / 6, 1 / 3, 0.0], atol=1e-6)
        rng = np.random.default_rng(0)
        for _ in range(50):
            gt = rng.integers(0, 2, size=rng.integers(1, 12)).astype(float)
            np.testing.assert_allclose(lovasz_grad(torch.tensor(gt)).numpy(), ref_grad(list(gt)), atol=1e-6)

    def test_hinge_reference_value_and_gradient(self):
        logits = torch.tensor([[[[2.0, -1.0], [0.5, -0.3]]]], requires_grad=True)
        labels = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
        loss = LovaszHingeLoss(per_image=False)(logits, labels)
        assert loss.item() == pytest.approx(0.933333, abs=1e-5)
        loss.backward()
        np.testing.assert_allclose(logits.grad.reshape(-1).numpy(), [0, 0, 1 / 3, -1 / 3], atol=1e-6)

    def test_hinge_matches_loop_reference(self):
        rng = np.random.default_rng(1)
        for per_image in (True, False):
            for _ in range(20):
                b = int(rng.integers(1, 4))
                x = torch.tensor(rng.normal(size=(b, 1, 5, 4)) * 2)
                y = torch.tensor(rng.integers(0, 2, size=(b, 1, 5, 4)).astype(float))
                y[y.sum((1, 2, 3)) == 0] = 0  # keep some all-negative images too
                loss = LovaszHingeLoss(per_image=per_image)(x, y).item()
                if per_image:
                    ref = np.mean([ref_hinge_flat(x[i].reshape(-1).tolist(), y[i].reshape(-1).tolist()) for i in range(b)])
                else:
                    ref = ref_hinge_flat(x.reshape(-1).tolist(), y.reshape(-1).tolist())
                assert loss == pytest.approx(ref, abs=1e-6)

    def test_hinge_ignore_index_equals_dropping_pixels(self):
        rng = np.random.default_rng(2)
        for _ in range(20):
            x = torch.tensor(rng.normal(size=(2, 1, 4, 4)))
            y = torch.tensor(rng.integers(0, 2, size=(2, 1, 4, 4)).astype(float))
            ign = torch.tensor(rng.random((2, 1, 4, 4)) < 0.3)
            y_ign = torch.where(ign, torch.full_like(y, 255.0), y)
            loss = LovaszHingeLoss(per_image=True, ignore_index=255)(x, y_ign).item()
            ref = np.mean([
                ref_hinge_flat(x[i][~ign[i]].tolist(), y[i][~ign[i]].tolist()) for i in range(2)
            ])
            assert loss == pytest.approx(ref, abs=1e-6)

    def test_softmax_matches_loop_reference(self):
        rng = np.random.default_rng(3)
        for classes in ("present", "all", [1, 2]):
            for per_image in (False, True):
                x = torch.tensor(rng.normal(size=(2, 3, 4, 5)))
                y = torch.tensor(rng.integers(0, 2, size=(2, 1, 4, 5)))  # class 2 absent: 'present' differs from 'all'
                loss = LovaszSoftmaxLoss(classes=classes, per_image=per_image)(x, y).item()
                p = x.softmax(1)
                flat = lambda i: (p[i].reshape(3, -1).T.tolist(), y[i].reshape(-1).tolist())  # noqa: E731
                if per_image:
                    ref = np.mean([ref_softmax_flat(*flat(i), classes=classes) for i in range(2)])
                else:
                    pp = p.movedim(1, -1).reshape(-1, 3).tolist()
                    ref = ref_softmax_flat(pp, y.reshape(-1).tolist(), classes=classes)
                assert loss == pytest.approx(ref, abs=1e-6), f"{classes} {per_image}"

    def test_softmax_onehot_target_equals_index_target(self):
        x = torch.randn(2, 3, 6, 6)
        y = torch.randint(0, 3, (2, 1, 6, 6))
        onehot = torch.nn.functional.one_hot(y[:, 0], 3).permute(0, 3, 1, 2).float()
        loss = LovaszSoftmaxLoss()
        assert loss(x, y).item() == pytest.approx(loss(x, onehot).item(), abs=1e-6)

    def test_gradcheck(self):
        torch.manual_seed(0)
        x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
        y = (torch.rand(2, 1, 4, 4) > 0.5).double()
        assert torch.autograd.gradcheck(lambda a: LovaszHingeLoss()(a, y), (x,))
        xs = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
        ys = torch.randint(0, 3, (2, 1, 4, 4))
        assert torch.autograd.gradcheck(lambda a: LovaszSoftmaxLoss(per_image=True)(a, ys), (xs,))

    def test_bad_input(self):
        with pytest.raises(ValueError, match="0 or 1"):
            LovaszHingeLoss()(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0))
        with pytest.raises(ValueError, match="differ"):
            LovaszHingeLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
        with pytest.raises(ValueError, match="C≥2"):
            LovaszSoftmaxLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
        with pytest.raises(ValueError, match="classes"):
            LovaszSoftmaxLoss(classes="some")
