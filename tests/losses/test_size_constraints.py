"""Soft object size (eq. 1) and Kervadec's size penalty (eq. 2): exact on binary masks, differentiable, and the
bounds they derive from a size."""

import numpy as np
import pytest
import torch

from weakseg.losses import SizeBoundsLoss, SoftSizeLoss, size_bounds, soft_object_size
from weakseg.transforms import object_size


def _square(n, side, at=(0, 0)):
    m = torch.zeros(n, n)
    m[at[0]: at[0] + side, at[1]: at[1] + side] = 1
    return m


@pytest.mark.parametrize("border", [True, False])
def test_soft_size_equals_g_on_binary_masks(border):
    """Against object_size (the project's exact g) on hand-worked squares and 300 random blob masks."""
    cases = [_square(7, 3, (2, 2)), _square(7, 5, (1, 1)), _square(7, 1, (3, 3)), torch.zeros(7, 7)]
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        m = (torch.rand(12, 9, generator=gen) < torch.rand(1, generator=gen)).float()
        cases.append(m)
    masks = torch.stack([torch.nn.functional.pad(c, (0, 9 - c.shape[1], 0, 12 - c.shape[0])) for c in cases])
    exact = object_size(masks, border_is_background=border).float()
    if not border:
        exact = torch.where(exact < 0, torch.full_like(exact, float("nan")), exact)
    soft = soft_object_size(masks, border_is_background=border, max_iterations=12)
    keep = ~torch.isnan(exact)
    torch.testing.assert_close(soft[keep], exact[keep], rtol=0, atol=0)
    if border:
        assert soft[:4].tolist() == [4.0, 6.0, 2.0, 0.0]  # the worked examples of object_size's docstring


def test_soft_size_is_differentiable():
    p = torch.rand(2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: soft_object_size(x), (p,))
    loss = SoftSizeLoss(sigmoid=True)(torch.randn(3, 1, 8, 8, requires_grad=True), torch.tensor([2.0, 4.0, 0.0]))
    loss.backward()


def test_soft_size_loss_hand_computed():
    x = torch.full((1, 1, 5, 5), -50.0)  # sigmoid ~ 0 ...
    x[0, 0, 1:4, 1:4] = 50.0  # ... but a 3x3 square: g = 4
    assert SoftSizeLoss()(x, torch.tensor([4.0])).item() == pytest.approx(0.0, abs=1e-9)
    assert SoftSizeLoss()(x, torch.tensor([[6.0]])).item() == pytest.approx(4.0, abs=1e-6)
    assert SoftSizeLoss(scale=2.0)(x, torch.tensor([6.0])).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="2 target sizes for 1 images"):
        SoftSizeLoss()(x, torch.tensor([4.0, 4.0]))


def test_kervadec_penalty_hand_computed():
    """Eq. (2) on soft areas 10, 15, 25 with bounds [12, 20]: (10 − 12)² = 4, 0, (25 − 20)² = 25."""
    p = torch.zeros(3, 1, 5, 5)
    for i, area in enumerate((10, 15, 25)):
        p[i].view(-1)[:area] = 1.0
    bounds = torch.tensor([[12.0, 20.0]] * 3)
    per_image = SizeBoundsLoss(sigmoid=False, reduction="none")(p, bounds)
    assert per_image.tolist() == [4.0, 0.0, 25.0]
    assert SizeBoundsLoss(sigmoid=False)(p, bounds).item() == pytest.approx(29 / 3)
    assert SizeBoundsLoss(sigmoid=False, normalize=True, reduction="sum")(p, bounds).item() == pytest.approx(29 / 625)
    # gradient: pushes the small area up and the large one down, leaves the one inside alone
    q = p.clone().requires_grad_(True)
    SizeBoundsLoss(sigmoid=False, reduction="sum")(q, bounds).backward()
    assert q.grad[0].sum() < 0 and q.grad[1].abs().sum() == 0 and q.grad[2].sum() > 0


def test_size_bounds_hold_for_real_shapes():
    """(g − 1)² ≤ area for any mask (a single pixel: g = 2, area 1, below g² = 4), and ρ g² ≥ area with ρ the
    largest area / g² of the masks."""
    gen = torch.Generator().manual_seed(1)
    masks = (torch.rand(200, 10, 10, generator=gen) < 0.6).float()
    masks[0] = _square(10, 1, (4, 4))
    g = object_size(masks).float()
    area = masks.sum(dim=(1, 2))
    rho = float((area / g.clamp(min=1) ** 2).max())
    lo, hi = size_bounds(g, rho)
    assert torch.all(lo <= area) and torch.all(area <= hi + 1e-4)
    assert lo[0].item() == 1.0 and area[0].item() == 1.0 and g[0].item() == 2.0
    per = SizeBoundsLoss(sigmoid=False, upper_ratio=rho, reduction="none")(masks[:, None], g)
    assert torch.all(per == 0)
    with pytest.raises(ValueError, match="upper_ratio must be > 0"):
        size_bounds(g, 0.0)
    with pytest.raises(ValueError, match=r"bounds \(B, 2\)"):
        SizeBoundsLoss(sigmoid=False)(masks[:, None], g)
    assert np.isfinite(rho)


def test_max_area_ratio_by_brute_force():
    from weakseg.losses import max_area_ratio

    gen = torch.Generator().manual_seed(2)
    masks = [(torch.rand(1, 9, 7, generator=gen) < 0.5).float() for _ in range(20)] + [torch.zeros(1, 9, 7)]
    ratios = [float(m.sum() / object_size(m[0]).float() ** 2) for m in masks if m.sum() > 0]
    assert max_area_ratio(masks) == pytest.approx(max(ratios))
    with pytest.raises(ValueError, match="no mask with foreground"):
        max_area_ratio([torch.zeros(4, 4)])
