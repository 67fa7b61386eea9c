"""A folder of 2D images with masks in the generic layout (images/ + masks/, PNG, 0/255) goes through the same
configs as the MSD volumes: supervised training and evaluation, simulate -> pre-train -> size stage, and
multi-label deep supervision, with no option besides its path, class names and slice size."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from .test_size_bundle import simulate
from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def _dice(p: np.ndarray, g: np.ndarray) -> float:
    return float(2 * (p & g).sum() / (p.sum() + g.sum()))


def test_generic_2d_folder_trains_and_evaluates_every_method(tmp_path, lung_folder):
    from monai.inferers import SlidingWindowInferer
    from monai.networks.nets import UNet
    from PIL import Image

    from weakseg.data import load_folder_datalist, split_by_volume

    common = ["--dataset_dir", str(lung_folder), "--download", "False", "--spatial_size", "[64, 64]",
              "--class_names", "{'0': 'background', '1': 'lung'}", "--batch_size", "8"]
    sup = run_bundle(tmp_path, *common, "--max_epochs", "2", "--learning_rate", "0.003")
    assert sup.returncode == 0, sup.stdout[-3000:] + sup.stderr[-3000:]
    ev = run_bundle(tmp_path, *common, config=("evaluate.json", "train.json"), run_id="evaluating")
    assert ev.returncode == 0, ev.stdout[-3000:] + ev.stderr[-3000:]
    res = json.loads((tmp_path / "output" / "supervised" / "eval_test" / "metrics.json").read_text())

    # the test split is the bundle's split of the folder (by image); every test image is scored once
    test = split_by_volume(load_folder_datalist(lung_folder), (0.7, 0.1, 0.2), 0)["test"]
    assert [r["case"] for r in res["per_case"]] == [t["image"] for t in test]

    # independent per-image Dice: the checkpoint applied with PIL + torch, z-scored, sliding window, p > 0.5
    net = UNet(2, 1, 1, channels=(32, 64, 128, 256), strides=(2, 2, 2), num_res_units=2)
    net.load_state_dict(torch.load(tmp_path / "output" / "supervised" / "models" / "model.pt", weights_only=True))
    net.eval()
    inter = union = 0
    preds = {}
    for t, row in zip(test, res["per_case"]):
        img = np.asarray(Image.open(t["image"]), dtype=np.float32)
        gt = np.asarray(Image.open(t["label"])) > 0
        x = torch.from_numpy((img - img.mean()) / img.std())[None, None]
        with torch.no_grad():
            pred = (torch.sigmoid(SlidingWindowInferer((64, 64), 4, 0.25)(x, net))[0, 0] > 0.5).numpy()
        preds[t["image"]] = pred
        assert row["dice"] == pytest.approx(_dice(pred, gt), abs=1e-4)
        inter, union = inter + (pred & gt).sum(), union + pred.sum() + gt.sum()
    assert res["metrics"]["dice"] == pytest.approx(np.mean([r["dice"] for r in res["per_case"]]), abs=1e-6)
    assert res["metrics"]["pooled_dice"] == pytest.approx(2 * inter / union, abs=1e-4)
    assert res["metrics"]["dice"] > 0.5  # lungs are large: two epochs already find them

    # inference on a folder of PNGs writes PNG masks (0/255) of each image's size, equal to the same predictions
    inp = tmp_path / "xrays"
    inp.mkdir()
    for t in test[:3]:
        (inp / Path(t["image"]).name).symlink_to(t["image"])
    proc = run_bundle(tmp_path, *common, "--input_dir", str(inp), "--prediction_ext", ".png", "--prediction_dir",
                      str(tmp_path / "pred"), config=("inference.json", "train.json"), run_id="inferring")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for t in test[:3]:
        name = Path(t["image"]).name
        out = np.asarray(Image.open(tmp_path / "pred" / name.replace(".png", "_seg.png")))
        assert out.shape == (64, 64) and set(np.unique(out).tolist()) <= {0, 255}
        np.testing.assert_array_equal(out > 0, preds[t["image"]])
        assert (tmp_path / "pred" / name.replace(".png", "_montage.png")).is_file()

    # weak labels from a file: 6 masked images, boxes on half of the rest, image-level classes on the others
    weak = simulate(lung_folder, tmp_path / "lungs_m6.json", "--num_masks", "6", "--box_fraction", "0.5")
    desc = json.loads(weak.read_text())
    assert desc["labels"] == {"0": "background", "1": "lung"}  # from labels.json
    weak_args = [*common, "--annotation_file", str(weak)]
    for config, extra in ((("train.json", "pretrain.json"), ["--samples_per_epoch", "16"]),
                          (("train.json", "train_size.json"), []),
                          (("train.json", "train_mlds.json"), [])):
        proc = run_bundle(tmp_path, *weak_args, "--max_epochs", "1", *extra, config=config)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = run_bundle(tmp_path, *weak_args, config=("evaluate.json", "train.json", "train_mlds.json", "evaluate_mlds.json"),
                      run_id="evaluating")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "output" / "mlds_lungs_m6_ds" / "eval_test" / "metrics.json").read_text())
    assert len(res["per_case"]) == len(test) and 0 <= res["metrics"]["dice"] <= 1

    runs = [r for exp in ("weakseg_hippocampus", "weakseg_hippocampus_mlds")
            for r in mlflow_runs(tmp_path / "output" / "mlruns.db", exp)[1]]
    methods = {r.data.tags["method"]: r.info.status for r in runs}
    assert methods == {m: "FINISHED" for m in ("supervised", "eval_supervised", "pretrain_lungs_m6",
                                                "size_lungs_m6_n1", "mlds_lungs_m6_ds", "eval_mlds_lungs_m6_ds")}
