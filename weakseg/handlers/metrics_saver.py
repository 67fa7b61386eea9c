"""Evaluator handler that writes the aggregated and per-case metrics as one JSON file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from ignite.engine import Events
from monai.utils import CommonKeys

from weakseg.data.writers import write_json_atomic

__all__ = ["MetricsJsonHandler"]


class MetricsJsonHandler:
    """
    Attach to an evaluator: at completion writes ``output_file`` with the aggregated metrics
    (``engine.state.metrics``) and, per case, the details saved by MONAI metric handlers
    (``engine.state.metric_details``) with the source file of each case (or its ``id`` for in-memory items),
    written atomically.
    """

    def __init__(self, output_file: str | os.PathLike, image_key: str = CommonKeys.IMAGE) -> None:
        self.output_file = output_file
        self.image_key = image_key
        self.cases: list[str] = []

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.cases.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def _collect(self, engine) -> None:
        batch = engine.state.batch
        for item in batch if isinstance(batch, list) else [batch]:
            img = item.get(self.image_key) if isinstance(item, Mapping) else None
            name = getattr(img, "meta", {}).get("filename_or_obj")
            if name is None and isinstance(item, Mapping) and isinstance(item.get("id"), str):
                name = item["id"]  # in-memory slices (e.g. LV slices) carry their case id
            self.cases.append(str(name if name is not None else len(self.cases)))

    def __call__(self, engine) -> None:
        def plain(v):
            if isinstance(v, torch.Tensor):
                return v.detach().cpu().tolist()
            return v

        details = {k: plain(v) for k, v in getattr(engine.state, "metric_details", {}).items()}
        per_case = []
        for i, case in enumerate(self.cases):
            row: dict[str, Any] = {"case": case}
            for k, v in details.items():
                if i < len(v):
                    row[k] = v[i][0] if isinstance(v[i], list) and len(v[i]) == 1 else v[i]
            per_case.append(row)
        out = {"metrics": {k: plain(v) for k, v in engine.state.metrics.items()}, "per_case": per_case}
        write_json_atomic(self.output_file, out)
