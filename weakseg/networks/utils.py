"""Helpers on networks."""

from __future__ import annotations

import torch

__all__ = ["unwrap_parallel"]


def unwrap_parallel(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DataParallel`` / ``DistributedDataParallel`` wrapper (as MONAI's ``CheckpointSaver``
    stores it), else ``network`` itself."""
    if isinstance(network, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
        return network.module
    return network
