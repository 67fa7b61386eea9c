import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from weakseg.transforms import CheckFinite, CheckFinited, MergeLabels, MergeLabelsd

TYPES = [(np.asarray,), (torch.as_tensor,), (lambda a: MetaTensor(torch.as_tensor(a)),)]


class TestMergeLabels:
    @parameterized.expand(TYPES)
    def test_binary_merge(self, to):
        lab = to(np.array([[0, 1, 2], [2, 0, 1]], dtype=np.uint8))
        out = MergeLabels({0: 0, 1: 1, 2: 1})(lab)
        np.testing.assert_array_equal(np.asarray(out), [[0, 1, 1], [1, 0, 1]])
        assert out.dtype == lab.dtype and type(out) is type(lab)

    def test_arbitrary_mapping_and_string_keys(self):
        lab = np.array([0, 1, 2, 2], dtype=np.float32)
        out = MergeLabelsd(keys="label", mapping={"0": 5, "1": 0, "2": 7})({"label": lab})["label"]
        np.testing.assert_array_equal(out, [5, 0, 7, 7])

    def test_value_outside_mapping_names_file(self):
        lab = MetaTensor(torch.tensor([0.0, 1.0, 3.0]), meta={"filename_or_obj": "/x/labelsTr/case_9.nii.gz"})
        with pytest.raises(ValueError, match=r"case_9.*\[3\.0\]"):
            MergeLabels({0: 0, 1: 1, 2: 1})(lab)


class TestCheckFinite:
    def test_nan_names_file(self):
        img = MetaTensor(torch.tensor([0.0, float("nan")]), meta={"filename_or_obj": "img_3.nii.gz"})
        with pytest.raises(ValueError, match="img_3.nii.gz.*NaN"):
            CheckFinited(keys="image")({"image": img})

    def test_finite_passes(self):
        a = np.ones(3)
        assert CheckFinite()(a) is a
