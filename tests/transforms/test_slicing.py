import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from weakseg.transforms import SliceVolume, SliceVolumed


def _volume():
    """(1, 4, 10, 10) label: axis-0 slices with 0, 1, 5 and 0 foreground pixels (fractions 0, .01, .05, 0)."""
    lab = np.zeros((1, 4, 10, 10), dtype=np.float32)
    lab[0, 1, 3, 3] = 1
    lab[0, 2, 2, 2:7] = 2
    img = np.arange(400, dtype=np.float32).reshape(1, 4, 10, 10)
    return img, lab


def _as(kind, arr):
    if kind == "numpy":
        return arr
    if kind == "torch":
        return torch.as_tensor(arr)
    return MetaTensor(torch.as_tensor(arr), affine=torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0])),
                      meta={"filename_or_obj": "/data/vol_007.nii.gz"})


KINDS = [("numpy",), ("torch",), ("metatensor",)]
# (min_foreground, axis, expected kept indices) worked by hand from _volume()
CASES = [
    (0.01, 0, [1, 2]),
    (0.02, 0, [2]),
    (0.0, 0, [0, 1, 2, 3]),
    (0.5, 0, []),
    # along axis 1 (rows): row 3 holds slice-1's pixel (1/40 = .025), row 2 holds 5 pixels (5/40 = .125)
    (0.02, 1, [2, 3]),
    (0.1, 1, [2]),
]


class TestSliceVolume:
    @pytest.mark.parametrize(("kind", "min_fg", "axis", "expected"), [(k, *c) for (k,) in KINDS for c in CASES])
    def test_kept_indices_and_content(self, kind, min_fg, axis, expected):
        img, lab = _volume()
        t = SliceVolume(axis=axis, min_foreground=min_fg)
        out = t(_as(kind, img), _as(kind, lab))
        assert len(out) == len(expected)
        for s, i in zip(out, expected):
            ref = np.take(img, i, axis=axis + 1)
            assert type(s) is type(_as(kind, img))
            assert tuple(s.shape) == ref.shape
            np.testing.assert_array_equal(np.asarray(s), ref)

    def test_metadata(self):
        img, lab = _volume()
        out = SliceVolume(axis=0, min_foreground=0.01)(_as("metatensor", img), _as("metatensor", lab))
        assert [s.meta["slice_index"] for s in out] == [1, 2]
        assert all(s.meta["volume_id"] == "/data/vol_007.nii.gz" for s in out)
        # affine of the in-plane axes (3 and 4 mm) survives, the sliced axis (2 mm) is dropped
        np.testing.assert_allclose(out[0].affine.numpy(), np.diag([3.0, 4.0, 1.0]))

    def test_dict_version(self):
        img, lab = _volume()
        d = {"image": _as("metatensor", img), "label": _as("metatensor", lab), "case": "x"}
        out = SliceVolumed(keys=["image", "label"], label_key="label", min_foreground=0.01)(d)
        assert [o["slice_index"] for o in out] == [1, 2]
        assert [o["volume_id"] for o in out] == ["/data/vol_007.nii.gz"] * 2
        assert out[1]["case"] == "x"
        np.testing.assert_array_equal(np.asarray(out[1]["label"]), lab[:, 2])
        np.testing.assert_array_equal(np.asarray(out[0]["image"]), img[:, 1])

    def test_shape_mismatch_names_files(self):
        img, lab = _volume()
        d = {"image": _as("metatensor", img), "label": MetaTensor(torch.zeros(1, 4, 10, 9),
                                                                   meta={"filename_or_obj": "/data/lab_7.nii.gz"})}
        with pytest.raises(ValueError, match=r"vol_007.*lab_7|lab_7.*vol_007"):
            SliceVolumed(keys=["image", "label"])(d)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="axis"):
            SliceVolume(axis=3)
        with pytest.raises(ValueError, match="min_foreground"):
            SliceVolume(min_foreground=1.5)
        with pytest.raises(ValueError, match="channel-first 3D"):
            SliceVolume()(np.zeros((4, 10, 10)))
