"""Bad input through the bundle commands: each gives a clear error naming the file or key, leaves no partial
output and no RUNNING MLflow run; the same seed gives the same metrics twice."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from ..conftest import CONFIGS
from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def make_msd(root, hippo_dir, n=3, edit=None):
    """
    A small MSD folder with ``n`` real cases; ``edit(name, image_path, label_path)`` corrupts the case that the
    default split (seed 0, fractions 1/3 each) puts in the training set. Returns the folder and that case first.
    """
    from weakseg.data import load_msd_datalist, split_by_volume

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    names = [p.name for p in sorted((hippo_dir / "labelsTr").glob("*.nii.gz"))[:n]]
    for n_ in names:
        shutil.copy(hippo_dir / "imagesTr" / n_, root / "imagesTr" / n_)
        shutil.copy(hippo_dir / "labelsTr" / n_, root / "labelsTr" / n_)
    (root / "dataset.json").write_text(json.dumps(
        {"training": [{"image": f"./imagesTr/{x}", "label": f"./labelsTr/{x}"} for x in names], "test": []}))
    train = split_by_volume(load_msd_datalist(root), (1, 1, 1), seed=0)["train"][0]["image"].split("/")[-1]
    names.remove(train)
    names.insert(0, train)
    if edit:
        edit(train, root / "imagesTr" / train, root / "labelsTr" / train)
    return root, names


def rewrite(path, fn):
    img = nib.load(path)
    data = fn(np.asanyarray(img.dataobj).astype(np.float32))
    nib.save(nib.Nifti1Image(data, img.affine), str(path))


def truncate(name, img, lab):
    raw = img.read_bytes()
    img.write_bytes(raw[: len(raw) // 2])


def empty_file(name, img, lab):
    img.write_bytes(b"")


def nan_intensity(name, img, lab):
    rewrite(img, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a))


def inf_intensity(name, img, lab):
    rewrite(img, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.inf, a))


def shape_mismatch(name, img, lab):
    rewrite(img, lambda a: a[:, :-3])


def two_channels(name, img, lab):
    rewrite(img, lambda a: np.stack([a, a], -1))


@pytest.mark.parametrize("edit, pattern", [
    (truncate, "imagesTr/{name}"),
    (empty_file, "imagesTr/{name}"),
    (nan_intensity, "imagesTr/{name}.*NaN or Inf"),
    (inf_intensity, "imagesTr/{name}.*NaN or Inf"),
    (shape_mismatch, "imagesTr/{name}.*same shape"),
    (two_channels, "imagesTr/{name}.*2 channel.*network expects 1"),
])
def test_training_rejects_bad_volume_before_training(tmp_path, hippo_dir, edit, pattern):
    ds, names = make_msd(tmp_path / "ds", hippo_dir, edit=edit)
    proc = run_bundle(tmp_path, "--dataset_dir", str(ds), "--download", "False", "--max_epochs", "1",
                      "--split_fractions", "[1, 1, 1]")
    assert proc.returncode != 0
    import re
    assert re.search(pattern.format(name=re.escape(names[0])), proc.stderr), proc.stderr[-2000:]
    assert "Epoch[" not in proc.stdout + proc.stderr  # failed while preparing data
    assert not list((tmp_path / "output").rglob("model*.pt"))
    db = tmp_path / "output" / "mlruns.db"
    if db.exists():
        _, runs = mlflow_runs(db)
        assert all(r.info.status != "RUNNING" for r in runs)


def test_all_background_volumes(tmp_path, hippo_dir):
    def blank(name, img, lab):
        rewrite(lab, np.zeros_like)

    ds, names = make_msd(tmp_path / "ds", hippo_dir, n=1, edit=blank)
    proc = run_bundle(tmp_path, "--dataset_dir", str(ds), "--download", "False", "--max_epochs", "1",
                      "--split_fractions", "[1, 0, 0]")
    assert proc.returncode != 0
    assert "none of the 1 volumes gives a slice with enough foreground" in proc.stderr


def test_inference_corrupt_input_no_partial_output(tmp_path, hippo_dir, trained):
    """A truncated volume in the middle of a folder: the inputs before and after it are predicted, the bad one is
    reported (file, reason) in failed_inputs.json, and the run exits non-zero naming it."""
    inp = tmp_path / "in"
    inp.mkdir()
    good, good2 = sorted((hippo_dir / "imagesTs").glob("*.nii.gz"))[:2]
    shutil.copy(good, inp / "a_good.nii.gz")
    shutil.copy(good2, inp / "c_good.nii.gz")
    raw = good.read_bytes()
    (inp / "b_truncated.nii.gz").write_bytes(raw[: len(raw) // 3])
    out = tmp_path / "pred"
    proc = run_bundle(tmp_path, "--input_dir", str(inp), "--ckpt_path", str(trained), "--prediction_dir", str(out),
                      config=("inference.json", "train.json"), run_id="inferring")
    assert proc.returncode != 0 and "1 of 3 inputs could not be processed" in proc.stderr
    assert "b_truncated.nii.gz" in proc.stderr
    for name in ("a_good", "c_good"):
        nib.load(out / f"{name}_seg.nii.gz").get_fdata()  # complete and readable
    assert not list(out.glob("b_truncated*"))
    report = json.loads((out / "failed_inputs.json").read_text())
    assert len(report) == 1 and report[0]["file"].endswith("b_truncated.nii.gz") and report[0]["reason"]


def test_checkpoint_of_another_network(tmp_path, hippo_dir):
    from monai.networks.nets import UNet

    bad = tmp_path / "other.pt"
    torch.save(UNet(2, 1, 1, channels=(8, 16), strides=(2,)).state_dict(), bad)
    for cfg, run_id, extra in ((("inference.json", "train.json"), "inferring", ["--input_dir", str(hippo_dir / "imagesTs")]),
                               (("evaluate.json", "train.json"), "evaluating", ["--dataset_dir", str(hippo_dir),
                                                                               "--download", "False"])):
        proc = run_bundle(tmp_path, "--ckpt_path", str(bad), *extra, config=cfg, run_id=run_id)
        assert proc.returncode != 0 and "other.pt' does not match the network UNet" in proc.stderr, run_id


def test_unwritable_output_directory(tmp_path, hippo_dir, trained):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file")
    proc = run_bundle(tmp_path, "--input_dir", str(hippo_dir / "imagesTs"), "--ckpt_path", str(trained),
                      "--prediction_dir", str(blocker / "pred"), config=("inference.json", "train.json"),
                      run_id="inferring")
    assert proc.returncode != 0 and f"prediction_dir '{blocker / 'pred'}' is not writable" in proc.stderr


def test_missing_config_key(tmp_path):
    cfg = json.loads((CONFIGS / "train.json").read_text())
    del cfg["learning_rate"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(cfg))
    import subprocess
    import sys

    from ..conftest import REPO

    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(path),
                           "--bundle_root", str(tmp_path), "--dataset_dir", str(tmp_path / "none"), "--download",
                           "False"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "`@learning_rate` is not defined in the config" in proc.stderr


def test_same_seed_same_metrics(tmp_path, hippo_dir):
    vals = []
    for k in range(2):
        root = tmp_path / f"r{k}"
        proc = run_bundle(root, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "2",
                          "--max_train_volumes", "5", "--max_val_volumes", "2", "--seed", "3")
        assert proc.returncode == 0, proc.stderr[-2000:]
        client, runs = mlflow_runs(root / "output" / "mlruns.db")
        rid = runs[0].info.run_id
        vals.append([(m.step, m.value) for key in ("train_loss", "val_mean_dice", "val_mean_iou")
                     for m in sorted(client.get_metric_history(rid, key), key=lambda m: (m.step, m.timestamp))])
    assert vals[0] == vals[1]
