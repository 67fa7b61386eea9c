import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from weakseg.transforms import CheckFinite, CheckFinited, MergeLabels, MergeLabelsd

TYPES = [(np.asarray,), (torch.as_tensor,), (lambda a: MetaTensor(torch.as_tensor(a)),)]


class TestMergeLabels:
    @pytest.mark.parametrize(("to",), TYPES)
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


def test_merge_labels_reads_8bit_binary_masks_and_merges_unnamed_classes():
    import numpy as np
    import torch
    from monai.data import MetaTensor

    from weakseg.transforms import MergeLabels

    hippo = MergeLabels({0: 0, 1: 1, 2: 1})
    png = MetaTensor(torch.tensor([[0.0, 255.0], [255.0, 0.0]]), meta={"filename_or_obj": "m.png"})
    out = hippo(png)
    assert out.tolist() == [[0, 1], [1, 0]] and out.meta["filename_or_obj"] == "m.png"
    with pytest.raises(ValueError, match=r"values \[128.0, 255.0\] outside the mapping"):
        hippo(np.array([0, 128, 255]))  # 255 is read as 1 only in a pure 0/255 mask
    assert MergeLabels({0: 0, 255: 7})(np.array([0, 255])).tolist() == [0, 7]  # an explicit 255 wins
    unnamed = MergeLabels(None)
    assert unnamed(torch.tensor([0.0, 3.0, 1.0, 2.0])).tolist() == [0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"m.png has values \[0.5\]; expected class ids"):
        unnamed(MetaTensor(torch.tensor([0.0, 0.5]), meta={"filename_or_obj": "m.png"}))
