import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from monai.data import MetaTensor

import weakseg.kernels.size as size_module
from weakseg.transforms import SizeFromMask, SizeFromMaskd, flipped_sizes, object_size, size_flip_candidates


def scipy_size(m: np.ndarray, border_is_background: bool) -> int:
    """Reference: 2 * max chessboard distance transform (scipy), padding with background for the first rule."""
    if border_is_background:
        m = np.pad(m, 1)
    if not m.any():
        return 0
    if m.all():
        return -1  # scipy gives -1 everywhere when there is no background
    return 2 * int(ndi.distance_transform_cdt(m, metric="chessboard").max())


def square(n, k):
    m = np.zeros((n, n), bool)
    o = (n - k) // 2
    m[o : o + k, o : o + k] = True
    return m


class TestWorkedExamples:
    @pytest.mark.parametrize(("_", "m", "expected"), [
        ("3x3 in 7x7", square(7, 3), 4),
        ("5x5 in 7x7", square(7, 5), 6),
        ("single pixel", square(7, 1), 2),
        ("all background", np.zeros((7, 7), bool), 0),
    ])
    def test_outside_ignored(self, _, m, expected):
        assert int(object_size(m, border_is_background=False)) == expected
        assert int(object_size(m, border_is_background=True)) == expected  # no contact with the border

    def test_border_rules_differ_at_the_border(self):
        full = np.ones((5, 7), bool)
        assert int(object_size(full, border_is_background=True)) == 6  # 5 rows -> centre row d = 3
        assert int(object_size(full, border_is_background=False)) == -1  # documented sentinel
        m = np.ones((6, 6), bool)
        m[5, 5] = False  # only background pixel in a corner
        assert int(object_size(m, border_is_background=False)) == 10  # (0,0) is 5 away
        assert int(object_size(m, border_is_background=True)) == 6

    @pytest.mark.parametrize(("_", "dt"), [("bool", np.bool_), ("01", np.uint8), ("pm1", np.int8)])
    def test_dtypes(self, _, dt):
        m = square(7, 3).astype(dt)
        if dt == np.int8:
            m = np.where(m > 0, 1, -1).astype(np.int8)
        assert int(object_size(m)) == 4
        assert int(object_size(torch.as_tensor(m))) == 4


class TestAgainstScipy:
    @pytest.mark.parametrize(("border",), [(True,), (False,)])
    def test_random_masks(self, border):
        rng = np.random.RandomState(1 if border else 2)
        masks = []
        for _ in range(1200):
            h, w = rng.randint(1, 20, size=2)
            kind = rng.randint(3)
            if kind == 0:
                m = rng.rand(h, w) < rng.choice([0.2, 0.5, 0.8, 0.95, 1.0])
            else:  # blobs, like real objects
                m = ndi.gaussian_filter(rng.rand(h, w), rng.uniform(0.5, 3)) > rng.uniform(0.4, 0.6)
            masks.append(m)
            ref = scipy_size(m, border)
            assert int(object_size(m, border)) == ref, (m.astype(int), border)
            assert int(object_size(m, border, "erosion")) == ref, (m.astype(int), border, "erosion")
        # batched (many shapes of 48x32, both backends) equals the per-mask reference
        batch = np.stack([ndi.gaussian_filter(rng.rand(48, 32), 2) > 0.5 for _ in range(300)])
        ref = np.array([scipy_size(m, border) for m in batch])
        batch[0], batch[1] = True, False  # a full and an empty mask in the batch
        ref = np.array([scipy_size(m, border) for m in batch])
        for backend in ("numpy", "torch", "erosion"):
            np.testing.assert_array_equal(object_size(torch.as_tensor(batch), border, backend).numpy(), ref, backend)

    def test_leading_dims(self):
        m = torch.zeros(2, 3, 1, 9, 9, dtype=torch.bool)
        m[1, 2, 0, 2:7, 2:7] = True
        out = object_size(m)
        assert out.shape == (2, 3, 1) and out[1, 2, 0] == 6 and out.sum() == 6

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    def test_gpu_matches_cpu(self):
        rng = np.random.RandomState(0)
        batch = torch.as_tensor(np.stack([ndi.gaussian_filter(rng.rand(48, 32), 2) > 0.5 for _ in range(512)]))
        for border in (True, False):
            assert torch.equal(object_size(batch.cuda(), border).cpu(), object_size(batch, border))
            assert torch.equal(size_flip_candidates(batch.cuda(), border).cpu(), size_flip_candidates(batch, border))
            assert torch.equal(flipped_sizes(batch[:64].cuda(), border).cpu(), flipped_sizes(batch[:64], border))


class TestFlipCandidates:
    @pytest.mark.parametrize(("border", "backend"), [(b, k) for k in ("numpy", "torch", "erosion") for b in (True, False)])
    def test_exactly_the_flips_that_change_size(self, border, backend):
        rng = np.random.RandomState(7)
        for _ in range(150):
            h, w = rng.randint(1, 9, size=2)
            m = torch.as_tensor(rng.rand(h, w) < rng.choice([0.0, 0.3, 0.6, 0.9, 1.0]))
            g = int(object_size(m, border))
            brute = brute_flipped_sizes(m[None], border)[0] != g
            assert torch.equal(size_flip_candidates(m[None], border, backend)[0], brute), m.int()


def brute_flipped_sizes(m: torch.Tensor, border: bool) -> torch.Tensor:
    """object_size of every single-pixel flip of each mask (N, H, W) -> (N, H, W)."""
    n, h, w = m.shape
    k = torch.arange(h * w)
    out = []
    for c in m.split(max(1, 4096 // (h * w))):  # bounded memory: at most ~4096 flipped masks at a time
        f = c[:, None].repeat(1, h * w, 1, 1)
        f[:, k, k // w, k % w] ^= True
        out.append(object_size(f.view(-1, h, w), border).view(-1, h, w))
    return torch.cat(out)


class TestFlippedSizes:
    @pytest.mark.parametrize(("border",), [(True,), (False,)])
    def test_every_small_mask(self, border):
        # every mask of 3x4, 2x5, 1x4 and 1x1: each case of removal / addition on small grids
        for h, w in ((3, 4), (2, 5), (1, 4), (1, 1)):
            confs = torch.tensor(list(itertools.product([False, True], repeat=h * w))).view(-1, h, w)
            g0, g1 = flipped_sizes(confs, border, return_size=True)
            assert torch.equal(g0, object_size(confs, border))
            assert torch.equal(g1, brute_flipped_sizes(confs, border))

    @pytest.mark.parametrize(("border",), [(True,), (False,)])
    def test_large_objects_and_noise(self, border):
        # thick blobs (max distance up to 10) with noise, noise alone, full and one-background masks
        rng = np.random.RandomState(11)
        h, w = (24, 20) if border else (16, 13)  # the brute force is slow when the outside is ignored
        masks = []
        for _ in range(12):
            m = np.zeros((h, w), bool)
            for _ in range(rng.randint(1, 4)):
                r, c = rng.randint(0, h), rng.randint(0, w)
                m[r : r + rng.randint(1, h), c : c + rng.randint(1, w)] = True
            masks.append(m ^ (rng.rand(h, w) < rng.uniform(0, 0.1)))
        masks += [rng.rand(h, w) < p for p in (0.2, 0.5, 0.8, 0.97)]
        masks += [np.ones((h, w), bool), np.zeros((h, w), bool)]
        one_bg = np.ones((h, w), bool)
        one_bg[7, 5] = False
        masks.append(one_bg)
        m = torch.as_tensor(np.stack(masks))
        expected = brute_flipped_sizes(m, border)
        assert torch.equal(flipped_sizes(m, border), expected)
        # the level loops in bounded chunks give the same result
        budget, size_module._LEVEL_BUDGET = size_module._LEVEL_BUDGET, h * w * 20
        try:
            assert torch.equal(flipped_sizes(m[:10], border), expected[:10])
        finally:
            size_module._LEVEL_BUDGET = budget

    def test_leading_dims_and_dtypes(self):
        m = torch.zeros(2, 3, 9, 9)
        m[1, 2, 2:7, 2:7] = 1.0
        out = flipped_sizes(m)
        assert out.shape == (2, 3, 9, 9)
        # 5x5 square (size 6, centre distance 3): a hole in the centre leaves distances of 1 (size 2); removing
        # a corner or (3, 3) caps the centre at Chebyshev distance 2 from it (size 4); a far added pixel: still 6
        assert out[1, 2, 4, 4] == 2 and out[1, 2, 2, 2] == 4 and out[1, 2, 3, 3] == 4 and out[1, 2, 0, 0] == 6
        assert out[0, 0, 4, 4] == 2  # one pixel added to an empty mask


class TestSizeFromMask:
    def test_array_and_dict(self):
        m = torch.as_tensor(square(7, 5))[None].float()
        assert torch.equal(SizeFromMask()(m), torch.tensor([6.0]))
        d = SizeFromMaskd(keys="label", drop_mask=True)({"image": 1, "label": m})
        assert "label" not in d and float(d["size"]) == 6.0

    def test_empty_mask_names_file(self):
        m = MetaTensor(torch.zeros(1, 5, 5), meta={"filename_or_obj": "lab_012.nii.gz"})
        with pytest.raises(ValueError, match="lab_012.nii.gz.*no foreground"):
            SizeFromMask()(m)
        assert float(SizeFromMask(allow_empty=True)(m)) == 0.0

    def test_bad_shape(self):
        with pytest.raises(ValueError, match=r"\(1, H, W\)"):
            SizeFromMask()(torch.ones(2, 5, 5))
