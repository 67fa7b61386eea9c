"""Writers: predictions in the orientation the rest of the package uses, and JSON files written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from monai.config import PathLike
from monai.data import PILWriter

from weakseg.data.msd import RASTER_SUFFIXES

__all__ = ["RowColumnPILWriter", "prediction_writer", "write_json_atomic"]


class RowColumnPILWriter(PILWriter):
    """MONAI's :class:`~monai.data.PILWriter` that writes an array ``(H, W)`` as rows × columns, the orientation
    in which the bundle reads 2D images (``PILReader(reverse_indexing=False)``), so a predicted mask lies on its
    image. (MONAI's writer transposes by default, matching its reader's default.)"""

    def write(self, filename: PathLike, verbose: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("reverse_indexing", False)
        super().write(filename, verbose=verbose, **kwargs)


def prediction_writer(output_ext: str) -> type | None:
    """The writer class for ``SaveImage`` given the output suffix: :class:`RowColumnPILWriter` for 2D raster
    formats, else ``None`` (MONAI's choice, e.g. NIfTI)."""
    return RowColumnPILWriter if str(output_ext).lower() in RASTER_SUFFIXES else None


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` through ``<path>.tmp`` and ``os.replace`` (creating the folder), so that a
    reader or a crash never sees half a file. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent))
    os.replace(tmp, path)
    return path
