"""Signed distance maps against a per-mask scipy EDT reference, for both backends; CPU/GPU agreement."""

import numpy as np
import pytest
import torch
from monai.losses import BoundaryLoss
from scipy.ndimage import distance_transform_edt

from weakseg.transforms import SignedDistanceMap, SignedDistanceMapd, signed_distance_map


def ref_sdm(mask, bound=None, rescale=None, spacing=None):
    """Kervadec / MONAI convention from two scipy EDTs of one mask."""
    m = mask.astype(bool)
    if not m.any() or m.all():
        return np.zeros(m.shape, np.float32)
    out = np.where(m, -(distance_transform_edt(m, sampling=spacing) - 1), distance_transform_edt(~m, sampling=spacing))
    if bound is not None:
        out = np.clip(out, -bound, bound)
    if rescale is not None:
        out = out / rescale
    return out


def random_masks(rng, n, shape, p=None):
    out = []
    for _ in range(n):
        q = rng.uniform(0.05, 0.95) if p is None else p
        m = rng.random(shape) < q
        out.append(m)
    out[0][:] = False  # an empty mask
    out[1][:] = True  # a full mask
    return np.stack(out)


class TestSignedDistanceMap:
    def test_matches_scipy_2d_both_backends(self):
        rng = np.random.default_rng(0)
        masks = random_masks(rng, 300, (17, 11))
        # some blob-like masks as well as noise
        yy, xx = np.mgrid[:17, :11]
        masks[2] = (yy - 8) ** 2 + (xx - 5) ** 2 < 16
        ref = np.stack([ref_sdm(m) for m in masks])
        for backend in ("numpy", "torch"):
            out = signed_distance_map(torch.as_tensor(masks), 2, backend=backend).numpy()
            np.testing.assert_allclose(out, ref, atol=1e-5, err_msg=backend)

    def test_matches_scipy_3d_spacing_clamp_rescale(self):
        rng = np.random.default_rng(1)
        masks = random_masks(rng, 20, (6, 9, 7), p=0.15)
        sp = (2.0, 1.0, 0.5)
        ref = np.stack([ref_sdm(m, bound=3.0, rescale=4.0, spacing=sp) for m in masks])
        for backend in ("numpy", "torch"):
            out = signed_distance_map(masks, 3, bound=3.0, rescale=4.0, spacing=sp, backend=backend)
            assert isinstance(out, np.ndarray)
            np.testing.assert_allclose(out, ref, atol=1e-5, err_msg=backend)

    def test_convention_on_a_square(self):
        m = np.zeros((7, 7), bool)
        m[2:5, 2:5] = True
        out = signed_distance_map(m[None], 2)[0]
        assert out[3, 3] == -1.0  # centre: 2 px to background → −(2 − 1)
        assert out[2, 2] == 0.0  # inner boundary pixel: zero crossing
        assert out[2, 1] == 1.0  # just outside
        assert float(out[0, 0]) == pytest.approx(np.sqrt(8), abs=1e-5)

    def test_matches_monai_boundary_loss_map(self):
        target = (torch.rand(3, 2, 12, 10) > 0.7).float()
        target[0, 0] = 0
        monai_map = BoundaryLoss().compute_distance_map(target)
        np.testing.assert_allclose(signed_distance_map(target, 2).numpy(), monai_map.numpy(), atol=1e-5)

    def test_transforms(self):
        m = torch.zeros(1, 8, 8)
        m[0, 2:6, 3:5] = 1
        out = SignedDistanceMap(bound=128, rescale=128)(m)
        np.testing.assert_allclose(out.numpy(), ref_sdm(m[0].numpy(), 128, 128)[None], atol=1e-6)
        d = SignedDistanceMapd("label", bound=128, rescale=128)({"label": m})
        assert "label_sdm" in d
        assert torch.equal(d["label"], m)
        with pytest.raises(ValueError, match="channel-first"):
            SignedDistanceMap(spatial_dims=3)(m)
        with pytest.raises(ValueError, match="bound"):
            signed_distance_map(m, 2, bound=-1)

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_gpu_agrees_with_cpu(self):
        rng = np.random.default_rng(2)
        masks = torch.as_tensor(random_masks(rng, 512, (48, 32)))
        cpu = signed_distance_map(masks, 2, bound=128, rescale=128)
        gpu = signed_distance_map(masks.cuda(), 2, bound=128, rescale=128)
        assert gpu.device.type == "cuda"
        np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-5)
