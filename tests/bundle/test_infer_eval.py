"""inference.json (NIfTI in -> NIfTI out) and evaluate.json (per-case metrics, CSV/JSON, MLflow) on real volumes."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def test_inference_writes_aligned_label_volumes(tmp_path, hippo_dir, trained):
    inp = tmp_path / "in"
    inp.mkdir()
    srcs = sorted((hippo_dir / "imagesTs").glob("*.nii.gz"))[:2]
    for f in srcs:
        shutil.copy(f, inp / f.name)
    out = tmp_path / "pred"
    proc = run_bundle(tmp_path, "--input_dir", str(inp), "--ckpt_path", str(trained), "--prediction_dir", str(out),
                      config=("inference.json", "train.json"), run_id="inferring")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for f in srcs:
        img = nib.load(f)
        seg = nib.load(out / f.name.replace(".nii.gz", "_seg.nii.gz"))
        assert seg.shape == img.shape
        np.testing.assert_allclose(seg.affine, img.affine)
        vals = np.unique(np.asanyarray(seg.dataobj))
        assert set(vals.tolist()) <= {0, 1} and 1 in vals
        assert (out / f.name.replace(".nii.gz", "_montage.png")).read_bytes()[:4] == b"\x89PNG"


def test_inference_empty_input_dir_is_a_clear_error(tmp_path, trained):
    (tmp_path / "empty").mkdir()
    proc = run_bundle(tmp_path, "--input_dir", str(tmp_path / "empty"), "--ckpt_path", str(trained),
                      config=("inference.json", "train.json"), run_id="inferring")
    assert proc.returncode != 0 and "no .nii/.nii.gz volumes or 2D images" in proc.stderr


def test_evaluate_all_cases_of_a_folder(tmp_path, hippo_dir, trained):
    ds = tmp_path / "ds"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "labelsTr").mkdir()
    names = [p.name for p in sorted((hippo_dir / "labelsTr").glob("*.nii.gz"))[:3]]
    for n in names:
        shutil.copy(hippo_dir / "imagesTr" / n, ds / "imagesTr" / n)
        shutil.copy(hippo_dir / "labelsTr" / n, ds / "labelsTr" / n)
    (ds / "dataset.json").write_text(json.dumps(
        {"training": [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names], "test": []}))
    proc = run_bundle(tmp_path, "--dataset_dir", str(ds), "--download", "False", "--eval_split", "all",
                      "--ckpt_path", str(trained), config=("evaluate.json", "train.json"), run_id="evaluating")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ev = tmp_path / "output" / "supervised" / "eval_all"
    res = json.loads((ev / "metrics.json").read_text())
    assert [r["case"].split("/")[-1] for r in res["per_case"]] == names
    assert (ev / "dice_raw.csv").exists() and (ev / "metrics.csv").exists()
    dice = [r["dice"] for r in res["per_case"]]
    assert res["metrics"]["dice"] == pytest.approx(np.mean(dice), abs=1e-6)

    # independent check: the inference config's NIfTI outputs give the same per-case 3D Dice
    out = tmp_path / "pred"
    proc = run_bundle(tmp_path, "--input_dir", str(ds / "imagesTr"), "--ckpt_path", str(trained),
                      "--prediction_dir", str(out), "--png_montage", "False",
                      config=("inference.json", "train.json"), run_id="inferring")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for n, d in zip(names, dice):
        p = np.asanyarray(nib.load(out / n.replace(".nii.gz", "_seg.nii.gz")).dataobj) > 0
        g = np.asanyarray(nib.load(ds / "labelsTr" / n).dataobj) > 0
        assert 2 * (p & g).sum() / (p.sum() + g.sum()) == pytest.approx(d, abs=1e-5)

    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    run = [r for r in runs if r.data.tags.get("method") == "eval_supervised"][0]
    assert run.info.status == "FINISHED" and run.data.params["eval_split"] == "all"
    assert run.data.metrics["all_dice"] == pytest.approx(res["metrics"]["dice"])
    # the split names the MLflow metrics; HD95 of NIfTI labels (1 mm voxels) is in mm
    assert "hd95_mm" in res["metrics"] and "all_hd95_mm" in run.data.metrics and "dice" not in run.data.metrics
    assert "metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_evaluate_on_top_of_the_size_config(tmp_path, hippo_dir, trained):
    """A weak method's model is scored on the split of its annotation file, in the run folder named after it."""
    from .test_size_bundle import simulate

    weak = simulate(hippo_dir, tmp_path / "m64_s0.json", "--kinds", "size", "--num_masks", "64", "--mask_unit", "slice")
    proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--eval_split", "val",
                      "--annotation_file", str(weak), "--ckpt_path", str(trained),
                      config=("evaluate.json", "train.json", "train_size.json"),
                      run_id="evaluating")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "output" / "size_m64_s0_n1" / "eval_val" / "metrics.json").read_text())
    assert len(res["per_case"]) == 21 and 0 <= res["metrics"]["dice"] <= 1


def test_onnx_export_matches_pytorch(tmp_path, trained):
    """MONAI's onnx_export of the trained bundle network; onnxruntime gives PyTorch's logits, any batch size."""
    import subprocess
    import sys

    import torch
    from monai.bundle import ConfigParser

    from ..conftest import CONFIGS, REPO

    ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install -e '.[onnx]'")
    out = tmp_path / "model.onnx"
    e = subprocess.run([sys.executable, "-m", "monai.bundle", "onnx_export", "network_def", "--filepath", str(out),
                        "--ckpt_file", str(trained), "--meta_file", str(CONFIGS / "metadata.json"),
                        "--config_file", str(CONFIGS / "train.json"), "--input_shape", "[1, 1, 48, 32]",
                        "--converter_kwargs", "{'dynamic_axes': {'x': {0: 'batch'}}, 'input_names': ['x']}"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert e.returncode == 0, e.stdout[-2000:] + e.stderr[-2000:]
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(trained, weights_only=True))
    net.eval()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 48, 32)
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, net(x).numpy(), atol=1e-4, rtol=1e-4)
