"""The thesis configs run end to end on real data: network/loss/schedule picked by overrides, α and the thesis
metrics (BA, AUC, AP, Dice, IoU, MAHD) logged to MLflow per epoch."""

import json
import math

import numpy as np
import pytest

from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def test_hippocampus_combined_loss_with_linear_schedule(tmp_path, hippo_dir):
    common = ("--dataset_dir", str(hippo_dir), "--download", "False", "--network_name", "res_attention_unet",
              "--network_def#channels", "[8, 16, 32, 64]", "--loss_name", "bce", "--loss2_name", "boundary",
              "--alpha_schedule", "linear", "--alpha", "0.25")
    proc = run_bundle(tmp_path, *common, "--max_epochs", "3", "--max_train_volumes", "4", "--max_val_volumes", "2",
                      config=("train.json", "train_thesis.json"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.tags["method"] == "thesis_res_attention_unet_bce+boundary_convex_linear"
    p = run.data.params
    assert p["network_name"] == "res_attention_unet" and p["alpha_schedule"] == "linear" and p["alpha"] == "0.25"
    alpha = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss_alpha")}
    assert alpha == {1: 0.0, 2: 0.25, 3: 0.5}  # α(k) = k·α₀, k = completed epochs
    for key in ("val_mean_dice", "val_mean_iou", "val_ba", "val_auc", "val_ap"):
        hist = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in hist) == [1, 2, 3], key
        assert all(0.0 <= m.value <= 1.0 for m in hist), key
    mahd = client.get_metric_history(run.info.run_id, "val_mahd")
    assert len(mahd) == 3 and all(m.value >= 0 or math.isnan(m.value) for m in mahd)

    # the evaluate override works on top of the thesis config (same network definition, its best checkpoint)
    proc = run_bundle(tmp_path, *common, "--eval_split", "val", config=("evaluate.json", "train.json", "train_thesis.json"),
                      run_id="evaluating")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "output" / run.data.tags["method"] / "eval_val" / "metrics.json").read_text())
    assert len(res["per_case"]) == 21 and 0 <= res["metrics"]["dice"] <= 1


def test_covid_attention_unet_lovasz(tmp_path, covid_dir):
    proc = run_bundle(
        tmp_path, "--dataset_dir", str(covid_dir.parent), "--max_epochs", "1", "--network_name", "attention_unet",
        "--network_def#channels", "[8, 16, 32, 64]", "--loss_name", "lovasz", "--max_train_volumes", "12",
        "--max_val_volumes", "4", "--pick_size", "[64, 64]", "--spatial_size", "[128, 128]",
        config=("train.json", "train_thesis.json", "train_covid.json"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", experiment="weakseg_covid_qu_ex")
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.tags["data"] == "real"
    assert run.data.params["covid_mask"] == "infection" and run.data.params["loss_name"] == "lovasz"
    for key in ("val_mean_dice", "val_auc", "val_ap", "val_ba"):
        (m,) = client.get_metric_history(run.info.run_id, key)
        assert 0.0 <= m.value <= 1.0, key
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"val_overlays_best.png", "learning_curves.png", "model.pt"} <= arts

    # evaluating on the COVID test split: per-image and pooled Dice/IoU, read back from metrics.json and MLflow
    proc = run_bundle(
        tmp_path, "--dataset_dir", str(covid_dir.parent), "--network_name", "attention_unet",
        "--network_def#channels", "[8, 16, 32, 64]", "--loss_name", "lovasz", "--spatial_size", "[128, 128]",
        config=("evaluate.json", "train.json", "train_thesis.json", "train_covid.json"), run_id="evaluating")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from weakseg.data import load_covid_qu_ex_datalist, stratified_split

    test = stratified_split(load_covid_qu_ex_datalist(covid_dir.parent, positives_only=True), (0.6, 0.2, 0.2), 0)
    res = json.loads((tmp_path / "output" / run.data.tags["method"] / "eval_test" / "metrics.json").read_text())
    assert [r["case"] for r in res["per_case"]] == [t["image"] for t in test["test"]]  # 20 of the 100 positives
    assert all(0 <= r["dice"] <= 1 and 0 <= r["iou"] <= r["dice"] for r in res["per_case"])
    assert res["metrics"]["dice"] == pytest.approx(np.mean([r["dice"] for r in res["per_case"]]), abs=1e-6)
    assert 0 <= res["metrics"]["pooled_iou"] <= res["metrics"]["pooled_dice"] <= 1
    _, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", experiment="weakseg_covid_qu_ex")
    ev = next(r for r in runs if r.data.tags["method"].startswith("eval_"))
    assert ev.info.status == "FINISHED" and ev.data.metrics["test_dice"] == pytest.approx(res["metrics"]["dice"])
    assert "hd95_px" in res["metrics"] and "test_hd95_px" in ev.data.metrics  # PNG labels hold no spacing


def test_unknown_names_fail_clearly(tmp_path, hippo_dir):
    proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_train_volumes", "2",
                      "--max_val_volumes", "1", "--alpha_schedule", "cosine", "--loss2_name", "boundary",
                      config=("train.json", "train_thesis.json"))
    assert proc.returncode != 0 and "unknown alpha schedule 'cosine'" in proc.stderr
