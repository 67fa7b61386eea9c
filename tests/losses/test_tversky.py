"""Focal Tversky: the worked example, γ = 1 equals MONAI's Tversky loss, a brute-force formula on random data."""

import numpy as np
import pytest
import torch
from monai.losses import TverskyLoss

from weakseg.losses import FocalTverskyLoss


class TestFocalTversky:
    def test_worked_example(self):
        y = torch.tensor([1.0, 1, 0, 0]).reshape(1, 1, 4)
        p = torch.tensor([0.9, 0.4, 0.2, 0.1]).reshape(1, 1, 4)
        loss = FocalTverskyLoss(smooth_nr=1.0, smooth_dr=1.0, reduction="none")(p, y)
        assert 1 - loss.item() ** (4 / 3) == pytest.approx(0.798611, abs=1e-5)  # TI
        assert loss.item() == pytest.approx(0.300626, abs=1e-5)

    def test_gamma_one_is_monai_tversky(self):
        x, y = torch.randn(3, 2, 8, 8), (torch.rand(3, 2, 8, 8) > 0.5).float()
        ours = FocalTverskyLoss(sigmoid=True, gamma=1.0)(x, y)
        ref = TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)(x, y)
        assert ours.item() == pytest.approx(ref.item(), abs=1e-6)

    def test_formula_on_random_data(self):
        rng = np.random.default_rng(0)
        for _ in range(20):
            p, y = rng.random((2, 1, 5, 5)), (rng.random((2, 1, 5, 5)) > 0.6).astype(float)
            a_fn, b_fp, g, eps = 0.7, 0.3, 4 / 3, 1e-5
            ref = []
            for i in range(2):
                tp = (p[i] * y[i]).sum()
                fn = ((1 - p[i]) * y[i]).sum()
                fp = (p[i] * (1 - y[i])).sum()
                ti = (tp + eps) / (tp + a_fn * fn + b_fp * fp + eps)
                ref.append((1 - ti) ** (1 / g))
            out = FocalTverskyLoss()(torch.tensor(p), torch.tensor(y))
            assert out.item() == pytest.approx(float(np.mean(ref)), abs=1e-6)

    def test_gradient_finite_at_perfect_prediction(self):
        y = (torch.rand(1, 1, 6, 6) > 0.5).float()
        p = y.clone().requires_grad_(True)
        FocalTverskyLoss()(p, y).backward()
        assert torch.isfinite(p.grad).all()

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="gamma"):
            FocalTverskyLoss(gamma=0)
        with pytest.raises(ValueError, match="alpha"):
            FocalTverskyLoss(alpha=-0.1)
