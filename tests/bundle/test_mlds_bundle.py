"""train_mlds.json: multi-label deep supervision with mixed annotations and a mean teacher on real hippocampus
volumes, through the MONAI bundle."""

import torch

import pytest

from .test_size_bundle import simulate
from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses

MLDS = ("train.json", "train_mlds.json")


def test_mlds_with_mean_teacher_trains_and_saves_the_teacher(tmp_path, small_hippo):
    weak = simulate(small_hippo, tmp_path / "k2_box0.5.json", "--num_masks", "2", "--box_fraction", "0.5")
    proc = run_bundle(tmp_path, "--dataset_dir", str(small_hippo), "--download", "False", "--max_epochs", "2",
                      "--annotation_file", str(weak), "--max_val_volumes", "2",
                      "--mean_teacher", "True", "--evaluate_teacher", "True", "--teacher_alpha", "0.9", config=MLDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", "weakseg_hippocampus_mlds")
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.params["annotation_file"] == str(weak) and run.data.params["mean_teacher"] == "True"
    assert run.data.params["box_min_level"] == "1"  # the config's default
    dice = [m.value for m in client.get_metric_history(run.info.run_id, "val_mean_dice")]
    assert len(dice) == 2 and all(0 <= d <= 1 for d in dice)
    ckpt = torch.load(tmp_path / "output" / "mlds_k2_box0.5_mt" / "models" / "checkpoint_last.pt", weights_only=True)
    assert {"model", "optimizer", "teacher", "trainer"} <= set(ckpt)
    heads = [k for k in ckpt["model"] if k.startswith("heads.")]
    assert len(heads) == 4  # two decoder levels below the output: weight + bias each
    # the teacher is an EMA of the student: close to it but not equal after training
    diff = [(ckpt["teacher"][k] - ckpt["model"][k]).abs().max().item() for k in ckpt["model"] if k.endswith("weight")]
    assert max(diff) > 0


def test_mean_teacher_alpha_out_of_range_is_a_clear_error(tmp_path, small_hippo):
    weak = simulate(small_hippo, tmp_path / "weak.json", "--num_masks", "2")
    proc = run_bundle(tmp_path, "--dataset_dir", str(small_hippo), "--download", "False", "--max_epochs", "1",
                      "--annotation_file", str(weak), "--max_val_volumes", "1", "--mean_teacher", "True",
                      "--teacher_alpha", "1.5", config=MLDS)
    assert proc.returncode != 0
    assert "mean-teacher alpha must be in [0, 1), got 1.5" in proc.stderr


def test_deep_supervision_without_teacher_and_masks_only_baseline(tmp_path, small_hippo):
    weak = simulate(small_hippo, tmp_path / "k2_box0.5.json", "--num_masks", "2", "--box_fraction", "0.5")
    base = ("--dataset_dir", str(small_hippo), "--download", "False", "--max_epochs", "1", "--max_val_volumes", "1",
            "--annotation_file", str(weak))
    proc = run_bundle(tmp_path, *base, "--box_min_level", "0", config=MLDS)  # the paper's boxes (default 1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "output" / "mlds_k2_box0.5_ds" / "models" / "checkpoint_last.pt", weights_only=True)
    assert "teacher" not in ckpt
    _, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", "weakseg_hippocampus_mlds")
    assert [r.data.params["box_min_level"] for r in runs] == ["0"]
    proc = run_bundle(tmp_path, *base, "--use_weak", "False", "--level_weights", "[1.0, 0.0, 0.0]", config=MLDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "output" / "mlds_k2_box0.5_masks_only" / "models" / "model.pt").is_file()


def test_evaluate_and_infer_the_three_class_network(tmp_path, hippo_dir, small_hippo):
    import json
    import shutil

    import nibabel as nib
    import numpy as np
    import pytest

    weak = simulate(small_hippo, tmp_path / "k4_box0.5.json", "--num_masks", "4", "--box_fraction", "0.5")
    base = ("--dataset_dir", str(small_hippo), "--download", "False", "--max_epochs", "2",
            "--max_val_volumes", "2", "--annotation_file", str(weak))
    proc = run_bundle(tmp_path, *base, config=MLDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "output" / "mlds_k4_box0.5_ds" / "models" / "model.pt"

    ds = tmp_path / "ds"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "labelsTr").mkdir()
    names = [p.name for p in sorted((hippo_dir / "labelsTr").glob("*.nii.gz"))[-2:]]
    for n in names:
        shutil.copy(hippo_dir / "imagesTr" / n, ds / "imagesTr" / n)
        shutil.copy(hippo_dir / "labelsTr" / n, ds / "labelsTr" / n)
    (ds / "dataset.json").write_text(json.dumps(  # the class names say how many classes the folder has
        {"labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
         "training": [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names], "test": []}))
    proc = run_bundle(tmp_path, *base[2:], "--dataset_dir", str(ds), "--eval_split", "all", "--ckpt_path", str(ckpt),
                      config=("evaluate.json",) + MLDS + ("evaluate_mlds.json",), run_id="evaluating")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ev = tmp_path / "output" / "mlds_k4_box0.5_ds" / "eval_all"
    res = json.loads((ev / "metrics.json").read_text())
    assert [r["case"].split("/")[-1] for r in res["per_case"]] == names
    header = (ev / "dice_raw.csv").read_text().splitlines()[0].split(",")
    assert header == ["filename", "class0", "class1", "mean"]  # one column per foreground class (head, body)

    out = tmp_path / "pred"
    proc = run_bundle(tmp_path, *base[2:], "--input_dir", str(ds / "imagesTr"), "--ckpt_path", str(ckpt),
                      "--prediction_dir", str(out), config=("inference.json",) + MLDS + ("inference_mlds.json",),
                      run_id="inferring")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for r in res["per_case"]:
        n = r["case"].split("/")[-1]
        img = nib.load(ds / "imagesTr" / n)
        seg_img = nib.load(out / n.replace(".nii.gz", "_seg.nii.gz"))
        assert seg_img.shape == img.shape and np.allclose(seg_img.affine, img.affine)
        seg = np.asanyarray(seg_img.dataobj)
        gt = np.asanyarray(nib.load(ds / "labelsTr" / n).dataobj)
        assert set(np.unique(seg).tolist()) <= {0, 1, 2}
        # independent check: the 3D Dice of the written labels per class (head, body) = the evaluated values
        d = [2 * ((seg == c) & (gt == c)).sum() / ((seg == c).sum() + (gt == c).sum()) for c in (1, 2)]
        assert d == pytest.approx(r["dice"], abs=1e-5)
        assert len(d) == 2

    # TorchScript export of the method's network: the eval-mode U-Net, deep-supervision heads left out
    import subprocess
    import sys

    from monai.bundle import ConfigParser

    from weakseg.engines import load_pretrained

    from ..conftest import CONFIGS, REPO

    cfgs = [str(CONFIGS / c) for c in MLDS]
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "ckpt_export", "network_module", "--filepath",
                           str(tmp_path / "mlds.ts"), "--ckpt_file", str(ckpt), "--meta_file",
                           str(CONFIGS / "metadata.json"), "--config_file", str(cfgs)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parser = ConfigParser()
    parser.read_config(cfgs)
    net = load_pretrained(parser.get_parsed_content("network_module"), ckpt).eval()
    x = torch.randn(3, 1, 48, 32)
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "mlds.ts"))(x), net(x))


def test_num_masks_all_gives_every_case_a_mask_and_one_number_that_many(tmp_path, small_hippo):
    import json

    from weakseg.annotations import load_weak_annotations

    for n, expected in (("all", 11), ("3", 3)):
        f = simulate(small_hippo, tmp_path / f"k{n}.json", "--num_masks", n)
        ann = load_weak_annotations(f, dataset_dir=small_hippo)
        masked = [c for c in ann.cases("training") if all(r["mask"] for r in c["slices"])]
        assert len(masked) == expected and len(ann.cases("training")) == 11
        assert json.loads(f.read_text())["simulated_from"]["num_masks"] == (n if n == "all" else int(n))


def test_loss_options_reach_the_loss():
    """The defaults of ``train_mlds.json`` (boxes off the finest level, max-pooled targets) and their overrides."""
    from monai.bundle import ConfigParser

    from .test_train_bundle import CONFIGS

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / n) for n in MLDS])
    loss = parser.get_parsed_content("loss")
    assert (loss.box_min_level, loss.target_mode) == (1, "max")
    parser.update({"box_min_level": 0, "target_mode": "nearest"})
    loss = parser.get_parsed_content("loss", lazy=False)
    assert (loss.box_min_level, loss.target_mode) == (0, "nearest")
