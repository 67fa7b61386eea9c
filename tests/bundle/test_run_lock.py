"""One training per run folder: a second one is refused, naming the running process, before it touches anything."""

import json
import os
import socket
import subprocess
import sys

import pytest

from weakseg.engines import lock_run_dir, unlock_run_dir

from .test_train_bundle import run_bundle

pytestmark = pytest.mark.integration  # runs the bundle in subprocesses


def _lock(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid,
                                              "started": "2026-01-01 00:00:00"}))


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path / "live", holder.pid)
        with pytest.raises(RuntimeError, match=f"process {holder.pid} on {socket.gethostname()}"):
            lock_run_dir(tmp_path / "live")
        _lock(tmp_path / "remote", holder.pid, host="another-host")
        with pytest.raises(RuntimeError, match="another-host.*if that process is gone, delete"):
            lock_run_dir(tmp_path / "remote")
    finally:
        holder.kill()
        holder.wait()
    _lock(tmp_path / "live", holder.pid)  # the holder has exited: its lock is stale
    lock_run_dir(tmp_path / "live")
    assert json.loads((tmp_path / "live" / ".lock").read_text())["pid"] == os.getpid()
    lock_run_dir(tmp_path / "live")  # the same process may take its own lock again
    unlock_run_dir(tmp_path / "live")  # the end of a training: the folder is free while this process goes on
    assert not (tmp_path / "live" / ".lock").exists()
    _lock(tmp_path / "other", os.getppid())  # a lock this process does not hold is left alone
    unlock_run_dir(tmp_path / "other")
    assert (tmp_path / "other" / ".lock").exists()


def test_second_training_into_a_running_folder_is_refused(tmp_path, hippo_dir):
    """A training whose run folder is held by a live process stops before loading data or starting an MLflow run,
    and leaves that folder as it was."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run_dir = tmp_path / "output" / "supervised"
        _lock(run_dir, holder.pid)
        proc = run_bundle(tmp_path, "--dataset_dir", str(hippo_dir), "--download", "False", "--max_epochs", "1",
                          "--max_train_volumes", "2", "--max_val_volumes", "1")
        assert proc.returncode != 0
        assert f"another training is writing to the run folder {run_dir}: process {holder.pid}" in proc.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
        assert json.loads((run_dir / ".lock").read_text())["pid"] == holder.pid
        assert not (tmp_path / "output" / "mlruns.db").exists()
    finally:
        holder.kill()
        holder.wait()
