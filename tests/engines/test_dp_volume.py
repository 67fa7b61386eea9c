"""DPVolumeInferer and centres_datalist: the DP head on 3D volumes around given centres, on real Sunnybrook LV
contours stacked into a volume, with a pointwise "oracle" network whose output is the mask itself."""

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from weakseg.data import LoadLVSliced, centres_datalist, load_sunnybrook_datalist
from weakseg.inferers import CentreComponentInferer, DPContourInferer, DPVolumeInferer
from weakseg.networks import StarPattern
from weakseg.kernels.polygon import mask_centroid


def dice(a, b):
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def lv_volume(sunnybrook_dir):
    """(256, 256, 6) LV masks of one patient's contoured slices (slices on the last axis, as in ACDC)."""
    items = [it for it in load_sunnybrook_datalist(sunnybrook_dir) if it["patient"] == "SCD0000101"][:6]
    return np.stack([LoadLVSliced()(it)["label"][0].numpy() for it in items], -1)


def identity_net():
    net = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.zero_()
    return net.eval()


def dp_inferer():
    return DPContourInferer(StarPattern(50, 64, 64.0), delta=2, smoothing_window=5, activation="sigmoid")


def centres_of(masks, slices):
    cen = mask_centroid(torch.as_tensor(np.moveaxis(masks, -1, 0))[:, None])
    return torch.tensor([[k, float(cen[k, 0]), float(cen[k, 1])] for k in slices])


@torch.no_grad()
def test_equals_the_2d_inferer_on_whole_slices_and_recovers_the_contours(lv_volume):
    vol = lv_volume * 100.0 + 20.0  # the oracle network's output is the (z-scored) mask
    img = MetaTensor(torch.as_tensor(vol)[None, None], meta={"filename_or_obj": ["stack.nii.gz"]})
    slices = [0, 1, 2, 4]
    cen = centres_of(lv_volume, slices)
    out = DPVolumeInferer(dp_inferer(), (160, 160), slice_axis=2, batch_size=3)(img, identity_net(), centre=cen[None])
    assert out.shape == (1, 1, 256, 256, 6) and isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == ["stack.nii.gz"]
    for k in (3, 5):  # no centre: background
        assert not out[0, 0, ..., k].any()
    # reference: the 2D inferer on the whole z-scored 256x256 slices with the same centres
    whole = torch.as_tensor(vol).permute(2, 0, 1)[slices, None].float()
    whole = (whole - whole.mean((1, 2, 3), keepdim=True)) / whole.std((1, 2, 3), unbiased=False, keepdim=True)
    ref = dp_inferer().from_map(identity_net()(whole), cen[:, 1:].float())
    for j, k in enumerate(slices):
        assert torch.equal(out[0, 0, ..., k], ref[j, 0]), k
        assert dice(out[0, 0, ..., k], lv_volume[..., k]) > 0.9


@torch.no_grad()
def test_object_near_the_border_and_other_slice_axis(lv_volume):
    k = 0
    cen = centres_of(lv_volume, [k])[0]
    r0 = int(cen[1]) - 25  # the LV centre lies 25 px from the top edge: the window is zero padded
    sub = lv_volume[r0:, :, :]
    vol = np.moveaxis(sub * 100.0 + 20.0, -1, 0)  # slices on axis 0 now
    centre = torch.tensor([[[k, float(cen[1]) - r0, float(cen[2])]]])
    out = DPVolumeInferer(dp_inferer(), (160, 160), slice_axis=0)(torch.as_tensor(vol)[None, None], identity_net(),
                                                                  centre=centre)
    assert out.shape == (1, 1) + vol.shape
    assert dice(out[0, 0, k], sub[..., k]) > 0.9
    assert not out[0, 0, 1:].any()


@torch.no_grad()
def test_batch_equals_single_volumes_and_the_component_inferer_works(lv_volume):
    vol = torch.as_tensor(lv_volume * 100.0 + 20.0)[None]
    batch = torch.stack([vol, vol.flip(1)])
    c0 = centres_of(lv_volume, [0, 2])
    c1 = centres_of(np.flip(lv_volume, 1).copy(), [1])
    inf = DPVolumeInferer(CentreComponentInferer(), (128, 128))
    both = inf(batch, identity_net(), centre=[c0, c1])
    assert torch.equal(both[0], inf(batch[:1], identity_net(), centre=[c0])[0])
    assert torch.equal(both[1], inf(batch[1:], identity_net(), centre=[c1])[0])
    # thresholded identity map at the centre's component = the GT mask itself
    assert torch.equal(both[0, 0, ..., 0] > 0, torch.as_tensor(lv_volume[..., 0] > 0))


def test_bad_centres_are_clear_errors(lv_volume, tmp_path):
    img = MetaTensor(torch.zeros(1, 1, 32, 32, 4), meta={"filename_or_obj": ["case7.nii.gz"]})
    inf = DPVolumeInferer(dp_inferer(), (32, 32))
    with pytest.raises(ValueError, match=r"case7.nii.gz: centre \(slice 4, row 3, col 3\) is outside"):
        inf(img, identity_net(), centre=torch.tensor([[[4.0, 3, 3]]]))
    with pytest.raises(ValueError, match=r"needs object centres"):
        inf(img, identity_net())
    with pytest.raises(ValueError, match=r"\(B, C, X, Y, Z\)"):
        inf(img[0], identity_net(), centre=torch.zeros(1, 1, 3))

    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    cf = tmp_path / "centres.json"
    cf.write_text(json.dumps({"a.nii.gz": [[0, 10.5, 12]], str(b): []}))
    items = centres_datalist([str(a), str(b)], cf)
    assert items[0]["centres"].tolist() == [[0, 10.5, 12]] and items[1]["centres"].shape == (0, 3)
    cf.write_text(json.dumps({"a.nii.gz": [[0, 10.5, 12]]}))
    with pytest.raises(ValueError, match=r"centres.json' has no entry for input .*b.nii.gz"):
        centres_datalist([str(a), str(b)], cf)
    cf.write_text(json.dumps({"a.nii.gz": [[0, 10.5]], "b.nii.gz": []}))
    with pytest.raises(ValueError, match=r"entry 'a.nii.gz': expected a list of \[slice, row, col\]"):
        centres_datalist([str(a), str(b)], cf)
    cf.write_text("{not json")
    with pytest.raises(ValueError, match="centres.json' is not valid JSON"):
        centres_datalist([str(a)], cf)
    with pytest.raises(FileNotFoundError, match="missing.json' does not exist"):
        centres_datalist([str(a)], tmp_path / "missing.json")
