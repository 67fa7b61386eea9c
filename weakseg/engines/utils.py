"""Small engine helpers: batch preparation by key and checked checkpoint loading."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.utils import CommonKeys

from weakseg.networks.utils import unwrap_parallel

__all__ = [
    "PrepareBatchKeys",
    "distributed_device",
    "ensure_writable_dir",
    "load_pretrained",
    "lock_run_dir",
    "unlock_run_dir",
    "require_checkpoint",
    "unwrap_parallel",
]


class PrepareBatchKeys(PrepareBatch):
    """
    ``prepare_batch`` for MONAI's ``SupervisedTrainer``/``SupervisedEvaluator`` that takes the input from
    ``image_key`` and the target from ``label_key`` (e.g. ``"size"`` for size supervision). A list of label keys
    gives a tuple of targets (e.g. ``["size", "label", "annotated"]`` for
    :py:class:`weakseg.losses.SizeAndMaskLoss`). A batch without a key raises ``KeyError`` naming the key and the
    keys present.
    """

    def __init__(self, image_key: str = CommonKeys.IMAGE, label_key: str | Sequence[str] = CommonKeys.LABEL) -> None:
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, batchdata: Mapping[str, Any], device=None, non_blocking: bool = False, **kwargs: Any):
        many = not isinstance(self.label_key, str)
        label_keys = list(self.label_key) if many else [self.label_key]
        for k in [self.image_key, *label_keys]:
            if k not in batchdata:
                raise KeyError(f"batch has no '{k}' (keys: {sorted(batchdata)}); every item needs '{k}'.")

        def to(k):
            return torch.as_tensor(batchdata[k]).to(device=device, non_blocking=non_blocking, **kwargs)

        targets = tuple(to(k) for k in label_keys)
        return to(self.image_key), (targets if many else targets[0])


def _require_file(path: str | os.PathLike | None) -> None:
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint '{path}' does not exist: train a model first (it leaves the best weights "
                                "at <bundle_root>/models/model.pt and in its run folder) or pass --ckpt_path.")


def _checked_state_dict(network: torch.nn.Module, path: str | os.PathLike, key: str | None = None) -> dict:
    _require_file(path)
    network = unwrap_parallel(network)  # checkpoints hold the plain network
    device = next(network.parameters()).device
    sd = torch.load(path, map_location=device, weights_only=True)
    if key is not None or ("model" in sd and isinstance(sd["model"], Mapping)):
        sd = sd[key or "model"]
    own = network.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [f"{k}: {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or shape:
        raise ValueError(
            f"checkpoint '{path}' does not match the network {type(network).__name__}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(shape)} with other shapes (e.g. {shape[:3]})."
        )
    return sd


def load_pretrained(network: torch.nn.Module, path: str | os.PathLike, key: str | None = None) -> torch.nn.Module:
    """
    Load weights saved by ``CheckpointSaver`` (a state dict, or a dict holding one under ``key``/"model") into
    ``network`` with ``torch.load(..., weights_only=True)``. A missing file or a checkpoint of another network
    raises an error naming the file and the mismatching parameters. A (Distributed)DataParallel ``network`` is
    loaded through its module. Returns ``network``.
    """
    unwrap_parallel(network).load_state_dict(_checked_state_dict(network, path, key))
    return network


def require_checkpoint(path: str | os.PathLike, network: torch.nn.Module | None = None) -> str:
    """Before a workflow starts: ``path`` must be a checkpoint file (and, with ``network``, one of that network),
    else an error that names the file and says to train first or pass ``--ckpt_path``. Returns ``path``; the
    workflow's ``CheckpointLoader`` then loads it."""
    if network is None:
        _require_file(path)
    else:
        _checked_state_dict(network, path)
    return str(path)


def distributed_device(backend: str | None = None) -> torch.device:
    """This process's device under ``torchrun``: joins the default process group first if needed (NCCL with CUDA,
    else gloo; ``backend`` to choose) and, with CUDA, selects ``cuda:LOCAL_RANK``. Without torchrun's environment
    (``WORLD_SIZE`` unset) it only returns the device. Used as the bundle's ``device`` in multi_gpu_train.json,
    so that every object built on the device finds the process group ready."""
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if "WORLD_SIZE" in os.environ and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if cuda else "gloo"))
    if cuda:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
        return dev
    return torch.device("cpu")


def ensure_writable_dir(path: str | os.PathLike, what: str = "output directory") -> str:
    """Create ``path`` if needed and check that a file can be written there; a clear ``OSError`` otherwise."""
    import tempfile

    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test_"):
            pass
    except OSError as e:
        raise OSError(f"{what} '{path}' is not writable: {e}") from e
    return str(path)


_LOCKS: dict[str, Path] = {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def lock_run_dir(path: str | os.PathLike, what: str = "run folder") -> str:
    """Take the lock of a training's run folder: ``<path>/.lock`` (created exclusively) names this process (host,
    pid, start time) and is removed when the process exits. A second training into the same folder while the
    first one runs is refused with an error that names the running process, before any data is loaded or any
    MLflow run is started. A lock left by a process that no longer runs on this host (SIGKILL, power loss) is
    taken over with a warning; one from another host is refused (remove the file if that run is over). Under
    ``torchrun`` only the global rank 0 takes the lock. Returns ``path``."""
    import atexit
    import logging
    import socket
    import time

    path = Path(path)
    if os.environ.get("RANK", "0") != "0":
        return str(path)
    key = str(path.resolve())
    if key in _LOCKS:
        return str(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = path / ".lock"
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                other = {}
            pid, host = int(other.get("pid", -1)), other.get("host")
            if host == me["host"] and pid > 0 and not _pid_alive(pid):
                logging.getLogger("weakseg.engines").warning(
                    "%s %s: lock of process %d (started %s) that no longer runs: taken over", what, path, pid,
                    other.get("started"))
                lock.unlink(missing_ok=True)
                continue
            raise RuntimeError(
                f"another training is writing to the {what} {path}: process {pid} on {host}, started "
                f"{other.get('started')} (lock file {lock}). Wait for it to finish, or train into another folder "
                f"(--bundle_root, or another method name); if that process is gone, delete {lock}.") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        _LOCKS[key] = lock
        atexit.register(_release_lock, key)
        return str(path)
    raise RuntimeError(f"could not take the lock {lock}")


def unlock_run_dir(path: str | os.PathLike) -> str:
    """Release the lock :func:`lock_run_dir` took on ``path`` (the last step of a bundle's ``training``), so that a
    process that runs several workflows (``monai.bundle.run`` in a loop, a notebook) frees each run folder when its
    training ends, not when the process exits. A no-op for a folder this process does not hold. Returns ``path``."""
    _release_lock(str(Path(path).resolve()))
    return str(path)


def _release_lock(key: str) -> None:
    lock = _LOCKS.pop(key, None)
    if lock is None:
        return
    try:
        if json.loads(lock.read_text()).get("pid") == os.getpid():
            lock.unlink()
    except (OSError, ValueError):
        pass
