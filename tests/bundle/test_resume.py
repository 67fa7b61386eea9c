"""Kill a training run with SIGKILL, resume it, and finish with the configured number of epochs."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ..conftest import CONFIGS, REPO
from .test_train_bundle import mlflow_runs, run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def test_sigkill_then_resume(tmp_path, hippo_dir):
    args = ["--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "6",
            "--max_train_volumes", "6", "--max_val_volumes", "2"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(CONFIGS / "train.json"),
           "--bundle_root", str(tmp_path), *args]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = tmp_path / "output" / "supervised" / "models" / "checkpoint_last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    tr = torch.load(last, weights_only=True)["trainer"]  # ignite keeps iteration and epoch_length
    killed_at = tr["iteration"] // tr["epoch_length"]
    assert 1 <= killed_at < 6
    _, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    assert [r.info.status for r in runs] == ["RUNNING"]  # what SIGKILL leaves behind

    res = run_bundle(tmp_path, *args, "--resume", "True")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stdout + res.stderr

    state = torch.load(last, weights_only=True)
    assert state["trainer"]["iteration"] == 6 * state["trainer"]["epoch_length"]
    assert set(state) == {"model", "optimizer", "trainer", "best_metric", "rng"}

    # killed and resumed = uninterrupted, bit for bit: the random streams (batch order, flips) continue
    ref = run_bundle(tmp_path / "ref", *args)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_state = torch.load(tmp_path / "ref" / "output" / "supervised" / "models" / "checkpoint_last.pt", weights_only=True)
    assert ref_state["model"].keys() == state["model"].keys()
    for k, v in ref_state["model"].items():
        assert torch.equal(v, state["model"][k]), f"{k} differs between the resumed and the uninterrupted run"
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    by_status = {r.info.status: r for r in runs}
    assert set(by_status) == {"KILLED", "FINISHED"}
    new = by_status["FINISHED"]
    assert by_status["KILLED"].data.tags["ended_by_run"] == new.info.run_id
    assert new.data.tags["resumed"] == "True"
    steps = sorted(m.step for m in client.get_metric_history(new.info.run_id, "val_mean_dice"))
    assert steps[-1] == 6 and steps[0] > 1  # continued, not restarted
    old = sorted(m.step for m in client.get_metric_history(by_status["KILLED"].info.run_id, "val_mean_dice"))
    assert set(old) | set(steps) >= set(range(1, 7))

    # the best model survives a resume: the network of the resumable checkpoint is zeroed, so one more epoch (at a
    # learning rate too small to repair it) validates far below the best, and model.pt (the best so far, whose
    # score the checkpoint carries) stays as it was
    import hashlib

    best = state["best_metric"]
    assert len(best["saved"]) == 1 and best["best_metric"] == pytest.approx(best["saved"][0][0])
    model_pt = tmp_path / "output" / "supervised" / "models" / "model.pt"
    digest = hashlib.sha256(model_pt.read_bytes()).hexdigest()
    torch.save({**state, "model": {k: torch.zeros_like(v) for k, v in state["model"].items()}}, last)
    res = run_bundle(tmp_path, *args[:-6], "--max_epochs", "7", *args[-4:], "--resume", "True", "--learning_rate", "1e-12")
    assert res.returncode == 0, res.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    wrecked = next(r for r in runs if r.info.status == "FINISHED" and r.info.run_id != new.info.run_id)
    (last_dice,) = [m.value for m in client.get_metric_history(wrecked.info.run_id, "val_mean_dice") if m.step == 7]
    assert last_dice < best["best_metric"] - 0.05
    assert hashlib.sha256(model_pt.read_bytes()).hexdigest() == digest

    # another batch size changes the epoch length: the resume is refused, naming both lengths
    res = run_bundle(tmp_path, *args[:-6], "--max_epochs", "8", *args[-4:], "--resume", "True", "--batch_size", "8")
    assert res.returncode != 0
    assert f"written with {state['trainer']['epoch_length']} iterations per epoch and this run has" in res.stderr

    # a failed start never replaces trained weights: a resume from a corrupt checkpoint fails before its first
    # iteration (before its MLflow run starts) and leaves model_final.pt and model.pt byte for byte as they were

    models = tmp_path / "output" / "supervised" / "models"
    before = {n: hashlib.sha256((models / n).read_bytes()).hexdigest() for n in ("model_final.pt", "model.pt")}
    last.write_bytes(b"not a checkpoint")
    res = run_bundle(tmp_path, *args, "--resume", "True")
    assert res.returncode != 0
    assert "before any iteration of this run: the final checkpoint 'model_final.pt' is not written" in res.stdout + res.stderr
    assert {n: hashlib.sha256((models / n).read_bytes()).hexdigest() for n in before} == before
    _, runs = mlflow_runs(tmp_path / "output" / "mlruns.db")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED", "KILLED"]  # none RUNNING, none added
