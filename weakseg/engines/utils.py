"""Small engine helpers: batch preparation by key and checked checkpoint loading."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from monai.utils import CommonKeys

__all__ = ["PrepareBatchKeys", "load_pretrained"]


class PrepareBatchKeys:
    """
    ``prepare_batch`` for MONAI's ``SupervisedTrainer``/``SupervisedEvaluator`` that takes the input from
    ``image_key`` and the target from ``label_key`` (e.g. ``"size"`` for size supervision). A batch without
    ``label_key`` raises ``KeyError`` naming the key and the keys present.
    """

    def __init__(self, image_key: str = CommonKeys.IMAGE, label_key: str = CommonKeys.LABEL) -> None:
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, batchdata: Mapping[str, Any], device=None, non_blocking: bool = False, **kwargs: Any):
        for k in (self.image_key, self.label_key):
            if k not in batchdata:
                raise KeyError(f"batch has no '{k}' (keys: {sorted(batchdata)}); every item needs '{k}'.")
        return tuple(
            torch.as_tensor(batchdata[k]).to(device=device, non_blocking=non_blocking, **kwargs)
            for k in (self.image_key, self.label_key)
        )


def load_pretrained(network: torch.nn.Module, path: str | os.PathLike, key: str | None = None) -> torch.nn.Module:
    """
    Load weights saved by ``CheckpointSaver`` (a state dict, or a dict holding one under ``key``/"model") into
    ``network`` with ``torch.load(..., weights_only=True)``. A missing file or a checkpoint of another network
    raises an error naming the file and the mismatching parameters. Returns ``network``.
    """
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"pre-trained checkpoint '{path}' does not exist; train a model first or fix the path.")
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
    network.load_state_dict(sd)
    return network
