"""multi_gpu_train.json under torchrun: 2 processes on CPU (gloo), DistributedSampler, MLflow only on rank 0."""

import math
import os
import re
import subprocess
import sys

import pytest
from monai.bundle import ConfigParser

from ..conftest import CONFIGS, REPO
from .test_train_bundle import mlflow_runs

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def _torchrun(root, configs, port, *args) -> dict[int, int]:
    """Run ``training`` with 2 gloo processes; returns the optimisation steps each rank reports."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(port),
           "-m", "monai.bundle", "run", "training",
           "--config_file", "[" + ",".join(f"'{CONFIGS / c}'" for c in configs) + "]",
           "--bundle_root", str(root), *args]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    finished = [line for line in proc.stdout.splitlines() if "finished:" in line]
    assert proc.returncode == 0, "\n".join(finished) + "\n" + proc.stdout[-1500:] + "\n" + proc.stderr[-3000:]
    return {int(r): int(s) for r, s in re.findall(r"rank (\d) finished: (\d+) optimisation steps", proc.stdout)}


def test_torchrun_two_processes(tmp_path, hippo_dir):
    epochs, vols = 2, 8
    steps = _torchrun(tmp_path, ("train.json", "multi_gpu_train.json"), 29533, "--dataset_dir", str(hippo_dir),
                      "--download", "False", "--max_epochs", str(epochs), "--max_train_volumes", str(vols),
                      "--max_val_volumes", "2")

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(hippo_dir), "download": False, "max_train_volumes": vols})
    n = len(parser.get_parsed_content("train#slices"))
    per_rank = math.ceil(n / 2)  # DistributedSampler(even_divisible=True)
    expected = epochs * math.ceil(per_rank / 64)
    assert steps == {0: expected, 1: expected}

    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "train_loss")) == expected
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "val_mean_dice")) == [1, 2]


def test_torchrun_edpcnn(tmp_path, sunnybrook_dir):
    """train_dp.json under torchrun: the DDP network and the synchronised approximator, one MLflow run."""
    import torch

    from .test_dp_bundle import lv_annotations

    weak = lv_annotations(sunnybrook_dir, tmp_path / "lv_n10.json")
    steps = _torchrun(tmp_path, ("train.json", "train_dp.json", "multi_gpu_train.json"), 29534,
                      "--dataset_dir", str(sunnybrook_dir), "--max_epochs", "2", "--val_interval", "1",
                      "--annotation_file", str(weak), "--num_samples", "2")
    assert steps == {0: 2, 1: 2}  # 10 slices, 5 per rank, batch 10: one step per epoch
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db", "weakseg_sunnybrook_lv")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "val_mean_dice")) == 2
    last = torch.load(tmp_path / "output" / "edpcnn_lv_n10" / "models" / "checkpoint_last.pt", weights_only=True)
    assert {"model", "approximator", "approximator_optimizer"} <= set(last)
    final = torch.load(tmp_path / "output" / "edpcnn_lv_n10" / "models" / "model_final.pt", weights_only=True)
    for ckpt in (last, final):  # loadable into the plain network
        assert not any(k.startswith("module.") for k in ckpt["model"])


def test_torchrun_keeps_the_method_network_and_its_handlers(tmp_path, small_hippo):
    """Deep supervision + mean teacher, and the size stage with early stopping, under torchrun."""
    import torch

    from .test_size_bundle import simulate

    weak = simulate(small_hippo, tmp_path / "k2_box0.5.json", "--num_masks", "2", "--box_fraction", "0.5")
    data = ("--dataset_dir", str(small_hippo), "--download", "False", "--max_val_volumes", "2",
            "--annotation_file", str(weak))
    steps = _torchrun(tmp_path / "mlds", ("train.json", "train_mlds.json", "multi_gpu_train.json"), 29535, *data,
                      "--max_epochs", "2", "--mean_teacher", "True", "--iterations_per_epoch", "2")
    assert steps == {0: 4, 1: 4}
    ckpt = torch.load(tmp_path / "mlds" / "output" / "mlds_k2_box0.5_mt" / "models" / "checkpoint_last.pt",
                      weights_only=True)
    assert any(k.startswith("heads.") for k in ckpt["model"])  # the deep-supervision heads were trained
    assert set(ckpt["teacher"]) == set(ckpt["model"])

    # size stage: pre-trained weights loaded into the DDP network, early stopping decided on every rank alike
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "train_size.json")])
    pre = tmp_path / "pre.pt"
    torch.save({"model": parser.get_parsed_content("network_def").state_dict()}, pre)
    steps = _torchrun(tmp_path / "size", ("train.json", "train_size.json", "multi_gpu_train.json"), 29536, *data,
                      "--pretrained_ckpt", str(pre), "--max_epochs", "30", "--early_stop_patience", "1")
    parser.update({"dataset_dir": str(small_hippo), "download": False, "annotation_file": str(weak)})
    per_epoch = math.ceil(math.ceil(len(parser.get_parsed_content("train#slices")) / 2) / 64)
    assert steps[0] == steps[1] and 0 < steps[0] < 30 * per_epoch  # stopped early, both ranks together
