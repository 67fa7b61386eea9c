"""train_mlds.json: multi-label deep supervision with mixed annotations and a mean teacher on real hippocampus
volumes, through the MONAI bundle."""

import torch

from .test_train_bundle import mlflow_runs, run_bundle

MLDS = ("train.json", "train_mlds.json")


def test_mlds_with_mean_teacher_trains_and_saves_the_teacher(tmp_path, hippo_dir):
    proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "2",
                      "--max_train_volumes", "8", "--max_val_volumes", "2", "--num_masks", "2", "--box_fraction", "0.5",
                      "--mean_teacher", "True", "--evaluate_teacher", "True", "--teacher_alpha", "0.9", config=MLDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", "weakseg_hippocampus_mlds")
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.params["num_masks"] == "2" and run.data.params["mean_teacher"] == "True"
    dice = [m.value for m in client.get_metric_history(run.info.run_id, "val_mean_dice")]
    assert len(dice) == 2 and all(0 <= d <= 1 for d in dice)
    ckpt = torch.load(tmp_path / "output" / "mlds_k2_box0.5_mt" / "models" / "checkpoint_last.pt", weights_only=True)
    assert {"model", "optimizer", "teacher", "trainer"} <= set(ckpt)
    heads = [k for k in ckpt["model"] if k.startswith("heads.")]
    assert len(heads) == 4  # two decoder levels below the output: weight + bias each
    # the teacher is an EMA of the student: close to it but not equal after training
    diff = [(ckpt["teacher"][k] - ckpt["model"][k]).abs().max().item() for k in ckpt["model"] if k.endswith("weight")]
    assert max(diff) > 0


def test_mean_teacher_alpha_out_of_range_is_a_clear_error(tmp_path, hippo_dir):
    proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "1",
                      "--max_train_volumes", "2", "--max_val_volumes", "1", "--mean_teacher", "True",
                      "--teacher_alpha", "1.5", config=MLDS)
    assert proc.returncode != 0
    assert "mean-teacher alpha must be in [0, 1), got 1.5" in proc.stderr


def test_deep_supervision_without_teacher_and_masks_only_baseline(tmp_path, hippo_dir):
    base = ("--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "1", "--max_train_volumes", "6",
            "--max_val_volumes", "1", "--num_masks", "2")
    proc = run_bundle(tmp_path, *base, config=MLDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "output" / "mlds_k2_box0.5_ds" / "models" / "checkpoint_last.pt", weights_only=True)
    assert "teacher" not in ckpt
    proc = run_bundle(tmp_path, *base, "--use_weak", "False", "--level_weights", "[1.0, 0.0, 0.0]", config=MLDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "output" / "mlds_k2_box0.5_masks_only" / "models" / "model.pt").is_file()
