"""Star pattern, exact DP (against exhaustive search), smoothing, polygon fill and the DP approximator."""

import itertools
import math

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath

from weakseg.networks import DPApproximator, StarPattern, dp_contour, smooth_indices
from weakseg.transforms import MaskCentroidd, mask_centroid, polygon_to_mask


def brute_force(g: np.ndarray, delta: int):
    """Minimum of Σ_n E(n, v_n, v_{n+1}) over all M^N closed contours, E as in eq. 2 (∞ outside the band)."""
    n_rays, m = g.shape
    best, arg = math.inf, None
    for v in itertools.product(range(m), repeat=n_rays):
        e = 0.0
        for n in range(n_rays):
            i, j = v[n], v[(n + 1) % n_rays]
            if abs(i - j) > delta:
                e = math.inf
                break
            e += 0.5 * (g[n, i] + g[(n + 1) % n_rays, j])
        if e < best:
            best, arg = e, v
    return best, arg


@pytest.mark.parametrize("method", ["all_starts", "pruned"])
def test_dp_equals_exhaustive_search(method):
    rng = np.random.default_rng(0)
    cases = 0
    for n_rays in (4, 5, 6):
        for delta in (1, 2):
            for _ in range(40 if n_rays < 6 else 12):
                g = rng.normal(size=(n_rays, 5))
                energy, path = brute_force(g, delta)
                got, got_e = dp_contour(torch.as_tensor(g)[None], delta, return_energy=True, method=method)
                assert tuple(got[0].tolist()) == path, (n_rays, delta, g)  # ray 0 included
                assert got_e.item() == pytest.approx(energy, abs=1e-12)
                cases += 1
    assert cases == 184


@pytest.mark.parametrize("method", ["all_starts", "pruned"])
def test_dp_ray0_can_leave_the_band_of_a_greedy_start(method):
    # the best contour starts at index 4 on ray 0 although ray 0's cheapest node is index 0
    g = torch.zeros(1, 4, 5, dtype=torch.float64)
    g[0, 0, 0] = -1.0
    g[0, 1:, 4] = -1.0
    g[0, 0, 4] = -0.5
    path = dp_contour(g, 1, method=method)
    assert path.tolist() == [[4, 4, 4, 4]]


def test_pruned_dp_equals_all_starts_on_contour_maps_and_noise():
    from weakseg.kernels.contour import _dp_pruned

    star = StarPattern(num_rays=50, num_points=64, radius=60.0)
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    gen = torch.Generator().manual_seed(0)
    maps = []
    for r in (12.0, 20.0, 31.0, 45.0):  # an ellipse-like object, probability map, + noise as in training
        m = ((yy - 64) ** 2 / r**2 + (xx - 60) ** 2 / (0.7 * r) ** 2 < 1).float()[None, None]
        g = star.warp(torch.sigmoid(8 * (m - 0.5)), [64.0, 60.0]).double()
        maps += [g, g + torch.randn(g.shape, generator=gen, dtype=torch.float64)]
    maps.append(torch.randn(6, 50, 64, generator=gen, dtype=torch.float64))  # pure noise: bounds are loose
    g = torch.cat(maps)
    ref_p, ref_e = dp_contour(g, 2, return_energy=True, method="all_starts")
    for rounds in ((2, 8, 24), (1,), (), (4, 16, 32)):  # every certification round and the all-starts fallback
        p, e = _dp_pruned(g, 2, rounds)
        assert torch.allclose(e, ref_e, rtol=0, atol=1e-12)
        assert torch.equal(p, ref_p)
    assert torch.equal(dp_contour(g, 2), ref_p)  # "auto" on the CPU is the pruned DP


def test_dp_batched_equals_per_image_and_band_holds():
    torch.manual_seed(1)
    g = torch.randn(7, 12, 9, dtype=torch.float64)
    batched = dp_contour(g, 2)
    for b in range(7):
        assert torch.equal(batched[b], dp_contour(g[b : b + 1], 2)[0])
    step = (batched - batched.roll(-1, dims=1)).abs()
    assert int(step.max()) <= 2  # closed-contour smoothness, including ray N-1 -> ray 0
    assert batched.min() >= 0 and batched.max() < 9


def test_dp_unconstrained_delta_is_per_ray_argmin():
    g = torch.randn(3, 8, 6, dtype=torch.float64)
    assert torch.equal(dp_contour(g, 5), g.argmin(-1))
    assert torch.equal(dp_contour(g, 100), g.argmin(-1))


def test_dp_bad_input():
    with pytest.raises(ValueError, match="method must be"):
        dp_contour(torch.zeros(1, 4, 5), 1, method="greedy")
    with pytest.raises(ValueError, match="delta"):
        dp_contour(torch.zeros(1, 4, 5), -1)
    with pytest.raises(ValueError, match=r"\(B, N, M\)"):
        dp_contour(torch.zeros(4, 5), 1)
    with pytest.raises(ValueError, match="NaN"):
        dp_contour(torch.full((1, 4, 5), float("nan")), 1)


def test_star_pattern_samples_analytic_map():
    h, w = 64, 70
    rr, cc = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    f = (cc + 2 * rr)[None, None].repeat(2, 1, 1, 1)  # f(x, y) = x + 2y
    star = StarPattern(num_rays=8, num_points=10, radius=20.0)
    centre = torch.tensor([[30.0, 31.0], [32.5, 29.25]])
    rot = torch.tensor([0.3, 1.0])
    vals = star.sample(f, centre, rot)[:, 0]  # (B, N, M+1)
    # analytic sample points: centre + ρ_m (sin θ_n, cos θ_n), θ_n = rot + 2πn/N, ρ_m = m R/M
    th = rot[:, None] + torch.arange(8)[None] * (2 * math.pi / 8)
    rho = torch.arange(11) * 2.0
    r = centre[:, 0, None, None] + rho[None, None] * torch.sin(th)[..., None]
    c = centre[:, 1, None, None] + rho[None, None] * torch.cos(th)[..., None]
    torch.testing.assert_close(vals, c + 2 * r, atol=2e-4, rtol=0)
    # the warped map is the directional derivative: for a linear f it is R/M · (∇f · d_n) on every point
    g = star.warp(f, centre, rot)
    torch.testing.assert_close(g, (2.0 * (torch.cos(th) + 2 * torch.sin(th)))[..., None].expand(2, 8, 10),
                               atol=3e-4, rtol=0)


def test_star_pattern_label_indices_of_a_disc():
    h = w = 101
    rr, cc = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = (((rr - 50.0) ** 2 + (cc - 50.0) ** 2) <= 15.5 ** 2).float()[None, None]
    star = StarPattern(num_rays=16, num_points=40, radius=40.0)  # 1 px per index
    idx = star.label_indices(disc, [50.0, 50.0])
    # boundary at radius ~15.5: sample 15 inside, sample 16 outside -> index 15 on every ray
    assert idx.shape == (1, 16)
    assert set(idx.flatten().tolist()) <= {15}
    # and the DP on the disc's own derivative finds the same contour
    assert torch.equal(dp_contour(star.warp(disc, [50.0, 50.0]), 2), idx)
    # a centre outside the object -> 0
    assert star.label_indices(disc, [5.0, 5.0]).max() == 0


def test_star_pattern_bad_input():
    star = StarPattern(8, 10, 40.0)
    with pytest.raises(ValueError, match="radius"):
        star.sample(torch.zeros(1, 1, 64, 64), [32.0, 32.0])  # 2R = 80 > 64
    with pytest.raises(ValueError, match="outside"):
        StarPattern(8, 10, 20.0).sample(torch.zeros(1, 1, 64, 64), [70.0, 10.0])
    with pytest.raises(ValueError, match="num_rays"):
        StarPattern(2, 10, 20.0)


def test_polygon_fill_known_counts():
    # rectangle with half-integer corners: rows 2..7 (6 rows), cols 3..8 (6 cols)
    rect = torch.tensor([[1.5, 2.5], [1.5, 8.5], [7.5, 8.5], [7.5, 2.5]])
    m = polygon_to_mask(rect, (12, 12))
    assert int(m.sum()) == 36 and m[2:8, 3:9].all()
    # right triangle, legs 10 along row and col from (0.5, 0.5): pixel (r, c) inside iff r + c < 10 (r, c >= 1)
    tri = torch.tensor([[0.5, 0.5], [10.5, 0.5], [0.5, 10.5]])
    m = polygon_to_mask(tri, (16, 16))
    assert int(m.sum()) == sum(1 for r in range(1, 11) for c in range(1, 11) if r + c < 11)
    with pytest.raises(ValueError, match="at least 3"):
        polygon_to_mask(torch.zeros(2, 2), (4, 4))


def test_polygon_fill_equals_matplotlib_on_random_polygons():
    rng = np.random.default_rng(3)
    rr, cc = np.mgrid[:48, :48]
    centres = np.c_[rr.ravel(), cc.ravel()]
    batch = []
    for _ in range(20):
        k = int(rng.integers(3, 30))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(3, 20, k)
        poly = np.c_[24.13 + rad * np.sin(ang), 23.71 + rad * np.cos(ang)]  # star-shaped, generic position
        ref = MplPath(poly).contains_points(centres).reshape(48, 48)
        assert np.array_equal(polygon_to_mask(torch.as_tensor(poly), (48, 48)).numpy(), ref)
        batch.append(poly[:3])
    # batched triangles equal one-by-one
    tris = torch.as_tensor(np.stack(batch))
    masks = polygon_to_mask(tris, (48, 48))
    for i in range(len(batch)):
        assert torch.equal(masks[i], polygon_to_mask(tris[i], (48, 48)))


def _even_odd_brute_force(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    """Every pixel centre against every edge: inside iff an odd number of edges straddling its row (half-open)
    meet that row strictly to its right."""
    out = np.zeros((h, w), bool)
    k = len(poly)
    for r in range(h):
        for c in range(w):
            n = 0
            for i in range(k):
                (ra, ca), (rb, cb) = poly[i], poly[(i + 1) % k]
                if (ra > r) != (rb > r) and c < ca + (r - ra) * (cb - ca) / (rb - ra):
                    n += 1
            out[r, c] = n % 2 == 1
    return out


def test_polygon_fill_equals_brute_force_on_ties_self_intersections_and_clipping():
    rng = np.random.default_rng(11)
    polys = [
        np.array([[2.0, 2.0], [2.0, 9.0], [9.0, 9.0], [9.0, 2.0]]),  # integer corners: edges through pixel centres
        np.array([[1.0, 1.0], [10.0, 10.0], [1.0, 10.0], [10.0, 1.0]]),  # bow tie (self-intersecting)
        np.array([[-3.0, 5.5], [6.0, 15.0], [14.0, 4.0]]),  # reaches outside the 12 x 12 image
        np.array([[5.0, 1.0], [5.0, 6.0], [8.0, 3.0], [5.0, 11.0], [1.0, 6.0]]),  # a horizontal edge on a row
    ]
    polys += [rng.integers(-2, 14, (int(rng.integers(3, 9)), 2)).astype(float) for _ in range(30)]  # many ties
    polys += [rng.uniform(-2, 14, (int(rng.integers(3, 12)), 2)) for _ in range(30)]
    for poly in polys:
        got = polygon_to_mask(torch.as_tensor(poly), (12, 12)).numpy()
        assert np.array_equal(got, _even_odd_brute_force(poly, 12, 12)), poly.tolist()
    # batched (same K) equals one by one
    quads = torch.as_tensor(np.stack([rng.uniform(-2, 14, (4, 2)) for _ in range(8)]))
    masks = polygon_to_mask(quads, (12, 12))
    assert all(torch.equal(masks[i], polygon_to_mask(quads[i], (12, 12))) for i in range(8))


def test_contour_to_mask_round_trip():
    star = StarPattern(num_rays=32, num_points=30, radius=30.0)
    idx = torch.full((1, 32), 9)  # radius (9 + 0.5) * 1 = 9.5 px
    m = star.to_mask(idx, [40.0, 40.0], (80, 80))
    area = float(m.sum())
    # polygon inscribed in a circle of radius 9.5: area = ½ N r² sin(2π/N)
    expect = 0.5 * 32 * 9.5 ** 2 * math.sin(2 * math.pi / 32)
    assert abs(area - expect) < 0.06 * expect
    assert mask_centroid(m[0, 0]).tolist() == pytest.approx([40.0, 40.0], abs=1e-6)


def test_smooth_indices_is_circular_moving_average():
    x = torch.tensor([[0.0, 0, 0, 0, 10, 0, 0, 0]])
    y = smooth_indices(x, 5)
    assert y[0].tolist() == pytest.approx([0, 0, 2, 2, 2, 2, 2, 0])
    z = smooth_indices(torch.tensor([[10.0, 0, 0, 0, 0, 0, 0, 0]]), 3)  # wraps around ray 0
    assert z[0].tolist() == pytest.approx([10 / 3, 10 / 3, 0, 0, 0, 0, 0, 10 / 3])
    with pytest.raises(ValueError, match="odd"):
        smooth_indices(x, 4)


def test_mask_centroid_inside_for_a_ring_like_object():
    m = torch.zeros(21, 21)
    m[2:19, 2:5] = 1  # a "C": centroid falls in the hole
    m[2:5, 2:19] = 1
    m[16:19, 2:19] = 1
    c = mask_centroid(m)
    assert m[int(c[0].round()), int(c[1].round())] == 1
    assert MaskCentroidd("label")({"label": m[None]})["centre"].tolist() == c.tolist()
    with pytest.raises(ValueError, match="empty"):
        mask_centroid(torch.zeros(5, 5))
    # batched: equals a per-image reference (centroid, else the nearest object pixel, first in row-major order)
    gen = torch.Generator().manual_seed(0)
    masks = []
    for k in range(12):
        r = torch.zeros(21, 21)
        r[2 + k % 3 : 19, 2:5] = 1
        r[2:5, 2 : 19 - k % 4] = 1
        r[16:19, 2 : 19 - k % 5] = 1
        masks.append(r if k % 2 else (torch.rand(21, 21, generator=gen) > 0.8).float())  # C-shapes and scatter
    batch = torch.stack(masks)
    got = mask_centroid(batch)
    for k, mk in enumerate(masks):
        pix = torch.nonzero(mk > 0).double()
        cen = pix.mean(0)
        ri = cen.round().long()
        if mk[ri[0], ri[1]] == 0:
            cen = pix[torch.argmin(((pix - cen) ** 2).sum(1))]
        assert torch.allclose(got[k], cen.float()), k


def test_approximator_shapes_and_learns_dp():
    torch.manual_seed(0)
    approx = DPApproximator(base_channels=4)
    g = torch.randn(6, 24, 32)
    target = dp_contour(g, 2)
    out = approx(g)
    assert out.shape == (6, 24, 32)
    with pytest.raises(ValueError, match="too small"):
        approx(torch.randn(1, 8, 16))
    opt = torch.optim.Adam(approx.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(approx(g).transpose(1, 2), target)
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_dp_cuda_graph_equals_cpu():
    g = torch.randn(10, 50, 65, dtype=torch.float64)
    cpu = dp_contour(g, 2)
    for _ in range(3):  # capture, then replays with new data
        assert torch.equal(dp_contour(g.cuda(), 2).cpu(), cpu)
    g2 = torch.randn(10, 50, 65, dtype=torch.float64)
    assert torch.equal(dp_contour(g2.cuda(), 2).cpu(), dp_contour(g2, 2))
    assert torch.equal(dp_contour(g2.cuda(), 2, cuda_graph=False).cpu(), dp_contour(g2, 2))
