"""train_dp.json: EDPCNN through the MONAI bundle on the real Sunnybrook slices, from an annotation file (the 10
masked training slices, the centre clicks of the validation and test slices), MLflow logging, bad input."""

import json

import pytest
import torch

from .test_size_bundle import simulate
from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses

DP_CONFIG = ("train.json", "train_dp.json")


def lv_annotations(sunnybrook_dir, out):
    """10 masked training slices (the telescopic choice), centres on every slice, split by patient 2/1/1."""
    return simulate(sunnybrook_dir, out, "--kinds", "centre", "--num_masks", "10", "--mask_unit", "slice",
                    "--split_fractions", "0.5,0.25,0.25")


@pytest.fixture(scope="module")
def lv_n10(tmp_path_factory, sunnybrook_dir):
    return lv_annotations(sunnybrook_dir, tmp_path_factory.mktemp("lv") / "lv_n10.json")


def test_edpcnn_bundle_trains_validates_and_logs(tmp_path, sunnybrook_dir, lv_n10):
    proc = run_bundle(tmp_path, "--dataset_dir", str(sunnybrook_dir), "--max_epochs", "2", "--val_interval", "1",
                      "--annotation_file", str(lv_n10), "--num_samples", "2", "--delta", "3", config=DP_CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", "weakseg_sunnybrook_lv")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert (p["num_rays"], p["num_points"], p["delta"], p["sigma"], p["num_samples"]) == ("50", "64", "3", "1.0", "2")
    for key in ("val_mean_dice", "val_assd_mm", "val_hd_mm", "train_loss"):
        hist = client.get_metric_history(run.info.run_id, key)
        assert hist and all(h.value == h.value for h in hist), key  # logged and not NaN
    dice = [h.value for h in client.get_metric_history(run.info.run_id, "val_mean_dice")]
    assert len(dice) == 2 and all(0.0 <= d <= 1.0 for d in dice)
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"val_overlays_best.png", "learning_curves.png", "model.pt"} <= arts
    models = tmp_path / "output" / "edpcnn_lv_n10" / "models"
    last = torch.load(models / "checkpoint_last.pt", weights_only=True)
    assert {"model", "optimizer", "approximator", "approximator_optimizer", "trainer"} <= set(last)
    assert last["trainer"]["iteration"] == 2 and last["trainer"]["max_epochs"] == 2


def test_pattern_radius_too_large_is_a_clear_error(tmp_path, sunnybrook_dir, lv_n10):
    proc = run_bundle(tmp_path, "--dataset_dir", str(sunnybrook_dir), "--max_epochs", "1", "--annotation_file", str(lv_n10),
                      "--num_samples", "1", "--radius", "100", config=DP_CONFIG)
    assert proc.returncode != 0
    assert "star pattern radius 100 px does not fit a 160x160 image" in proc.stderr
    _, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", "weakseg_sunnybrook_lv")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_evaluate_dp_on_the_test_patient_and_infer_nifti_volumes(tmp_path, sunnybrook_dir, lv_n10):
    args = ("--dataset_dir", str(sunnybrook_dir), "--max_epochs", "1", "--val_interval", "1",
            "--annotation_file", str(lv_n10), "--num_samples", "1")
    proc = run_bundle(tmp_path, *args, config=DP_CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_bundle(tmp_path, *args, "--ckpt_path", str(tmp_path / "output" / "edpcnn_lv_n10" / "models" / "model_final.pt"),
                      config=("evaluate.json",) + DP_CONFIG + ("evaluate_dp.json",), run_id="evaluating")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from weakseg.data import load_sunnybrook_datalist, split_by_patient

    test_ids = [it["id"] for it in split_by_patient(load_sunnybrook_datalist(sunnybrook_dir), (0.5, 0.25, 0.25), 0)["test"]]
    eval_dir = tmp_path / "output" / "edpcnn_lv_n10" / "eval_test"
    summary = json.loads((eval_dir / "metrics.json").read_text())
    assert {"dice", "assd_mm", "hd_mm"} <= set(summary["metrics"])
    rows = (eval_dir / "dice_raw.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == test_ids  # one row per slice of the held-out test patient

    # the EDPCNN paper's U-Net baseline on the same slices (BCE; the thresholded component that holds the click)
    unet = DP_CONFIG + ("train_dp_unet.json",)
    proc = run_bundle(tmp_path, *args, config=unet)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = run_bundle(tmp_path, *args, config=("evaluate.json",) + unet + ("evaluate_dp.json",), run_id="evaluating")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", "weakseg_sunnybrook_lv")
    by_method = {r.data.tags["method"]: r for r in runs}
    assert {m: r.info.status for m, r in by_method.items()} == {
        m: "FINISHED" for m in ("edpcnn_lv_n10", "edpcnn_unet_lv_n10", "eval_edpcnn_lv_n10", "eval_edpcnn_unet_lv_n10")}
    assert by_method["edpcnn_unet_lv_n10"].data.params["learning_rate"] == "0.0001"  # the paper's U-Net rate
    for method in ("edpcnn_lv_n10", "edpcnn_unet_lv_n10"):
        res = json.loads((tmp_path / "output" / method / "eval_test" / "metrics.json").read_text())
        assert [r["case"] for r in res["per_case"]] == test_ids and 0 <= res["metrics"]["dice"] <= 1
        assert by_method["eval_" + method].data.metrics["test_dice"] == pytest.approx(res["metrics"]["dice"])
    last = torch.load(tmp_path / "output" / "edpcnn_unet_lv_n10" / "models" / "checkpoint_last.pt", weights_only=True)
    assert "approximator" not in last  # the baseline has no DP approximator

    # the clicks come from the file: a test slice without one is refused, naming it
    desc = json.loads(lv_n10.read_text())
    del desc["test"][3]["centre"]
    bad = tmp_path / "lv_n10.json"
    bad.write_text(json.dumps(desc))
    proc = run_bundle(tmp_path, *args[:-4], "--annotation_file", str(bad),
                      config=("evaluate.json",) + DP_CONFIG + ("evaluate_dp.json",), run_id="evaluating")
    assert proc.returncode != 0
    assert f"case '{desc['test'][3]['id']}' has no 'centre' in the annotation file" in proc.stderr

    # inference_dp.json: NIfTI volumes (slices on the last axis) + a centres JSON -> label volumes
    import nibabel as nib
    import numpy as np

    from weakseg.data import LoadLVSliced
    from weakseg.kernels.polygon import mask_centroid

    test_items = split_by_patient(load_sunnybrook_datalist(sunnybrook_dir), (0.5, 0.25, 0.25), 0)["test"][:5]
    loaded = [LoadLVSliced()(it) for it in test_items]
    vol = np.stack([d["image"][0].numpy() for d in loaded], -1).astype(np.int16)
    aff = np.array([[-1.37, 0, 0, 10.0], [0, -1.37, 0, -5.0], [0, 0, 8.0, 2.0], [0, 0, 0, 1]])
    in_dir = tmp_path / "volumes"
    in_dir.mkdir()
    nib.save(nib.Nifti1Image(vol, aff), in_dir / "lv_a.nii.gz")
    nib.save(nib.Nifti1Image(vol[:200, :, :2], aff), in_dir / "lv_b.nii.gz")
    cen = [mask_centroid(d["label"][None])[0].tolist() for d in loaded]
    centres = {"lv_a.nii.gz": [[k, cen[k][0], cen[k][1]] for k in (0, 2, 3)], "lv_b.nii.gz": []}
    (in_dir / "centres.json").write_text(json.dumps(centres))
    pred_dir = tmp_path / "pred"
    proc = run_bundle(tmp_path, *args, "--ckpt_path", str(tmp_path / "output" / "edpcnn_lv_n10" / "models" / "model_final.pt"),
                      "--input_dir", str(in_dir), "--prediction_dir", str(pred_dir),
                      config=("inference.json",) + DP_CONFIG + ("inference_dp.json",), run_id="inferring")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, src in (("lv_a", vol), ("lv_b", vol[:200, :, :2])):
        out = nib.load(pred_dir / f"{name}_seg.nii.gz")
        assert out.shape == src.shape and np.allclose(out.affine, aff)
        seg = np.asarray(out.dataobj)
        assert set(np.unique(seg)) <= {0, 1}
        with_centre = [c[0] for c in centres[f"{name}.nii.gz"]]
        for k in range(src.shape[-1]):
            if k in with_centre:  # a closed contour around the centre: the centre pixel is inside, in place
                r, c = (int(round(v)) for v in cen[k])
                assert seg[r, c, k] == 1 and seg[..., k].sum() > 1
            else:
                assert not seg[..., k].any()
        assert (pred_dir / f"{name}_montage.png").is_file()
    (in_dir / "centres.json").write_text(json.dumps({"lv_a.nii.gz": [[9, 10, 10]], "lv_b.nii.gz": []}))
    proc = run_bundle(tmp_path, *args, "--ckpt_path", str(tmp_path / "output" / "edpcnn_lv_n10" / "models" / "model_final.pt"),
                      "--input_dir", str(in_dir), "--prediction_dir", str(tmp_path / "pred2"),
                      config=("inference.json",) + DP_CONFIG + ("inference_dp.json",), run_id="inferring")
    assert proc.returncode != 0
    assert "lv_a.nii.gz: centre (slice 9, row 10, col 10) is outside the volume" in proc.stderr

