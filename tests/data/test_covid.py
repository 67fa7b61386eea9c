"""COVID-QU-Ex loader on the real PNGs: file matching, positives only, stratified split, mask values, errors."""

import shutil

import numpy as np
import pytest
import torch
from monai.transforms import LoadImaged
from PIL import Image

from weakseg.data import CovidQUExSource, load_covid_qu_ex_datalist, stratified_split
from weakseg.transforms import BinaryMask, BinaryMaskd, RandPickd


def test_real_sample_lists_and_matches_masks(covid_dir):
    items = load_covid_qu_ex_datalist(covid_dir.parent)
    counts = {c: sum(it["class"] == c for it in items) for c in ("COVID-19", "Non-COVID", "Normal")}
    assert counts == {"COVID-19": 100, "Non-COVID": 50, "Normal": 50}
    for it in items[:: 17]:
        for k in ("label", "lung"):
            assert it[k].endswith(it["image"].split("/")[-1])
    # positives only: independent check with PIL of every infection mask
    pos = load_covid_qu_ex_datalist(covid_dir, positives_only=True)
    expected = [it["id"] for it in items if np.asarray(Image.open(it["label"])).max() > 0]
    assert [it["id"] for it in pos] == expected and len(pos) == 100
    assert {it["class"] for it in pos} == {"COVID-19"}


def test_stratified_split_keeps_classes_and_is_disjoint(covid_dir):
    items = load_covid_qu_ex_datalist(covid_dir)
    s = stratified_split(items, (0.6, 0.2, 0.2), seed=3)
    ids = [set(it["id"] for it in s[k]) for k in ("train", "val", "test")]
    assert sum(map(len, ids)) == 200 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for k, n in (("train", 120), ("val", 40), ("test", 40)):
        assert len(s[k]) == n
        assert sum(it["class"] == "COVID-19" for it in s[k]) == n // 2
    assert stratified_split(items, seed=3) == s and stratified_split(items, seed=4) != s


def test_png_masks_load_as_binary(covid_dir):
    it = load_covid_qu_ex_datalist(covid_dir, positives_only=True)[0]
    d = LoadImaged(["image", "label"], reader="PILReader", reverse_indexing=False, image_only=True,
                   ensure_channel_first=True)(it)
    d = BinaryMaskd("label", values=(0, 255))(d)
    assert tuple(d["label"].shape) == (1, 256, 256)
    raw = np.asarray(Image.open(it["label"]))
    np.testing.assert_array_equal(d["label"][0].numpy(), (raw == 255).astype(np.float32))


def test_bad_input(tmp_path, covid_dir):
    with pytest.raises(ValueError, match=r"values \[128.0\]; expected only 0 \(background\) and 255"):
        BinaryMask((0, 255))(torch.tensor([[0.0, 128.0, 255.0]]))
    with pytest.raises(ValueError, match="expected only 0 .* and 1"):
        BinaryMask()(np.array([0, 2]))
    # an image without its mask names both files
    base = tmp_path / "Infection Segmentation Data" / "Test" / "Normal"
    for sub in ("images", "lung masks", "infection masks"):
        (base / sub).mkdir(parents=True)
    src = covid_dir / "Test" / "Normal"
    name = sorted((src / "images").iterdir())[0].name
    shutil.copy(src / "images" / name, base / "images" / name)
    shutil.copy(src / "lung masks" / name, base / "lung masks" / name)
    with pytest.raises(FileNotFoundError, match="has no matching infection mask"):
        load_covid_qu_ex_datalist(tmp_path, classes=["Normal"])
    shutil.copy(src / "infection masks" / name, base / "infection masks" / name)
    with pytest.raises(ValueError, match="none of the 1 infection masks"):
        load_covid_qu_ex_datalist(tmp_path, classes=["Normal"], positives_only=True)
    with pytest.raises(FileNotFoundError, match="Download anasmohammedtahir/covidqu"):
        CovidQUExSource(tmp_path / "missing")


def test_rand_pick_positives_only():
    img = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 64, 64)
    lab = torch.zeros(1, 64, 64)
    lab[0, 50:54, 8:12] = 1
    pick = RandPickd(["image", "label"], (16, 16), max_angle=0.3, label_key="label", positives_only=True,
                     mode=["bilinear", "nearest"]).set_random_state(0)
    for _ in range(20):
        out = pick({"image": img, "label": lab})
        assert tuple(out["image"].shape) == (1, 16, 16) and tuple(out["label"].shape) == (1, 16, 16)
        assert out["label"].sum() > 0  # every patch holds foreground
    plain = RandPickd(["image", "label"], (16, 16), max_angle=0.0).set_random_state(1)
    out = plain({"image": img, "label": lab})
    # no rotation: the patch is an exact crop of the image
    v = out["image"][0, 0, 0].item()
    r, c = int(v) // 64, int(v) % 64
    torch.testing.assert_close(torch.as_tensor(out["image"]), img[:, r : r + 16, c : c + 16])
    with pytest.raises(ValueError, match="no foreground"):
        pick({"image": img, "label": torch.zeros(1, 64, 64)})


def test_a_mask_of_another_size_is_refused_before_resizing(tmp_path, covid_dir):
    """The COVID config resizes images and masks; a 200x200 mask of a 256x256 X-ray is named, not resized apart."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    from ..conftest import CONFIGS

    src = next((covid_dir / "Test" / "COVID-19" / "images").glob("*.png"))
    img, mask = tmp_path / "x.png", tmp_path / "x_mask.png"
    shutil.copy(src, img)
    with Image.open(src.parent.parent / "infection masks" / src.name) as m:
        m.resize((200, 200), Image.NEAREST).save(mask)
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "train_covid.json")])
    load = Compose([parser.get_parsed_content("preprocessing"), parser.get_parsed_content("label_transform")])
    with pytest.raises(Exception) as err:
        load({"image": str(img), "label": str(mask)})
    text, e = "", err.value
    while e is not None:  # nested Compose: the message is on the innermost cause
        text, e = text + str(e), e.__cause__
    assert "x_mask.png (200, 200)" in text and "x.png (256, 256)" in text and "same shape" in text
