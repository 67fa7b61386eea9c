"""AHD / balanced AHD / modified AHD: the worked values and a brute-force pairwise-distance reference."""

import numpy as np
import pytest
import torch

from weakseg.metrics import AverageHausdorffDistanceMetric, average_hausdorff_distance


def square():
    g = np.zeros((7, 7), np.float32)
    g[2:5, 2:5] = 1
    return g


def brute(pred, gt, variant, q=95, spacing=(1.0, 1.0)):
    ps = np.argwhere(pred) * np.asarray(spacing)
    gs = np.argwhere(gt) * np.asarray(spacing)
    if len(ps) == 0 and len(gs) == 0:
        return 0.0
    if len(ps) == 0 or len(gs) == 0:
        return float("nan")
    d = np.sqrt(((gs[:, None, :] - ps[None, :, :]) ** 2).sum(-1))  # (|G|, |S|)
    g_to_s, s_to_g = d.min(1), d.min(0)
    if variant == "ahd":
        return 0.5 * (g_to_s.mean() + s_to_g.mean())
    if variant == "balanced":
        return 0.5 * (g_to_s.sum() + s_to_g.sum()) / len(gs)
    return 0.5 * (np.percentile(g_to_s, q) + np.percentile(s_to_g, q))


def batch(*masks):
    return torch.as_tensor(np.stack(masks))[:, None]


class TestAHD:
    def test_worked_values(self):
        g = square()
        fp = g.copy()
        fp[0, 0] = 1  # one far false positive
        miss = g.copy()
        miss[2, 2] = 0  # one missing corner
        ahd = average_hausdorff_distance(batch(fp, miss), batch(g, g), include_background=True)
        assert ahd[0, 0].item() == pytest.approx(0.141421, abs=1e-5)
        assert ahd[1, 0].item() == pytest.approx(0.055556, abs=1e-5)
        bahd = average_hausdorff_distance(batch(fp), batch(g), include_background=True, variant="balanced")
        assert bahd[0, 0].item() == pytest.approx(0.157135, abs=1e-5)
        same = average_hausdorff_distance(batch(g), batch(g), include_background=True, variant="modified")
        assert same.item() == 0.0

    def test_brute_force_random(self):
        rng = np.random.default_rng(0)
        for variant in ("ahd", "balanced", "modified"):
            for _ in range(30):
                p = (rng.random((9, 8)) < rng.uniform(0.05, 0.5)).astype(np.float32)
                g = (rng.random((9, 8)) < rng.uniform(0.05, 0.5)).astype(np.float32)
                sp = (1.5, 0.7)
                out = average_hausdorff_distance(batch(p), batch(g), True, variant, spacing=sp)[0, 0].item()
                assert out == pytest.approx(brute(p, g, variant, spacing=sp), abs=1e-4), variant

    def test_empty_sets_and_cumulative(self):
        g, z = square(), np.zeros((7, 7), np.float32)
        metric = AverageHausdorffDistanceMetric(include_background=True, get_not_nans=True)
        metric(batch(z, g, g), batch(z, z, g))  # both empty → 0, one empty → NaN (skipped), identical → 0
        raw = metric.get_buffer()
        assert raw[0, 0].item() == 0.0
        assert np.isnan(raw[1, 0].item())
        value, not_nans = metric.aggregate()
        assert value.item() == 0.0
        assert not_nans.item() == 2

    def test_bad_input(self):
        with pytest.raises(ValueError, match="binarised"):
            average_hausdorff_distance(torch.full((1, 1, 3, 3), 0.5), torch.zeros(1, 1, 3, 3))
        with pytest.raises(ValueError, match="variant"):
            AverageHausdorffDistanceMetric(variant="max")
